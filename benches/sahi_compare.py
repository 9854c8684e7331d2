"""Python SAHI on the same ONNX model and image as nsod, for a side-by-side time ratio.

Run by benches/sahi_compare.sh (which prepares a virtualenv and the 4096x4096 image). Prints SAHI's wall time for
get_sliced_prediction (1024 slices, overlap 0.2, full-image pass, GREEDYNMM/IOS 0.5: the same settings as
`nsod infer --slice 1024`) and the number of detections.
"""

import sys
import time

from sahi import AutoDetectionModel
from sahi.predict import get_sliced_prediction

model_path, image_path = sys.argv[1], sys.argv[2]
model = AutoDetectionModel.from_pretrained(
    model_type="ultralytics", model_path=model_path, confidence_threshold=0.25, device="cpu", image_size=1024
)
kwargs = dict(
    slice_height=1024,
    slice_width=1024,
    overlap_height_ratio=0.2,
    overlap_width_ratio=0.2,
    perform_standard_pred=True,
    postprocess_type="GREEDYNMM",
    postprocess_match_metric="IOS",
    postprocess_match_threshold=0.5,
    verbose=0,
)
get_sliced_prediction(image_path, model, **kwargs)  # warm-up
t = time.perf_counter()
result = get_sliced_prediction(image_path, model, **kwargs)
wall = time.perf_counter() - t
print(f"sahi {wall:.3f} s, {len(result.object_prediction_list)} detections")

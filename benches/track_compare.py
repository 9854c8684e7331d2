"""The Python stack nsod track replaces, on the same frames and ONNX model, for a frames-per-second ratio:
supervision's InferenceSlicer (slices of the model's size, overlap 20 %, NMS across slices) with a callback that
runs the model through onnxruntime (Ultralytics' letterbox, the OBB output decoded to axis-aligned boxes, NMS per
slice), then Roboflow trackers' ByteTrackTracker.

Run by benches/track.sh in the tracking virtualenv (trackers 2.6.1, supervision, onnxruntime 1.31.1).

    track_compare.py MODEL FRAMES_DIR CONF THREADS [rect] [workers=N]

A model of dynamic height and width is letterboxed into its metadata's imgsz; with `rect`, into Ultralytics'
minimum rectangle instead (its predictor's auto=True letterbox: padding to the stride only), the inputs nsod gives
such a model. `workers=N`: InferenceSlicer's thread_workers (slices run by N threads at once; onnxruntime releases
the GIL and one session takes concurrent runs), THREADS intra-op threads each.

Prints `python <seconds> s, <frames> frames, <fps> frames/s, <ids> track ids`.

    track_compare.py MODEL FRAMES_DIR CONF THREADS [rect] floor

ONNX Runtime alone on the model inputs the slicer makes (every frame's letterboxed slices, prepared first): no image
decoding, slicing, box decoding, NMS or tracking. The faster of one session of THREADS intra-op threads running them
one after the other and two single-thread sessions running them two at a time: the model's own time, a floor for
any program that runs those inputs through this library on the same cores. Prints `floor <seconds> s, <runs> runs, <one session> <two sessions>`.
"""

import json
import os
import sys
import threading
import time

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv
from trackers import ByteTrackTracker

model_path, frames_dir, conf, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rect = "rect" in sys.argv[5:]
workers = next((int(a.split("=")[1]) for a in sys.argv[5:] if a.startswith("workers=")), 1)
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
meta = sess.get_modelmeta().custom_metadata_map
size = inp.shape[2] if isinstance(inp.shape[2], int) else json.loads(meta["imgsz"])[0]
stride = int(meta.get("stride", 32)) if rect else None
floor = "floor" in sys.argv[5:]
frames = sorted((f for f in os.listdir(frames_dir) if f.endswith((".png", ".jpg"))), key=lambda f: int("".join(filter(str.isdigit, f)) or 0))


def letterbox(im):
    h, w = im.shape[:2]
    r = min(size / h, size / w)
    new = (int(round(w * r)), int(round(h * r)))
    dw, dh = size - new[0], size - new[1]
    if stride:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    if (w, h) != new:
        im = cv2.resize(im, new, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return im, r, left, top


def model_input(image):
    """The model's input for one slice (letterboxed, RGB, CHW, 0-1), with the letterbox's scale and offsets."""
    im, r, left, top = letterbox(image)
    return np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)[None]).astype(np.float32) / 255.0, r, left, top


def slicer_of(callback, **kwargs):
    return sv.InferenceSlicer(callback=callback, slice_wh=(size, size), overlap_wh=(int(0.2 * size), int(0.2 * size)),
                              **kwargs)


def callback(image):
    x, r, left, top = model_input(image)
    out = sess.run(None, {inp.name: x})[0][0]
    nc = out.shape[0] - 5
    scores = out[4 : 4 + nc]
    cls = scores.argmax(0)
    best = scores.max(0)
    keep = best >= conf
    cx, cy, w, h, a = out[0][keep], out[1][keep], out[2][keep], out[3][keep], out[4 + nc][keep]
    # The rotated box's axis-aligned hull, in the slice's pixels.
    hw = (np.abs(w * np.cos(a)) + np.abs(h * np.sin(a))) / 2
    hh = (np.abs(w * np.sin(a)) + np.abs(h * np.cos(a))) / 2
    xyxy = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
    xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - left) / r
    xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - top) / r
    det = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=best[keep].astype(np.float32),
                        class_id=cls[keep].astype(int))
    return det.with_nms(threshold=0.7, class_agnostic=False)


if floor:
    inputs = []

    def record(image):
        inputs.append(model_input(image)[0])
        return sv.Detections.empty()

    record_slicer = slicer_of(record)
    for f in frames:
        record_slicer(cv2.imread(os.path.join(frames_dir, f)))
    single = ort.SessionOptions()
    single.intra_op_num_threads = 1
    pair = [ort.InferenceSession(model_path, single, providers=["CPUExecutionProvider"]) for _ in range(2)]
    for s in (sess, *pair):  # warm-up
        s.run(None, {inp.name: inputs[0]})
    t = time.perf_counter()
    for x in inputs:
        sess.run(None, {inp.name: x})
    one = time.perf_counter() - t

    def half(s, k):
        for x in inputs[k::2]:
            s.run(None, {inp.name: x})

    runners = [threading.Thread(target=half, args=(s, k)) for k, s in enumerate(pair)]
    t = time.perf_counter()
    for r in runners:
        r.start()
    for r in runners:
        r.join()
    two = time.perf_counter() - t
    print(f"floor {min(one, two):.3f} s, {len(inputs)} runs, {one:.3f} {two:.3f}")
    sys.exit(0)

slicer = slicer_of(callback, iou_threshold=0.5, thread_workers=workers)
tracker = ByteTrackTracker()
images = [cv2.imread(os.path.join(frames_dir, f)) for f in frames[:1]]
slicer(images[0])  # warm-up
ids = set()
t = time.perf_counter()
for f in frames:
    image = cv2.imread(os.path.join(frames_dir, f))
    det = slicer(image)
    res = tracker.update(det)
    ids.update(int(i) for i in res.tracker_id if i >= 0)
wall = time.perf_counter() - t
print(f"python {wall:.3f} s, {len(frames)} frames, {len(frames) / wall:.3f} frames/s, {len(ids)} track ids")

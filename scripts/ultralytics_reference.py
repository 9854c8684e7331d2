#!/usr/bin/env python3
"""The reference of nsod's preprocessing: Ultralytics' letterbox (cv2.resize INTER_LINEAR, then a border of 114, as
ultralytics.data.augment.LetterBox with auto=False, scaleup=True, center=True) and the ONNX model run with the
onnxruntime Python package. For a model of dynamic height and width, the size is the metadata's imgsz and the
letterbox is the minimum rectangle Ultralytics' predictor uses with such a model (auto=True, the metadata's
stride: the padding only what the stride needs).

Prints one JSON object:
  "input": the letterboxed model input as the SHA-256 of its float32 bytes, with its shape;
  "candidates": every anchor whose best class score is >= CONF: [class, score, cx, cy, w, h] in model-input pixels,
  then cx, cy, w, h mapped back to image pixels the way Ultralytics' scale_boxes does (plus angle for OBB models).

    python3 scripts/ultralytics_reference.py MODEL IMAGE CONF [RAW_OUT]

With RAW_OUT the letterboxed input is also written there as little-endian float32 (3 x H x W, RGB).
"""
import hashlib
import json
import sys

import cv2
import numpy as np
import onnxruntime as ort


def letterbox(im, new_h, new_w, stride=None):
    h, w = im.shape[:2]
    r = min(new_h / h, new_w / w)
    new_unpad = (int(round(w * r)), int(round(h * r)))
    dw, dh = new_w - new_unpad[0], new_h - new_unpad[1]
    if stride:
        dw, dh = np.mod(dw, stride), np.mod(dh, stride)
    dw, dh = dw / 2, dh / 2
    if (w, h) != new_unpad:
        im = cv2.resize(im, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    im = cv2.copyMakeBorder(im, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return im, r, (left, top)


def main():
    model, image, conf = sys.argv[1], sys.argv[2], float(sys.argv[3])
    raw_out = sys.argv[4] if len(sys.argv) > 4 else None
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    new_h, new_w = inp.shape[2], inp.shape[3]
    meta = sess.get_modelmeta().custom_metadata_map
    stride = None
    if not isinstance(new_h, int) and not isinstance(new_w, int):
        new_h, new_w = json.loads(meta["imgsz"])
        stride = int(meta.get("stride", 32))
    obb = meta.get("task") == "obb"
    im0 = cv2.imread(image)
    im, r, (left, top) = letterbox(im0, new_h, new_w, stride)
    x = np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1)[None]).astype(np.float32) / 255.0
    if raw_out:
        x[0].astype("<f4").tofile(raw_out)
    out = sess.run(None, {inp.name: x})[0][0]
    nc = out.shape[0] - 4 - (1 if obb else 0)
    scores = out[4 : 4 + nc]
    cls = scores.argmax(0)
    best = scores.max(0)
    cands = []
    for i in np.nonzero(best >= conf)[0]:
        cx, cy, w, h = out[0:4, i]
        row = [int(cls[i]), float(best[i]), float(cx), float(cy), float(w), float(h),
               float((cx - left) / r), float((cy - top) / r), float(w / r), float(h / r)]
        if obb:
            row.append(float(out[-1, i]))
        cands.append(row)
    print(json.dumps({
        "input": {"shape": list(x.shape), "sha256": hashlib.sha256(x.tobytes()).hexdigest()},
        "cv2": cv2.__version__,
        "candidates": cands,
    }))


if __name__ == "__main__":
    main()

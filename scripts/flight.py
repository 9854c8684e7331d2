#!/usr/bin/env python3
"""A synthetic drone flight for the tracking tests and benchmark (run in the tracking virtualenv, which has OpenCV).

    flight.py DOTA.png NEON.png OUT_DIR [FRAMES [jpg|png]]

Builds a mosaic, the DOTA image (aerial, dense vehicles) pasted in the middle of the NEON sample (forest), and
flies a 1280x720 camera over it at 30 fps: the camera's centre moves 700 px down the DOTA image, it turns through
100 degrees and zooms in by 10 % over the flight (150 frames by default). Writes

    OUT_DIR/mosaic.png             the still image (its detections are the ground truth, moved by the transforms)
    OUT_DIR/frames/frameNNNN.jpg   the frames (JPEG quality 95, as a camera would store them; or lossless PNG)
    OUT_DIR/transforms.json        per frame the 2x3 affine matrix from mosaic pixels to frame pixels

Frames are rendered with OpenCV's warpAffine (bilinear) from the mosaic, pixel centres at integer coordinates.
"""
import json
import math
import os
import sys

import cv2
import numpy as np

WIDTH, HEIGHT = 1280, 720


def main():
    dota_path, neon_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
    frames = int(sys.argv[4]) if len(sys.argv) > 4 else 150
    ext = sys.argv[5] if len(sys.argv) > 5 else "jpg"
    if ext not in ("jpg", "png"):
        sys.exit(f"flight.py: frame format {ext}: jpg or png")
    dota = cv2.imread(dota_path)
    mosaic = cv2.imread(neon_path)
    if dota is None or mosaic is None:
        sys.exit(f"flight.py: cannot read {dota_path} or {neon_path}")
    mh, mw = mosaic.shape[:2]
    dh, dw = dota.shape[:2]
    x0, y0 = (mw - dw) // 2, (mh - dh) // 2
    mosaic[y0:y0 + dh, x0:x0 + dw] = dota
    os.makedirs(os.path.join(out, "frames"), exist_ok=True)
    cv2.imwrite(os.path.join(out, "mosaic.png"), mosaic)
    transforms = []
    for k in range(frames):
        a = k / max(frames - 1, 1)
        cx, cy = x0 + 470.0, y0 + 450.0 + 700.0 * a
        theta = math.radians(100.0) * a
        scale = 1.0 + 0.1 * a
        c, s = math.cos(theta) * scale, math.sin(theta) * scale
        # frame = scale * R(theta) * (mosaic - centre) + (W/2, H/2)
        m = np.array(
            [
                [c, -s, WIDTH / 2 - (c * cx - s * cy)],
                [s, c, HEIGHT / 2 - (s * cx + c * cy)],
            ]
        )
        frame = cv2.warpAffine(
            mosaic, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        cv2.imwrite(
            os.path.join(out, "frames", f"frame{k + 1:04d}.{ext}"),
            frame,
            [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else [],
        )
        transforms.append([float(v) for v in m.ravel()])
    with open(os.path.join(out, "transforms.json"), "w") as f:
        json.dump({"width": WIDTH, "height": HEIGHT, "fps": 30, "transforms": transforms}, f)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The reference: the DOTA devkit's Task 1 evaluation (PyPI dotadevkit==1.3.0, dotadevkit/evaluate/task1.py,
polygon IoU from its polyiou extension) on DOTA label files and Task1_<class>.txt detection files.

Prints one JSON object: per class, the devkit's AP with all points and with VOC07's 11 points, and its count of
objects (not difficult). The devkit's own prints go to stderr.

    python3 scripts/dota_devkit_eval.py LABEL_DIR TASK1_DIR IMAGESET_FILE CLASS[,CLASS...]

Two things the devkit cannot do are reported instead of computed: a class without objects (the devkit divides by
zero) is left out, and a class with objects but an empty detection file (the devkit crashes on it) gets AP 0 with
"no_detections": true.
"""
import contextlib
import json
import os
import sys

import numpy as np

# dotadevkit 1.3.0 uses np.bool, removed in numpy 1.24.
if not hasattr(np, "bool"):
    np.bool = bool

from dotadevkit.evaluate import task1  # noqa: E402


def main():
    label_dir, task1_dir, imageset, classes = sys.argv[1:5]
    annopath = os.path.join(label_dir, "{:s}.txt")
    detpath = os.path.join(task1_dir, "Task1_{:s}.txt")
    with open(imageset) as f:
        images = [l.strip() for l in f if l.strip()]
    out = {}
    for c in classes.split(","):
        npos = 0
        for im in images:
            for o in task1.parse_gt(annopath.format(im), "1.0"):
                if o["name"] == c and not o["difficult"]:
                    npos += 1
        if npos == 0:
            continue
        with open(detpath.format(c)) as f:
            empty = not f.read().strip()
        if empty:
            out[c] = {"ap": 0.0, "ap07": 0.0, "npos": npos, "no_detections": True}
            continue
        with contextlib.redirect_stdout(sys.stderr):
            _, _, ap = task1.voc_eval(detpath, annopath, imageset, c, ovthresh=0.5, use_07_metric=False)
            _, _, ap07 = task1.voc_eval(detpath, annopath, imageset, c, ovthresh=0.5, use_07_metric=True)
        out[c] = {"ap": float(ap), "ap07": float(ap07), "npos": npos}
    print(json.dumps({"classes": out}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The reference: pycocotools' COCOeval on a COCO annotations file and a results file.

Prints one JSON object: the 12 summary numbers under nsod's eval.json keys, and the seconds the evaluation took
(loading, evaluate, accumulate, summarize). pycocotools' own output goes to stderr.

    python3 scripts/pycocotools_eval.py gt.json results.json
"""
import contextlib
import json
import sys
import time

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

KEYS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def main():
    gt_path, dt_path = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        gt = COCO(gt_path)
        dt = gt.loadRes(dt_path)
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    seconds = time.perf_counter() - start
    print(json.dumps({"coco": dict(zip(KEYS, [float(v) for v in e.stats])), "seconds": seconds}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The reference: pycocotools' COCOeval on a COCO annotations file and a results file.

Prints one JSON object: the 12 summary numbers under nsod's eval.json keys, and the seconds the evaluation took
(loading, evaluate, accumulate, summarize). pycocotools' own output goes to stderr.

    python3 scripts/pycocotools_eval.py gt.json results.json [--max-dets N]

--max-dets N sets params.maxDets to [1, 10, N] (nsod eval --max-dets N). pycocotools' summarize() reads the first
number, AP, at maxDets=100 whatever the parameters say (it finds no such column and prints -1); with --max-dets it
is read at N from the same accumulated precision, as summarize() reads the other eleven.
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
    max_dets = int(sys.argv[4]) if len(sys.argv) == 5 and sys.argv[3] == "--max-dets" else None
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        gt = COCO(gt_path)
        dt = gt.loadRes(dt_path)
        e = COCOeval(gt, dt, "bbox")
        if max_dets is not None:
            e.params.maxDets = [1, 10, max_dets]
        e.evaluate()
        e.accumulate()
        e.summarize()
    stats = [float(v) for v in e.stats]
    if max_dets is not None:
        p = e.eval["precision"][:, :, :, 0, 2]  # every IoU, recall, class; area all; maxDets N
        stats[0] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    seconds = time.perf_counter() - start
    print(json.dumps({"coco": dict(zip(KEYS, stats)), "seconds": seconds}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""py-motmetrics' numbers for the tracking tests (run in its own virtualenv: scripts/setup.sh --tests; it needs
numpy < 2).

    motmetrics_reference.py OUT.json SEQ GT.txt TRACKER.txt [SEQ GT.txt TRACKER.txt ...]
    motmetrics_reference.py --data-dir     prints the folder of the MOT files the motmetrics wheel ships

Loads each pair with motmetrics' MOT15-2D reader, matches boxes by IoU with distth 0.5 (its MOTChallenge setting)
and writes {"SEQ": {"mota": ..., "motp": ..., "idf1": ..., ...}, ..., "OVERALL": {...}}.
"""
import json
import os
import sys

import motmetrics as mm

FIELDS = ["num_frames", "mota", "motp", "idf1", "idp", "idr", "recall", "precision", "num_switches",
          "num_false_positives", "num_misses", "num_objects", "num_predictions", "mostly_tracked",
          "mostly_lost", "num_fragmentations", "num_unique_objects"]


def main():
    if sys.argv[1] == "--data-dir":
        print(os.path.join(os.path.dirname(mm.__file__), "data"))
        return
    out, args = sys.argv[1], sys.argv[2:]
    accs, names = [], []
    for i in range(0, len(args), 3):
        name, gt_path, tr_path = args[i:i + 3]
        gt = mm.io.loadtxt(gt_path, fmt="mot15-2D", min_confidence=1)
        ts = mm.io.loadtxt(tr_path, fmt="mot15-2D")
        accs.append(mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5))
        names.append(name)
    mh = mm.metrics.create()
    summary = mh.compute_many(accs, metrics=FIELDS, names=names, generate_overall=True)
    result = {str(idx): {k: float(summary.loc[idx, k]) for k in FIELDS} for idx in summary.index}
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

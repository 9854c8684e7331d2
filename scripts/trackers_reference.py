#!/usr/bin/env python3
"""Roboflow trackers 2.6.1's ByteTrackTracker on a detection file, for the tracker parity test (run in the tracking
virtualenv: scripts/setup.sh --tests).

    trackers_reference.py DETECTIONS.json OUT.json

DETECTIONS.json: {"config": {ByteTrackTracker keyword arguments}, "frames": [{"timestamp": t or null,
"boxes": [[x1, y1, x2, y2], ...], "confidences": [...] or null}, ...]}. Boxes are float32, as detectors give them.
OUT.json: {"ids": one list per frame of [detection index, tracker id] in the tracker's output order,
"tracked": one list per frame of [tracker id, x1, y1, x2, y2] (tracked_objects: the confirmed tracks' states)}.
"""
import json
import sys

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    tracker = ByteTrackTracker(**spec["config"])
    out = {"ids": [], "tracked": []}
    for frame in spec["frames"]:
        boxes = np.array(frame["boxes"], dtype=np.float32).reshape(-1, 4)
        conf = frame.get("confidences")
        det = sv.Detections(xyxy=boxes,
                            confidence=None if conf is None else np.array(conf, dtype=np.float32),
                            data={"index": np.arange(len(boxes))})
        res = tracker.update(det, timestamp=frame.get("timestamp"))
        out["ids"].append([[int(i), int(t)] for i, t in zip(res.data["index"], res.tracker_id)])
        objs = tracker.tracked_objects
        out["tracked"].append([[int(t)] + [float(v) for v in b] for t, b in zip(objs.tracker_id, objs.xyxy)])
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

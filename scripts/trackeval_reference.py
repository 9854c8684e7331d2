#!/usr/bin/env python3
"""TrackEval's numbers for the tracking tests (run in the tracking virtualenv: scripts/setup.sh --tests).

    trackeval_reference.py axis BENCHMARK OUT.json SEQ GT.txt TRACKER.txt LENGTH [SEQ GT TRACKER LENGTH ...]
        TrackEval's own MotChallenge2DBox dataset (its loader, preprocessing and box IoU) on a MOTChallenge folder
        built in a temporary directory, with the HOTA, CLEAR and Identity metrics; per sequence and COMBINED_SEQ.
    trackeval_reference.py oriented OUT.json SEQ GT.txt TRACKER.txt LENGTH [...]
        nsod's oriented layout (frame,id,x1,y1,...,x4,y4,conf,class): TrackEval has no dataset for it, so the
        similarity matrices are polygon IoUs from shapely, the preprocessing is MOT15's (ground-truth rows with
        conf 0 dropped, ids relabelled in sorted order), and TrackEval's metric classes do the rest.

Writes {"SEQ": {"HOTA": {...}, "CLEAR": {...}, "Identity": {...}}, ..., "COMBINED": {...}} with every field as a
number or a list of 19 numbers (HOTA's arrays).
"""
import json
import os
import sys
import tempfile

import numpy as np
import trackeval
from shapely.geometry import Polygon


def plain(res):
    out = {}
    for k, v in res.items():
        if isinstance(v, np.ndarray):
            out[k] = [float(x) for x in v]
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out[k] = float(v)
    return out


def metrics():
    quiet = {"PRINT_CONFIG": False}
    return [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]


def axis(benchmark, seqs):
    with tempfile.TemporaryDirectory() as root:
        split = f"{benchmark}-train"
        gt_root = os.path.join(root, "gt")
        tr_root = os.path.join(root, "trackers")
        for name, gt, tr, length in seqs:
            d = os.path.join(gt_root, split, name)
            os.makedirs(os.path.join(d, "gt"))
            with open(gt) as f, open(os.path.join(d, "gt", "gt.txt"), "w") as g:
                g.write(f.read())
            with open(os.path.join(d, "seqinfo.ini"), "w") as f:
                f.write(f"[Sequence]\nname={name}\nseqLength={length}\n")
            out = os.path.join(tr_root, split, "nsod", "data")
            os.makedirs(out, exist_ok=True)
            with open(tr) as f, open(os.path.join(out, name + ".txt"), "w") as g:
                g.write(f.read())
        with open(os.path.join(gt_root, "seqmaps.txt"), "w") as f:
            f.write("name\n" + "".join(s[0] + "\n" for s in seqs))
        eval_config = trackeval.Evaluator.get_default_eval_config()
        eval_config.update({"PRINT_RESULTS": False, "PRINT_CONFIG": False, "OUTPUT_SUMMARY": False,
                            "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "TIME_PROGRESS": False,
                            "USE_PARALLEL": False, "DISPLAY_LESS_PROGRESS": True})
        ds_config = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
        ds_config.update({"GT_FOLDER": gt_root, "TRACKERS_FOLDER": tr_root, "BENCHMARK": benchmark,
                          "SPLIT_TO_EVAL": "train", "TRACKERS_TO_EVAL": ["nsod"], "SKIP_SPLIT_FOL": False,
                          "SEQMAP_FILE": os.path.join(gt_root, "seqmaps.txt"), "PRINT_CONFIG": False,
                          "OUTPUT_FOLDER": os.path.join(root, "out")})
        evaluator = trackeval.Evaluator(eval_config)
        res, msg = evaluator.evaluate([trackeval.datasets.MotChallenge2DBox(ds_config)], metrics())
        if msg["MotChallenge2DBox"]["nsod"] != "Success":
            raise SystemExit(f"TrackEval: {msg}")
        by_seq = res["MotChallenge2DBox"]["nsod"]
        return {("COMBINED" if seq == "COMBINED_SEQ" else seq): {m: plain(v) for m, v in r["pedestrian"].items()
                                                                if m in ("HOTA", "CLEAR", "Identity")}
                for seq, r in by_seq.items()}


def read_oriented(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append([float(x) for x in line.split(",")])
    return rows


def oriented(seqs):
    out = {}
    for name, gt_path, tr_path, length in seqs:
        gt = [r for r in read_oriented(gt_path) if int(r[10]) != 0]
        tr = read_oriented(tr_path)
        gt_ids_all = sorted({int(r[1]) for r in gt})
        tr_ids_all = sorted({int(r[1]) for r in tr})
        gmap = {k: i for i, k in enumerate(gt_ids_all)}
        tmap = {k: i for i, k in enumerate(tr_ids_all)}
        data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": [], "num_timesteps": length,
                "num_gt_ids": len(gt_ids_all), "num_tracker_ids": len(tr_ids_all),
                "num_gt_dets": len(gt), "num_tracker_dets": len(tr), "seq": name}
        gt_by_t, tr_by_t = {}, {}
        for r in gt:
            gt_by_t.setdefault(int(r[0]), []).append(r)
        for r in tr:
            tr_by_t.setdefault(int(r[0]), []).append(r)
        for t in range(1, length + 1):
            g = gt_by_t.get(t, [])
            k = tr_by_t.get(t, [])
            gp = [Polygon(np.array(r[2:10]).reshape(4, 2)) for r in g]
            kp = [Polygon(np.array(r[2:10]).reshape(4, 2)) for r in k]
            sim = np.zeros((len(g), len(k)))
            # Only pairs whose bounds overlap can intersect (the others' IoU is 0).
            gb = np.array([p.bounds for p in gp]).reshape(-1, 4)
            kb = np.array([p.bounds for p in kp]).reshape(-1, 4)
            near = ((gb[:, None, 0] < kb[None, :, 2]) & (kb[None, :, 0] < gb[:, None, 2])
                    & (gb[:, None, 1] < kb[None, :, 3]) & (kb[None, :, 1] < gb[:, None, 3]))
            for i, j in zip(*np.nonzero(near)):
                a, b = gp[i], kp[j]
                inter = a.intersection(b).area
                union = a.area + b.area - inter
                sim[i, j] = inter / union if union > 0 and inter > 0 else 0.0
            data["gt_ids"].append(np.array([gmap[int(r[1])] for r in g], dtype=int))
            data["tracker_ids"].append(np.array([tmap[int(r[1])] for r in k], dtype=int))
            data["similarity_scores"].append(sim)
        out[name] = {m.get_name(): m.eval_sequence(data) for m in metrics()}
    combined = {}
    for m in metrics():
        combined[m.get_name()] = m.combine_sequences({s: r[m.get_name()] for s, r in out.items()})
    out = {s: {m: plain(v) for m, v in r.items()} for s, r in out.items()}
    out["COMBINED"] = {m: plain(v) for m, v in combined.items()}
    return out


def groups(args):
    if len(args) % 4:
        raise SystemExit("expected SEQ GT TRACKER LENGTH groups")
    return [(args[i], args[i + 1], args[i + 2], int(args[i + 3])) for i in range(0, len(args), 4)]


def main():
    mode = sys.argv[1]
    if mode == "axis":
        result = axis(sys.argv[2], groups(sys.argv[4:]))
        out = sys.argv[3]
    elif mode == "oriented":
        result = oriented(groups(sys.argv[3:]))
        out = sys.argv[2]
    else:
        raise SystemExit(__doc__)
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()

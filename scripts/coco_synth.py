#!/usr/bin/env python3
"""Random COCO datasets for nsod's pycocotools peer test and evaluation benchmark (standard library only).

Writes OUT/gt.json (COCO annotations) and OUT/results.json (COCO results). With a fixed --seed the files are
identical on every machine. The data is built to exercise every branch of COCOeval: empty and crowded images,
more than 100 detections in an image, non-contiguous image and category ids, a category without ground truth,
crowd annotations, `area` different from the box area, duplicate ground-truth boxes (IoU ties), duplicate
detections, wrong classes and tied scores (rounded to two decimals).

    python3 scripts/coco_synth.py --seed 1 --images 300 --out /tmp/synth
    python3 scripts/coco_synth.py --seed 7 --images 5000 --dets-per-image 50 --out /tmp/bench
"""
import argparse
import json
import math
import os
import random


SMALL_ONLY = False


def box(rng, width, height):
    biggest = 30 if SMALL_ONLY else min(width, height) * 0.6
    w = math.exp(rng.uniform(math.log(4), math.log(biggest)))
    h = w * math.exp(rng.uniform(-0.8, 0.8))
    h = min(h, 30 if SMALL_ONLY else height - 1)
    x = rng.uniform(0, width - w)
    y = rng.uniform(0, height - h)
    b = [x, y, w, h]
    if rng.random() < 0.3:  # integer boxes, as many annotation tools write them
        b = [float(round(v)) for v in b]
        b[2] = max(b[2], 1.0)
        b[3] = max(b[3], 1.0)
    else:
        b = [round(v, 2) for v in b]
    return b


def jitter(rng, b, scale):
    x, y, w, h = b
    return [
        round(x + rng.gauss(0, scale * w), 2),
        round(y + rng.gauss(0, scale * h), 2),
        round(max(0.5, w * math.exp(rng.gauss(0, scale))), 2),
        round(max(0.5, h * math.exp(rng.gauss(0, scale))), 2),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--dets-per-image", type=int, default=0, help="exactly this many detections per image (0: varies)")
    ap.add_argument("--small-only", action="store_true", help="only boxes under 32x32 (medium/large undefined)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    global SMALL_ONLY
    SMALL_ONLY = a.small_only
    rng = random.Random(a.seed)
    cat_ids = sorted(rng.sample(range(1, 60), a.classes))
    categories = [{"id": c, "name": f"class-{c}", "supercategory": "thing"} for c in cat_ids]
    gt_cats = cat_ids[:-1]  # the last category never has ground truth
    images, anns, results = [], [], []
    for i in range(a.images):
        img_id = 7 + 3 * i
        width, height = rng.choice([(640, 480), (1024, 1024), (800, 600), (1333, 800)])
        images.append({"id": img_id, "file_name": f"img{img_id:06d}.jpg", "width": width, "height": height})
        kind = rng.random()
        n_gt = 0 if kind < 0.1 else rng.randint(40, 110) if kind < 0.18 else rng.randint(1, 15)
        gts = []
        for _ in range(n_gt):
            b = box(rng, width, height)
            cat = rng.choice(gt_cats)
            crowd = 1 if rng.random() < 0.03 else 0
            area = round(b[2] * b[3] * rng.uniform(0.55, 1.0), 2)
            gts.append((b, cat))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat, "bbox": b,
                         "area": area, "iscrowd": crowd})
            if rng.random() < 0.04:  # an exact duplicate: equal IoU with two boxes
                gts.append((b, cat))
                anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat, "bbox": list(b),
                             "area": area, "iscrowd": 0})
        dets = []
        for b, cat in gts:
            if rng.random() < 0.78:
                c = cat if rng.random() > 0.08 else rng.choice(cat_ids)
                d = jitter(rng, b, rng.choice([0.02, 0.05, 0.12, 0.3]))
                dets.append((d, c, round(rng.uniform(0.25, 1.0), 2)))
                if rng.random() < 0.12:  # duplicate detection, same or lower score
                    dets.append((list(d) if rng.random() < 0.5 else jitter(rng, b, 0.05), c,
                                 round(rng.uniform(0.05, dets[-1][2]), 2)))
        for _ in range(rng.randint(0, 8)):  # false positives, some of the category without ground truth
            dets.append((box(rng, width, height), rng.choice(cat_ids), round(rng.uniform(0.01, 0.7), 2)))
        if a.dets_per_image:
            while len(dets) < a.dets_per_image:
                dets.append((box(rng, width, height), rng.choice(cat_ids), round(rng.uniform(0.01, 0.7), 2)))
            rng.shuffle(dets)
            dets = dets[: a.dets_per_image]
        else:
            rng.shuffle(dets)
        for d, c, s in dets:
            results.append({"image_id": img_id, "category_id": c, "bbox": d, "score": s})
    if not results:  # pycocotools' loadRes cannot read an empty list
        results.append({"image_id": images[0]["id"], "category_id": cat_ids[0], "bbox": [0, 0, 10, 10], "score": 0.5})
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "gt.json"), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": categories}, f)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f)
    print(json.dumps({"images": len(images), "annotations": len(anns), "results": len(results)}))


if __name__ == "__main__":
    main()

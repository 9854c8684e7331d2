#!/usr/bin/env python3
"""The tree-crown dataset of issue 35, from the NEON images and Pascal VOC boxes the deepforest 2.1.0 wheel ships.

    prepare.py DATA_DIR OUT_DIR

DATA_DIR is the wheel's deepforest/data. OUT_DIR receives:

- `yolo/`: an Ultralytics detect dataset (`data.yaml`, `images/{train,val,test}`, `labels/{train,val,test}`), one
  class `tree`;
- `val/` and `test/`: the validation regions and the test images whole (what nsod infer slices itself), each with
  `gt.json` (COCO) and `labels/` (YOLO, normalised), so `nsod eval --gt` reads either.

Split, so no crown and no tile is on both sides:
- the two Yellowstone images (YELL, 574 + 279 crowns) are training data, except their bottom quarter: a band of
  GAP pixels (wider than the largest crown, 108 px) is dropped, and what lies below it is the validation split;
- OSBS_029 (Florida, 61 crowns; a GeoTIFF) and SOAP_061 (California, 37 crowns, labelled Alive/Dead: all trees)
  are the test set, other sites, used once at the end, named as scripts/fetch-samples.sh names them
  (neon_osbs_10cm.tif, neon_soap_10cm.png).
Training and validation regions are cut into TILE x TILE tiles with OVERLAP; a box is kept in a tile (clipped) when
at least MIN_VISIBLE of its area lies inside it, and in a region when its centre does (clipped to the region).
"""
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

TILE = 416
OVERLAP = 104
GAP = 128
VAL_FRACTION = 0.25
MIN_VISIBLE = 0.4

TRAIN = [
    "2019_YELL_2_528000_4978000_image_crop2.png",
    "2019_YELL_2_541000_4977000_image_crop.png",
]
# file in the wheel -> name in the test set (the names of scripts/fetch-samples.sh, so the demo evaluates samples/)
TEST = {"OSBS_029.tif": "neon_osbs_10cm.tif", "SOAP_061.png": "neon_soap_10cm.png"}


def boxes(xml_path):
    """[(x0, y0, x1, y1)] in pixels (VOC corners), every object a tree."""
    root = ET.parse(xml_path).getroot()
    out = []
    for o in root.iter("object"):
        b = o.find("bndbox")
        out.append(tuple(float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")))
    return out


def clip(b, x0, y0, x1, y1):
    c = (max(b[0], x0), max(b[1], y0), min(b[2], x1), min(b[3], y1))
    return c if c[2] > c[0] and c[3] > c[1] else None


def area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def starts(length, tile, overlap):
    """Tile origins covering [0, length): stride tile - overlap, the last one flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    s = list(range(0, length - tile, stride))
    s.append(length - tile)
    return sorted(set(s))


def yolo_line(b, w, h):
    cx, cy = (b[0] + b[2]) / 2 / w, (b[1] + b[3]) / 2 / h
    return f"0 {cx:.6f} {cy:.6f} {(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f}"


def write_tiles(img, bxs, region, stem, split, out):
    """Tiles of `region` (x0, y0, x1, y1) of `img` into yolo/images|labels/<split>; returns the count."""
    rx0, ry0, rx1, ry1 = region
    n = 0
    for ty in starts(ry1 - ry0, TILE, OVERLAP):
        for tx in starts(rx1 - rx0, TILE, OVERLAP):
            x0, y0 = rx0 + tx, ry0 + ty
            x1, y1 = min(x0 + TILE, rx1), min(y0 + TILE, ry1)
            lines = []
            for b in bxs:
                c = clip(b, x0, y0, x1, y1)
                if c and area(c) >= MIN_VISIBLE * area(b):
                    lines.append(yolo_line((c[0] - x0, c[1] - y0, c[2] - x0, c[3] - y0), x1 - x0, y1 - y0))
            name = f"{stem}_x{x0}_y{y0}"
            img.crop((x0, y0, x1, y1)).save(out / "yolo/images" / split / f"{name}.png")
            (out / "yolo/labels" / split / f"{name}.txt").write_text("".join(l + "\n" for l in lines))
            n += 1
    return n


class Coco:
    """A COCO ground truth of whole images (the validation regions, the test images)."""

    def __init__(self):
        self.images, self.annotations = [], []

    def add(self, name, w, h, bxs):
        iid = len(self.images) + 1
        self.images.append({"id": iid, "file_name": name, "width": w, "height": h})
        for b in bxs:
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": iid, "category_id": 0,
                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": area(b), "iscrowd": 0,
            })

    def write(self, path):
        path.write_text(json.dumps({
            "images": self.images, "annotations": self.annotations,
            "categories": [{"id": 0, "name": "tree"}],
        }, indent=1) + "\n")


def whole(img, name, bxs, folder, coco):
    """An image whole into folder/ with its YOLO labels, and into the COCO ground truth."""
    img.save(folder / name)
    w, h = img.size
    (folder / "labels" / (Path(name).stem + ".txt")).write_text("".join(yolo_line(b, w, h) + "\n" for b in bxs))
    coco.add(name, w, h, bxs)


def main(data, out):
    if out.exists():
        shutil.rmtree(out)
    for split in ("train", "val", "test"):
        (out / "yolo/images" / split).mkdir(parents=True)
        (out / "yolo/labels" / split).mkdir(parents=True)
    for d in ("val", "test"):
        (out / d / "labels").mkdir(parents=True)
    val_coco, test_coco = Coco(), Coco()
    counts = {}
    for name in TRAIN:
        img = Image.open(data / name).convert("RGB")
        w, h = img.size
        bxs = boxes(data / (Path(name).stem + ".xml"))
        val_top = int(h * (1 - VAL_FRACTION))
        train_bottom = val_top - GAP
        stem = Path(name).stem.replace("2019_YELL_2_", "yell_")
        in_train = [c for b in bxs if (b[1] + b[3]) / 2 < train_bottom and (c := clip(b, 0, 0, w, train_bottom))]
        in_val = [c for b in bxs if (b[1] + b[3]) / 2 >= val_top and (c := clip(b, 0, val_top, w, h))]
        counts[name] = {"train": len(in_train), "val": len(in_val), "dropped in the gap": len(bxs) - len(in_train) - len(in_val)}
        counts[name]["train tiles"] = write_tiles(img, in_train, (0, 0, w, train_bottom), stem, "train", out)
        counts[name]["val tiles"] = write_tiles(img, in_val, (0, val_top, w, h), stem, "val", out)
        region = img.crop((0, val_top, w, h))
        shifted = [(b[0], b[1] - val_top, b[2], b[3] - val_top) for b in in_val]
        whole(region, f"{stem}_val.png", shifted, out / "val", val_coco)
    for name, test_name in TEST.items():
        img = Image.open(data / name).convert("RGB")
        w, h = img.size
        bxs = boxes(data / (Path(name).stem + ".xml"))
        counts[name] = {"test": len(bxs)}
        shutil.copy(data / name, out / "test" / test_name)  # the file itself: nsod reads the GeoTIFF's GSD
        (out / "test/labels" / (Path(test_name).stem + ".txt")).write_text(
            "".join(yolo_line(b, w, h) + "\n" for b in bxs))
        test_coco.add(test_name, w, h, bxs)
        img.save(out / "yolo/images/test" / (Path(test_name).stem + ".png"))
        (out / "yolo/labels/test" / (Path(test_name).stem + ".txt")).write_text(
            "".join(yolo_line(b, w, h) + "\n" for b in bxs))
    val_coco.write(out / "val/gt.json")
    test_coco.write(out / "test/gt.json")
    (out / "yolo/data.yaml").write_text(
        f"path: {(out / 'yolo').resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n  0: tree\n")
    (out / "counts.json").write_text(json.dumps(counts, indent=1) + "\n")
    print(json.dumps(counts, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))

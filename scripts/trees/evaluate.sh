#!/usr/bin/env bash
# The rules' value for the tree-crown model (issue 35), measured as docs/trees.md reports it:
#
#   scripts/trees/evaluate.sh [WORK_DIR]      # WORK_DIR default: /var/tmp/nsod-trees (scripts/train-trees.sh's)
#
# 1. Validation split (the bottom quarter of the two Yellowstone images, never trained on): nsod infer with
#    models/trees-yolov8n.onnx and config/trees.toml's merge at conf 0.001 without rules, then each candidate of rules/trees/ alone through
#    nsod symbolic (--gsd 0.1), and nsod eval of the change (COCO AP50, AP, AR with maxDets 10000; paired block
#    bootstrap, 1,000 replicates of 100 px blocks, seed 0). A candidate is kept when its AP50 interval excludes 0
#    and lies above it.
# 2. Test set (OSBS_029 from Florida, SOAP_061 from California: other sites), once: nsod infer with the kept rules
#    (rules/trees.pl) and nsod eval --run, the same figures; Ultralytics' own `yolo val` on the test images for
#    reference when the training virtualenv is there (its own predictor, no slicing: it differs by design).
# The test set's table is what tests/trees.rs checks in CI (models/trees/eval-test.json).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
work="${1:-/var/tmp/nsod-trees}"
venv="${NSOD_TRAIN_VENV:-$root/.venv-train}"
data="$work/dataset"
[ -f "$data/val/gt.json" ] || { echo "error: no $data: run scripts/train-trees.sh (or scripts/trees/prepare.py) first" >&2; exit 1; }
cargo build --quiet --release --locked -p nsod
nsod="${CARGO_TARGET_DIR:-$root/target}/release/nsod"
out="$work/eval"
rm -rf "$out" && mkdir -p "$out"
echo tree > "$out/names.txt"
# The model and the merge settings of config/trees.toml (chosen on the validation split); conf 0.001 as COCO and
# Ultralytics' val evaluate.
common=(--config config/trees.toml --conf 0.001 --no-metrics -q)
boot=(--max-dets 10000 --bootstrap 1000 --bootstrap-block 100 --bootstrap-seed 0)

echo "== validation split: each candidate rule alone"
"$nsod" infer "$data/val" "${common[@]}" --no-symbolic --out "$out/val-raw"
"$nsod" eval --gt "$data/val/gt.json" --pred "$out/val-raw/predictions.jsonl" --max-dets 10000 \
  --out "$out/val-raw/eval" > "$out/val-raw/eval.txt"
for rule in rules/trees/*.pl; do
  name=$(basename "$rule" .pl)
  "$nsod" symbolic --pred "$out/val-raw/predictions.jsonl" --rules "$rule" --gsd 0.1 --names "$out/names.txt" \
    --out "$out/val-$name" -q
  "$nsod" eval --gt "$data/val/gt.json" --pred "$out/val-raw/predictions.jsonl" \
    --pred "$out/val-$name/predictions.jsonl" --label raw --label "$name" "${boot[@]}" \
    --out "$out/val-$name/eval" > "$out/val-$name/eval.txt"
done
python3 - "$out" rules/trees/*.pl <<'PY'
import json, os, sys
out, rules = sys.argv[1], sys.argv[2:]
print(f"{'rule':10s} {'dets changed':>12s}  {'ΔAP50 [95% interval]':32s} {'ΔAP [95% interval]':32s} {'ΔAR [95% interval]':32s} kept")
for r in rules:
    name = os.path.basename(r)[:-3]
    e = json.load(open(f"{out}/val-{name}/eval/eval.json"))
    ch = {c["metric"]: c for c in e["bootstrap"]["changes"]}
    cell = lambda c: f"{c['estimate']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]"
    kept = ch["AP50"]["low"] > 0
    changed = sum(1 for _ in open(f"{out}/val-{name}/report.csv")) - 1
    print(f"{name:10s} {changed:12d}  {cell(ch['AP50']):32s} {cell(ch['AP']):32s} {cell(ch['AR']):32s} {'yes' if kept else 'no'}")
PY

echo "== test set, once, with the kept rules (rules/trees.pl)"
"$nsod" infer "$data/test" "${common[@]}" --rules rules/trees.pl --gsd 0.1 --out "$out/test"
"$nsod" eval --gt "$data/test/gt.json" --run "$out/test" "${boot[@]}" --out "$out/test/eval" | tee "$out/test/eval.txt"
python3 - "$out/test/eval/eval.json" "$out/test/eval-test.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
table = {"runs": [{"label": r["label"], "detections": r["detections"], "coco": r["coco"]} for r in e["runs"]],
         "bootstrap": e["bootstrap"]}
json.dump(table, open(sys.argv[2], "w"), indent=1)
PY
echo "the committed table: cp $out/test/eval-test.json models/trees/eval-test.json"
for image in neon_osbs_10cm neon_soap_10cm; do
  python3 - "$data/test/gt.json" "$out/test" "$image" <<'PY'
import json, sys
gt, run, stem = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
keep = lambda name: name.rsplit(".", 1)[0] == stem
ids = {i["id"] for i in gt["images"] if keep(i["file_name"])}
gt["images"] = [i for i in gt["images"] if i["id"] in ids]
gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in ids]
json.dump(gt, open(f"{run}/gt-{stem}.json", "w"))
for name in ["predictions_raw", "predictions"]:
    with open(f"{run}/{name}-{stem}.jsonl", "w") as f:
        f.writelines(l for l in open(f"{run}/{name}.jsonl") if keep(json.loads(l)["image"]))
PY
  echo "-- $image"
  "$nsod" eval --gt "$out/test/gt-$image.json" --pred "$out/test/predictions_raw-$image.jsonl" \
    --pred "$out/test/predictions-$image.jsonl" --label raw --label refined --max-dets 10000 | sed -n 5,6p
done
if [ -x "$venv/bin/yolo" ]; then
  echo "== Ultralytics' own val on the test images (reference: its predictor, no slicing, conf 0.001)"
  (cd "$work" && YOLO_OFFLINE=1 "$venv/bin/yolo" detect val "model=$work/run/weights/best.pt" \
    "data=$data/yolo/data.yaml" split=test imgsz=416 batch=1 conf=0.001 plots=False device=cpu 2>&1 | grep -E "all|Speed")
fi

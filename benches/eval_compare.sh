#!/usr/bin/env bash
# COCO evaluation speed: nsod eval vs pycocotools on the same random dataset, 5,000 images x 50 detections
# (250,000 detections, ~66,000 ground-truth boxes; scripts/coco_synth.py --seed 7). Both times include reading the
# JSON files. Prints both (best of two runs each), the ratio, and checks the 12 numbers agree to 1e-6.
# Target (issue 7): nsod <= 2 s. Needs python3 with pycocotools (pip install pycocotools).
# Usage: benches/eval_compare.sh [IMAGES] [DETS_PER_IMAGE]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
images="${1:-5000}"
dets="${2:-50}"
py="${NSOD_PYTHON:-python3}"
"$py" -c "import pycocotools.cocoeval" 2>/dev/null || { echo "eval_compare.sh: $py lacks pycocotools (pip install pycocotools)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release -p nsod
bin="${CARGO_TARGET_DIR:-$root/target}/release/nsod"
"$py" scripts/coco_synth.py --seed 7 --images "$images" --dets-per-image "$dets" --out "$work" >/dev/null
best() { "$py" -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
ns=()
for _ in 1 2; do
  start=$(date +%s.%N)
  "$bin" eval --gt "$work/gt.json" --pred "$work/results.json" --out "$work/out" >/dev/null 2>&1
  end=$(date +%s.%N)
  ns+=("$("$py" -c "print($end - $start)")")
done
py_s=()
for _ in 1 2; do
  "$py" scripts/pycocotools_eval.py "$work/gt.json" "$work/results.json" 2>/dev/null >"$work/ref.json"
  py_s+=("$("$py" -c "import json; print(json.load(open('$work/ref.json'))['seconds'])")")
done
t_nsod=$(best "${ns[@]}")
t_py=$(best "${py_s[@]}")
"$py" - "$work/out/eval.json" "$work/ref.json" <<'PY'
import json, sys
ours, ref = (json.load(open(p))["coco"] for p in sys.argv[1:3])
worst = max(abs(ours[k] - ref[k]) for k in ref)
assert worst <= 1e-6, (ours, ref)
print(f"summary numbers agree: largest difference {worst:.1e}")
PY
echo "dataset: $images images x $dets detections"
printf 'nsod eval:   %.3f s (target <= 2 s)\n' "$t_nsod"
printf 'pycocotools: %.3f s\n' "$t_py"
"$py" -c "print(f'ratio: nsod is {$t_py / $t_nsod:.1f}x faster')"

#!/usr/bin/env bash
# The README's first command: sets up what is missing (scripts/setup.sh: ONNX Runtime, the release build, the sample
# images) and runs `nsod infer` with the rules, the knowledge graph and annotated images, then says where to look.
#
# With no arguments it runs the tree-crown detector (models/trees-yolov8n.onnx, trained on NEON data by
# scripts/train-trees.sh; docs/trees.md) with its rules (rules/trees.pl) on the NEON sample orthophotos (10 cm per
# pixel, so --gsd 0.1), writes the report, and evaluates the model before and after the rules on the two test
# images (other sites than its training data; neon_yell_2019_10cm.png is training data and is not evaluated).
# Give your own images or folders to run the default DOTA model on them instead; options after -- go to nsod infer.
#
# Usage: scripts/demo.sh [IMAGE_OR_FOLDER... [-- NSOD_INFER_OPTIONS...]]
#   scripts/demo.sh                                   # the samples; outputs in runs/demo/
#   scripts/demo.sh ~/aerial/ -- --gsd 0.3            # your images at 0.3 m per pixel
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

inputs=()
extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then
    shift
    extra=("$@")
    break
  fi
  inputs+=("$1")
  shift
done

samples=0
if [ "${#inputs[@]}" -eq 0 ]; then
  samples=1
  scripts/setup.sh
  inputs=(samples)
  extra=(--config config/trees.toml --rules rules/trees.pl --gsd 0.1 "${extra[@]}")
else
  scripts/setup.sh --skip-samples
fi

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
nsod="$target/release/nsod"
out=runs/demo

echo
echo "==> $nsod infer ${inputs[*]} --out $out --kg --save-vis ${extra[*]}"
set +e
"$nsod" infer "${inputs[@]}" --out "$out" --kg --save-vis --metrics-addr 127.0.0.1:0 "${extra[@]}"
status=$?
set -e

[ "$status" = 0 ] || exit "$status"
echo
echo "==> $nsod report $out"
"$nsod" report "$out" -q
echo "==> look at $out/report/index.html (gallery, boxes, the rules that changed each), $out/vis/ and"
echo "    $out/report.csv (why each confidence changed)"
if [ "$samples" = 1 ]; then
  eval_out=runs/demo-eval
  echo
  echo "==> evaluation on the test images (Florida and California; the model was trained on Yellowstone, and"
  echo "    neon_yell_2019_10cm.png is its training data): nsod infer at conf 0.001, then nsod eval before/after the rules"
  "$nsod" infer samples/neon_osbs_10cm.tif samples/neon_soap_10cm.png --out "$eval_out" --config config/trees.toml \
    --rules rules/trees.pl --gsd 0.1 --conf 0.001 --no-metrics -q
  "$nsod" eval --gt models/trees/test-gt.json --run "$eval_out" --max-dets 10000 --bootstrap 1000 \
    --out runs/demo-eval-table -q
  cat <<'TXT'
==> the ground truth is DeepForest's hand-drawn crown boxes (in the deepforest wheel). docs/trees.md has the
    experiment: training, the rules chosen on a validation split, and what the figures above mean.
==> your own images with the default DOTA model (planes, ships, vehicles, harbors, courts):
    scripts/demo.sh path/to/images -- --gsd METRES_PER_PIXEL
TXT
fi

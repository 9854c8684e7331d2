#!/usr/bin/env bash
# Peak memory (RSS) of `nsod infer`:
#   1. one 4096x4096 image (mirror-tiled dota_P0006.png), sliced 1024 / overlap 0.2: target <= 1.5 GB;
#   2. folders of 10 and of 200 images (copies of the 1024 crop): peak RSS must stay flat as the folder grows, in
#      the sequential schedule and in the pipelined one (dynamic model, batch 8: batches across images).
# Needs GNU time (/usr/bin/time), ../shared (or NSOD_TEST_MODELS / NSOD_TEST_DATA) and scripts/setup.sh's ONNX Runtime.
# Usage: benches/rss.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
models="${NSOD_TEST_MODELS:-$root/../shared/models}"
data="${NSOD_TEST_DATA:-$root/../shared/data}"
[ -x /usr/bin/time ] || { echo "rss.sh: needs GNU time (apt-get install time)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release -p nsod
mkdir -p "$work/big"
NSOD_BENCH_TILED="$work/big/tiled4096.png" NSOD_BENCH_TILE_ONLY=1 \
  cargo bench --quiet -p nsod-benches --bench infer_overhead >/dev/null

peak_mb() { # prints the peak RSS in MB of the command
  /usr/bin/time -f "%M" -o "$work/rss" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  echo $(( $(tail -n1 "$work/rss") / 1024 ))
}

model="$models/yolov8n-obb_1024.onnx"
big=$(peak_mb target/release/nsod infer --metrics-addr 127.0.0.1:0 "$work/big" --model "$model" --out "$work/out-big" --slice 1024 --overlap 0.2)
echo "peak RSS, one 4096x4096 image (26 slices): ${big} MB (target <= 1536 MB)"

for n in 10 200; do
  mkdir -p "$work/f$n"
  for i in $(seq 1 "$n"); do ln -s "$data/P0006_crop1024_x0_y0.png" "$work/f$n/img$i.png"; done
done
small=$(peak_mb target/release/nsod infer --metrics-addr 127.0.0.1:0 "$work/f10" --model "$model" --out "$work/out10")
large=$(peak_mb target/release/nsod infer --metrics-addr 127.0.0.1:0 "$work/f200" --model "$model" --out "$work/out200")
echo "peak RSS, 10 images: ${small} MB; 200 images: ${large} MB; ratio 200/10 = $(python3 -c "print(round($large / $small, 3))") (flat: ~1.0)"

# The pipelined schedule (issue "GPU"): its queues, not the folder, bound what it holds. At batch 8 ONNX Runtime's
# arena reaches its steady size at the second full batch (10 images make one), so 40 and 200 images are compared
# too.
dyn="$models/yolov8n-obb_dyn.onnx"
mkdir -p "$work/f40"
for i in $(seq 1 40); do ln -s "$data/P0006_crop1024_x0_y0.png" "$work/f40/img$i.png"; done
declare -A p
for n in 10 40 200; do
  p[$n]=$(peak_mb target/release/nsod infer --metrics-addr 127.0.0.1:0 "$work/f$n" --model "$dyn" --out "$work/p$n" --schedule pipelined --batch 8)
done
peak=$(python3 -c "import json; print(json.load(open('$work/p200/run.json'))['model_run']['peak_images'])")
echo "pipelined, batch 8: peak RSS 10 images: ${p[10]} MB; 40: ${p[40]} MB; 200: ${p[200]} MB; ratio 200/40 = $(python3 -c "print(round(${p[200]} / ${p[40]}, 3))") (flat: ~1.0); at most ${peak} images in flight"

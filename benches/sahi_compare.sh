#!/usr/bin/env bash
# Side by side: nsod infer vs Python SAHI (sahi + ultralytics + onnxruntime) on the same ONNX model and the same
# 4096x4096 image (mirror-tiled dota_P0006.png), slices 1024, overlap 0.2, full-image pass, greedy NMM on IoS 0.5.
# Prints both wall times (second of two runs each, model loaded) and the ratio.
# The Python side needs a virtualenv with sahi, ultralytics and onnxruntime: SAHI_PYTHON=/path/to/python, or the
# one scripts/fetch-models.sh made (models/.cache/venv) after `models/.cache/venv/bin/pip install sahi`.
# Usage: benches/sahi_compare.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
models="${NSOD_TEST_MODELS:-$root/../shared/models}"
py="${SAHI_PYTHON:-$root/models/.cache/venv/bin/python}"
"$py" -c "import sahi, ultralytics, onnxruntime" 2>/dev/null \
  || { echo "sahi_compare.sh: $py lacks sahi/ultralytics/onnxruntime (pip install sahi ultralytics onnxruntime)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release -p nsod
mkdir -p "$work/img"
NSOD_BENCH_TILED="$work/img/tiled4096.png" NSOD_BENCH_TILE_ONLY=1 cargo bench --quiet -p nsod-benches --bench infer_overhead >/dev/null
model="$models/yolov8n-obb_1024.onnx"
# nsod: the model is loaded per process, so time two images (same file twice) and take the difference.
cp "$work/img/tiled4096.png" "$work/img/tiled4096b.png"
t_one=$( { /usr/bin/time -f "%e" target/release/nsod infer --metrics-addr 127.0.0.1:0 "$work/img/tiled4096.png" --model "$model" --out "$work/o1" --slice 1024 >/dev/null; } 2>&1 | tail -n1)
t_two=$( { /usr/bin/time -f "%e" target/release/nsod infer --metrics-addr 127.0.0.1:0 "$work/img" --model "$model" --out "$work/o2" --slice 1024 >/dev/null; } 2>&1 | tail -n1)
nsod=$(python3 -c "print(round($t_two - $t_one, 3))")
dets=$(python3 -c "import json; print(len(json.loads(open('$work/o1/predictions.jsonl').readline())['detections']))")
echo "nsod ${nsod} s per image, ${dets} detections (rotated merge)"
sahi_line=$(cd "$work" && "$py" "$root/benches/sahi_compare.py" "$model" "$work/img/tiled4096.png" | tail -n1)
echo "$sahi_line"
sahi=$(echo "$sahi_line" | awk '{print $2}')
echo "ratio SAHI / nsod = $(python3 -c "print(round($sahi / $nsod, 2))")"

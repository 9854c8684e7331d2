#!/usr/bin/env bash
# INT8 against float (issue 34), on this machine, in one run (release build):
#   1. `nsod quantize` of the shared yolov8n-obb_1024 calibrated on the DOTA image and checked on a 4096 x 4096
#      mosaic of it (scripts/mirror-raster.sh): recall of the float detections, |Δscore|, mAP50 / mAP50-95 against
#      the float detections, and the mean session.run per slice of both models (target on the mosaic: session.run
#      >= 1.3x at recall >= 0.98 and mAP50 >= 0.97);
#   2. `nsod infer` of the mosaic with each model: the whole command's wall time, and apart from it the start-up
#      (model load, from run.json) and the sum of session.run (from --metrics-textfile).
#   Measured on two 2-core machines (the line `machine:` names the one a run is on). One whose `nsod doctor` showed
#   AVX-512 VNNI and AMX-INT8 (2026-12-07): recall 0.9964, mAP50 0.9944, mAP50-95 0.903 (1650 float detections on
#   the mosaic); session.run 113.0 -> 72.9 ms per slice (1.55x); nsod infer of the mosaic 3.52 -> 2.58 s (1.36x),
#   model load 0.05 / 0.09 s, session.run sum 2.95 -> 1.96 s (1.51x). An AMD EPYC (family 25, model 17: AVX-512
#   VNNI and BF16, no AMX; 2026-12-08): the same recall, mAP50 and mAP50-95; session.run
#   138.4 -> 73.7 ms (1.88x); nsod infer 4.57 -> 2.52 s (1.81x), session.run sum 3.96 -> 1.91 s. Targets met on both.
#   3. ONNX Runtime's session options on both models: --graph-optimization all / extended / basic / off, each with
#      --spinning off and on; the whole nsod infer of the mosaic: wall time, CPU time, session.run sum.
#   Measured (graph optimisation all, spinning off -> on), the first machine: float wall 3.70 -> 3.56 s, INT8 2.61 ->
#   2.43 s (4-7 % faster, 11-23 % more CPU time); `extended` costs INT8 15-20 % and float 28-35 %; at `basic` and
#   `off` the INT8 model is 1.7x slower than float (its QuantizeLinear/DequantizeLinear pairs become integer kernels
#   only from `extended` on). The AMD EPYC: float 4.63 -> 4.49 s, INT8 2.64 -> 2.59 s (2-3 % faster, 6-23 % more
#   CPU time); `extended` costs INT8 24-31 % and float 15-16 %; at `basic` and `off` INT8 is 1.6-1.8x slower than
#   float. Defaults: all, and spinning on in batch runs (auto; off in nsod serve), for float and INT8 alike, the best
#   measured on both machines.
# Needs ../shared (or NSOD_TEST_MODELS / NSOD_TEST_DATA), gdal-bin and scripts/setup.sh --quantize.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
models="${NSOD_TEST_MODELS:-$root/../shared/models}"
data="${NSOD_TEST_DATA:-$root/../shared/data}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/nsod-quantize-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release --locked -p nsod
nsod="${CARGO_TARGET_DIR:-$root/target}/release/nsod"
float="$models/yolov8n-obb_1024.onnx"
int8="$work/yolov8n-obb_1024.int8.onnx"
mosaic="$work/mosaic-4096.tif"
scripts/mirror-raster.sh "$data/dota_P0006.png" 4096 "$mosaic"

echo "== nsod quantize (calibrated on the DOTA image, checked on the 4096^2 mosaic)"
start=$(date +%s.%N)
"$nsod" quantize "$float" --calib "$data/dota_P0006.png" --check "$mosaic" --out "$int8" --min-agreement 0 \
  2> >(grep -v '^WARNING' >&2)
end=$(date +%s.%N)
python3 -c "print(f'nsod quantize took {$end - $start:.1f} s')"

metric_sum() { # metric_sum FILE NAME: the sum of a histogram's _sum samples in a textfile
  awk -v n="$2_sum" 'index($1, n) == 1 { s += $2 } END { print s + 0 }' "$1"
}
echo "== nsod infer of the mosaic, float then INT8"
for m in "$float" "$int8"; do
  name=$(basename "$m" .onnx)
  out="$work/out-$name"
  start=$(date +%s.%N)
  "$nsod" infer "$mosaic" --model "$m" --out "$out" --no-symbolic --no-metrics \
    --metrics-textfile "$work/$name.prom" -q
  end=$(date +%s.%N)
  python3 - "$name" "$start" "$end" "$out/run.json" "$(metric_sum "$work/$name.prom" nsod_model_run_duration_seconds)" \
    "$(metric_sum "$work/$name.prom" nsod_model_load_duration_seconds)" <<'PY'
import json, sys
name, start, end, run = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
runs, load = float(sys.argv[5]), float(sys.argv[6])
m = json.load(open(run))
dets = m.get("counts", {}).get("detections")
print(f"{name:28s} wall {end - start:6.2f} s, model load {load:5.2f} s, session.run sum {runs:6.2f} s, {dets} detections")
PY
done

echo "== ONNX Runtime session options (nsod infer of the mosaic; graph optimisation x spinning)"
for m in "$float" "$int8"; do
  name=$(basename "$m" .onnx)
  for g in all extended basic off; do
    for sp in off on; do
      out="$work/opt-$name-$g-$sp"
      /usr/bin/time -o "$work/time" -f "%e %U %S" \
        "$nsod" infer "$mosaic" --model "$m" --out "$out" --no-symbolic --no-metrics -q \
        --metrics-textfile "$work/opt.prom" --graph-optimization "$g" --spinning "$sp"
      read -r wall user sys < "$work/time"
      runs=$(metric_sum "$work/opt.prom" nsod_model_run_duration_seconds)
      python3 -c "print(f'{\"$name\":28s} graph {\"$g\":8s} spinning {\"$sp\":3s} wall {$wall:6.2f} s, cpu {$user + $sys:6.2f} s, session.run sum {$runs:6.2f} s')"
      rm -rf "$out"
    done
  done
done

#!/usr/bin/env bash
# Tracker speed (issue 32), on this machine, in one run:
#   1. one `Tracker::update` with 100 / 1,000 / 10,000 objects already tracked (target: <= 1 ms at 1,000), next to
#      the trackers-compatible axis-aligned ByteTrack on the same scenes; then criterion's figures;
#   2. frames per second of `nsod track` (release build) against the Python stack it replaces, supervision's
#      InferenceSlicer + onnxruntime + trackers' ByteTrack (benches/track_compare.py), on the same frames (the
#      flight of the tracking tests, scripts/flight.py: 150 frames 1280x720, FRAMES=n for fewer; needs the shared
#      DOTA image, $NSOD_TEST_DATA) and the same model, 2 ONNX Runtime threads each (target:
#      >= 2x): once with the same work (two slices per frame, no full-image pass, no camera-motion estimation),
#      once with nsod's defaults (the full-image pass adds a third model run per frame; compensation on).
#      Then the same with the same weights exported with dynamic height and width (models/yolov8n-obb_dyn.onnx): nsod
#      runs minimum rectangles (1024 x 736 slices), the Python callback letterboxes into imgsz as written, and once
#      more into the same minimum rectangles (`rect`); then both running two slices at once on one thread each
#      (nsod --sessions 2, in the sequential schedule and the pipelined one that `auto` picks with several sessions;
#      InferenceSlicer's thread_workers=2).
#      Measured on the 2-core machine, FRAMES=60 (one run, 2026-12-07; both stacks ran about 20 % slower than on the
#      day of the figures in docs/tracking.md's first table): update 0.088 / 0.963 / 17.5 ms for 100 / 1,000 /
#      10,000 objects (trackers-compatible: 0.152 / 15.1 / 2,423 ms). Frames (nsod's time includes process start
#      and model load, Python's excludes its warm-up): fixed model, same work 16.50 s vs 19.49 s (1.18x), nsod's
#      defaults 25.90 s; dynamic model 12.11 s (defaults 18.40 s) vs 20.72 s letterboxed into imgsz (1.71x) and
#      16.12 s with the same minimum rectangles (1.33x); two at once: nsod sequential 10.72 s (defaults 19.11 s: the
#      full pass runs alone), pipelined 10.25 s (defaults 14.82 s, 1.24x faster than one session), Python 23.66 s.
#      Each stack's fastest on the same inputs: 1.57x; nsod's fastest against the stack as written: 2.02x.
#      ONNX Runtime's work is the same in both stacks and is most of either's time: with the same inputs the 2x
#      target is not reached.
# Needs scripts/setup.sh --tests (the tracking virtualenv, $NSOD_VENV-track).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo bench --quiet -p nsod-benches --bench track -- --noplot 2>&1 | grep -v '^\(Gnuplot\|Benchmarking\|Found\|  [0-9]* (\)'

venv="${NSOD_VENV:-$root/.venv}-track"
[ -x "$venv/bin/python3" ] || { echo "track.sh: no $venv (run scripts/setup.sh --tests)" >&2; exit 1; }
work="$(mktemp -d)"
frames=${FRAMES:-150}
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release -p nsod
bin="${CARGO_TARGET_DIR:-$root/target}/release/nsod"
model="$root/models/yolov8n-obb.onnx"
# The flight of the tracking tests (scripts/flight.py): the shared DOTA image in the NEON sample, 1280x720.
dota="${NSOD_TEST_DATA:-$root/../shared/data}/dota_P0006.png"
[ -f "$dota" ] || { echo "track.sh: no $dota (set NSOD_TEST_DATA)" >&2; exit 1; }
"$venv/bin/python3" scripts/flight.py "$dota" "$root/samples/neon_yell_2019_10cm.png" "$work" "$frames"
conf=0.25
run_nsod() { # prints the seconds of one nsod track run over the frames: the model, then extra flags (--threads)
  local start end model=$1
  shift
  start=$(date +%s.%N)
  "$bin" track "$work/frames" --model "$model" --out "$work/out" --conf "$conf" --no-symbolic \
    --slice 1024 --overlap 0.2 --no-metrics -q "$@"
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}
theirs() { # prints the seconds of the Python stack: the model, its threads, then `rect`, `workers=N`
  local model=$1 threads=$2
  shift 2
  "$venv/bin/python3" -W ignore benches/track_compare.py "$model" "$work/frames" "$conf" "$threads" "$@" |
    awk '{print $2}'
}
dynamic="$root/models/yolov8n-obb_dyn.onnx"
# The same work as the Python stack: two 1024 slices per frame, no full-image pass, no camera-motion estimation.
same=$(run_nsod "$model" --threads 2 --no-full-pass --cmc off)
ids=$(($(wc -l < "$work/out/track_summary.csv") - 1))
# nsod's defaults: the full-image pass (a third model run per frame) and camera-motion compensation.
full=$(run_nsod "$model" --threads 2)
py_fixed=$(theirs "$model" 2)
# The same weights with dynamic height and width: nsod runs minimum rectangles (1024 x 736 slices) by default; the
# Python callback letterboxes into the model's imgsz as written (1024 x 1024), or, given `rect`, into the same
# minimum rectangles.
same_dyn=$(run_nsod "$dynamic" --threads 2 --no-full-pass --cmc off)
full_dyn=$(run_nsod "$dynamic" --threads 2)
py_dyn=$(theirs "$dynamic" 2)
py_dyn_rect=$(theirs "$dynamic" 2 rect)
# Both stacks running two slices at once, one thread each: nsod's --sessions 2, InferenceSlicer's thread_workers=2.
# First each frame's batches on the two sessions (the sequential schedule), then the pipelined schedule (what `auto`
# runs with several sessions): batches across frames, so a frame's lone full-image pass runs next to the following
# frame's first slice, and decoding, merging and tracking overlap the model.
same_dyn2=$(run_nsod "$dynamic" --threads 1 --sessions 2 --schedule sequential --no-full-pass --cmc off)
full_dyn2=$(run_nsod "$dynamic" --threads 1 --sessions 2 --schedule sequential)
same_pipe=$(run_nsod "$dynamic" --threads 1 --sessions 2 --no-full-pass --cmc off)
full_pipe=$(run_nsod "$dynamic" --threads 1 --sessions 2)
py_dyn_rect2=$(theirs "$dynamic" 1 rect workers=2)
python3 - "$frames" "$ids" "$same" "$full" "$py_fixed" "$same_dyn" "$full_dyn" "$py_dyn" "$py_dyn_rect" \
  "$same_dyn2" "$full_dyn2" "$same_pipe" "$full_pipe" "$py_dyn_rect2" <<'PY'
import sys
n, ids = int(sys.argv[1]), sys.argv[2]
(same, full, py_fixed, same_dyn, full_dyn, py_dyn, py_dyn_rect, same_dyn2, full_dyn2, same_pipe, full_pipe,
 py_dyn_rect2) = map(float, sys.argv[3:])
def row(name, s):
    print(f"  {name:<58} {s:7.2f} s  {n / s:5.2f} frames/s")
print(f"{n} frames 1280x720, {ids} tracks (nsod: process start and model load included; Python: warm-up excluded)")
print("fixed 1024 x 1024 model (yolov8n-obb.onnx):")
row("nsod track, same work (2 slices, no full pass, no CMC)", same)
row("nsod track, defaults (full-image pass + CMC)", full)
row("Python: supervision InferenceSlicer + onnxruntime + trackers", py_fixed)
print("dynamic-shape model (yolov8n-obb_dyn.onnx, the same weights):")
row("nsod track, same work (minimum rectangles 1024 x 736)", same_dyn)
row("nsod track, defaults (full pass 1024 x 576 + CMC)", full_dyn)
row("Python, letterboxed into imgsz (1024 x 1024)", py_dyn)
row("Python, minimum rectangles too (1024 x 736)", py_dyn_rect)
print("two slices at once, 1 thread each (dynamic model):")
row("nsod track --sessions 2 --threads 1 --schedule sequential, same work", same_dyn2)
row("nsod track --sessions 2 --threads 1 --schedule sequential, defaults", full_dyn2)
row("nsod track --sessions 2 --threads 1 (pipelined), same work", same_pipe)
row("nsod track --sessions 2 --threads 1 (pipelined), defaults", full_pipe)
row("Python, minimum rectangles, thread_workers=2, 1 thread each", py_dyn_rect2)
print(f"ratio, fixed model, same work:                        {py_fixed / same:.2f}x")
print(f"ratio, dynamic model, each stack's inputs:            {py_dyn / same_dyn:.2f}x")
print(f"ratio, dynamic model, the same inputs:                {py_dyn_rect / same_dyn:.2f}x   (target >= 2x)")
fastest = min(same_dyn, same_dyn2, same_pipe)
print(f"ratio, each stack's fastest on the same inputs:        {min(py_dyn_rect, py_dyn_rect2) / fastest:.2f}x")
print(f"ratio, nsod's fastest vs the Python stack as written:  {py_dyn / fastest:.2f}x")
print(f"nsod's defaults, 2 sessions (pipelined) vs 1 session:  {full_dyn / full_pipe:.2f}x")
PY

#!/usr/bin/env bash
# Video input speed (issue 33), on this machine, in one run: a 1080p H.264 video made with the ffmpeg tool from the
# flight of the tracking tests (scripts/flight.py, upscaled from 1280x720; FRAMES=n frames, 60 by default), then
#   1. decode only: nsod-video's reader (demux, decode, RGB24), benches/src/video_decode.rs, release build;
#   2. end to end: nsod track on the file (release build, 2 threads, defaults), with the shares of its wall time
#      spent decoding, in the model (slicing, inference, merge) and tracking (camera-motion estimation and tracker
#      updates), from its run.json.
# Target: decoding <= 10 % of the end-to-end time on the CPU. Measured on the 2-core machine (60 frames): decode only
# 37.5 frames/s; end to end 0.99 frames/s; shares decode 3.7 %, model 95.8 %, tracking 2.4 % (decoding runs on its
# own thread, so the shares overlap a little).
# Needs scripts/setup.sh --tests (the tracking virtualenv, ffmpeg) and the shared DOTA image ($NSOD_TEST_DATA).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
venv="${NSOD_VENV:-$root/.venv}-track"
[ -x "$venv/bin/python3" ] || { echo "video.sh: no $venv (run scripts/setup.sh --tests)" >&2; exit 1; }
dota="${NSOD_TEST_DATA:-$root/../shared/data}/dota_P0006.png"
[ -f "$dota" ] || { echo "video.sh: no $dota (set NSOD_TEST_DATA)" >&2; exit 1; }
frames=${FRAMES:-60}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release -p nsod -p nsod-benches --bin nsod --bin video-decode
bin="${CARGO_TARGET_DIR:-$root/target}/release"
"$venv/bin/python3" scripts/flight.py "$dota" "$root/samples/neon_yell_2019_10cm.png" "$work" "$frames" png
ffmpeg -hide_banner -loglevel error -y -framerate 30 -i "$work/frames/frame%04d.png" -vf scale=1920:1080 \
  -c:v libx264 -crf 18 -pix_fmt yuv420p "$work/flight1080.mp4"
decode_line=$("$bin/video-decode" "$work/flight1080.mp4")
start=$(date +%s.%N)
"$bin/nsod" track "$work/flight1080.mp4" --out "$work/out" --threads 2 --no-metrics -q \
  --ort-lib "$root/third_party/onnxruntime/libonnxruntime.so.1.31.1"
end=$(date +%s.%N)
python3 - "$decode_line" "$start" "$end" "$work/out/run.json" <<'PY'
import json, sys
line, start, end, run = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), json.load(open(sys.argv[4]))
wall = end - start
frames = run["tracking"]["frames"]
st = run["stage_seconds"]
decode = st["decode"]["seconds"]
model = st["detect"]["seconds"]
tracking = run["tracking"]["update_seconds"] + run["tracking"]["cmc_seconds"]
print(f"video: 1920x1080 H.264 (crf 18), {frames} frames")
print(line.replace("decode ", "decode only: ", 1))
print(f"end to end: {wall:.2f} s, {frames / wall:.2f} frames/s (process start and model load included)")
print(f"shares of the end-to-end time: decode {decode / wall:.1%} (target <= 10%), model {model / wall:.1%}, "
      f"tracking {tracking / wall:.1%} (camera motion {run['tracking']['cmc_seconds'] / wall:.1%}), "
      f"other {(wall - decode - model - tracking) / wall:.1%}")
PY

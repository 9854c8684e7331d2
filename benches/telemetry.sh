#!/usr/bin/env bash
# Telemetry overhead of `nsod infer`, on this machine, in one run:
#   1. the same folder (24 copies of the 1024 crop) with telemetry off (--no-metrics) and on (server on loopback),
#      alternated three times each; prints the medians and the slowdown (target < 1%);
#   2. a loopback load test: /metrics scraped at 200 requests/s for 10 s while inference runs; prints p50/p99
#      latency and errors (target p99 < 20 ms, no errors). Bounded in count and time; loopback only.
# Needs ../shared (or NSOD_TEST_MODELS / NSOD_TEST_DATA) and scripts/setup.sh's ONNX Runtime.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
models="${NSOD_TEST_MODELS:-$root/../shared/models}"
data="${NSOD_TEST_DATA:-$root/../shared/data}"
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cargo build --quiet --release -p nsod
cargo bench --quiet -p nsod-benches --bench scrape_load --no-run
mkdir -p "$work/in"
for i in $(seq 1 24); do ln -s "$data/P0006_crop1024_x0_y0.png" "$work/in/img$i.png"; done
model="$models/yolov8n-obb_1024.onnx"
run() { # prints wall seconds of one run
  local start end
  start=$(date +%s.%N)
  target/release/nsod infer "$work/in" --model "$model" --out "$work/out" --threads 2 "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}
off=(); on=()
for _ in 1 2 3; do
  off+=("$(run --no-metrics)")
  on+=("$(run --metrics-addr 127.0.0.1:0)")
done
python3 - "${off[@]}" "${on[@]}" <<'PY'
import statistics, sys
v = list(map(float, sys.argv[1:]))
off, on = statistics.median(v[:3]), statistics.median(v[3:])
print(f"infer 24 images: telemetry off {off:.2f} s, on {on:.2f} s (medians of 3): {100 * (on - off) / off:+.2f}%")
PY

# Load test during inference (48 images keep the model busy for the whole 10 s).
for i in $(seq 25 48); do ln -s "$data/P0006_crop1024_x0_y0.png" "$work/in/img$i.png"; done
target/release/nsod infer "$work/in" --model "$model" --out "$work/out-load" --threads 2 --metrics-addr 127.0.0.1:0 \
  --metrics-linger 30s >/dev/null 2>"$work/err" &
pid=$!
url=""
for _ in $(seq 1 200); do
  url=$(sed -n 's|^metrics: \(http://[^ ]*/metrics\)$|\1|p' "$work/err" | head -n1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/err" >&2; exit 1; }
cargo bench --quiet -p nsod-benches --bench scrape_load -- "$url" 200 10
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=""

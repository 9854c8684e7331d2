#!/usr/bin/env bash
# Telemetry overhead of `nsod infer`, on this machine, in one run:
#   1. a whole short run: the same folder (24 copies of the 1024 crop) with telemetry off (--no-metrics) and on
#      (server on loopback), alternated five times each; prints the medians of wall time and of CPU time (user +
#      system, less noisy on a shared machine) and the differences (target < 1%);
#   2. per image in steady state: the cost of recording one image's outcome (benches/benches/telemetry.rs), as a
#      share of the time one image takes in step 1 (target < 1%);
#   2. a loopback load test: /metrics scraped at 200 requests/s for 10 s while inference runs; prints p50/p99
#      latency and errors (target p99 < 20 ms, no errors). Bounded in count and time; loopback only.
# Needs ../shared (or NSOD_TEST_MODELS / NSOD_TEST_DATA) and scripts/setup.sh's ONNX Runtime.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
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
run() { # prints "wall cpu" seconds of one run
  /usr/bin/time -f "%e %U %S" -o "$work/time" \
    target/release/nsod infer "$work/in" --model "$model" --out "$work/out" --threads 2 "$@" >/dev/null 2>&1
  python3 -c "import sys; w, u, s = map(float, open('$work/time').read().split()[-3:]); print(w, u + s)"
}
off=(); on=()
for _ in 1 2 3 4 5; do
  off+=("$(run --no-metrics)")
  on+=("$(run --metrics-addr 127.0.0.1:0)")
done
cargo bench --quiet -p nsod-benches --bench telemetry -- record_image_outcome >"$work/bench" 2>/dev/null
record_ns=$(sed -n 's/^per-image telemetry: \([0-9.]*\) ns.*/\1/p' "$work/bench" | head -n1)
fixed_ms=$(sed -n 's/^fixed cost of telemetry per run: \([0-9.]*\) ms.*/\1/p' "$work/bench" | head -n1)
python3 - "$record_ns" "$fixed_ms" "${off[@]}" "${on[@]}" <<'PY'
import statistics, sys
record_ns = float(sys.argv[1] or "nan")
fixed_ms = float(sys.argv[2] or "nan")
v = [tuple(map(float, x.split())) for x in sys.argv[3:]]
off, on = v[:5], v[5:]
for k, what in [(0, "wall"), (1, "CPU")]:
    a, b = statistics.median(x[k] for x in off), statistics.median(x[k] for x in on)
    print(f"infer 24 images, {what}: telemetry off {a:.2f} s, on {b:.2f} s (medians of 5): {100 * (b - a) / a:+.2f}%")
per_image = statistics.median(x[0] for x in off) / 24
print(f"per image in steady state: recording takes {record_ns / 1e3:.1f} us of {per_image * 1e3:.0f} ms per image: "
      f"{100 * record_ns * 1e-9 / per_image:.4f}%")
whole = statistics.median(x[0] for x in off)
print(f"whole short run (24 images, {whole:.1f} s): fixed cost {fixed_ms:.2f} ms + 24 records = "
      f"{100 * (fixed_ms * 1e-3 + 24 * record_ns * 1e-9) / whole:.3f}% of the run; the wall and CPU medians above "
      f"vary by more than that from run to run on this shared machine")
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

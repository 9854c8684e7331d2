#!/usr/bin/env bash
# nsod serve under load (issue "nsod serve"), loopback only, bounded in requests and time (a few minutes on 2 cores):
#   1. `nsod infer` on a folder of N copies of the shared 1024 crop: images/s, the reference;
#   2. `nsod serve` (1 worker with every core, as nsod infer) at saturation: 4 clients back to back on /v1/detect,
#      requests/s (target >= 0.9x nsod infer);
#   3. open-loop load at 50% and 90% of that throughput: p50/p99 latency, zero answers other than 200 and 503,
#      and the p99 latency of /metrics scraped every 250 ms during the load.
# The load generator is benches/src/loadgen.rs (nsod-loadgen, ureq). Needs ../shared (or NSOD_TEST_DATA) and
# scripts/setup.sh's ONNX Runtime.
# Usage: benches/serve.sh [N]   (default 40 requests per phase)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
data="${NSOD_TEST_DATA:-$root/../shared/data}"
n="${1:-40}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/nsod-serve-bench.XXXXXX")"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
cargo build --quiet --release --locked -p nsod -p nsod-benches --bin nsod --bin nsod-loadgen
bin="${CARGO_TARGET_DIR:-$root/target}/release"
img="$data/P0006_crop1024_x0_y0.png"
mkdir -p "$work/images"
for i in $(seq 1 "$n"); do cp "$img" "$work/images/crop-$i.png"; done

"$bin/nsod" infer "$work/images" --out "$work/run" --no-metrics -q
infer_ips=$(python3 -c "
import json; m = json.load(open('$work/run/run.json'))
print(m['counts']['processed'] / (m['finished'] - m['started']))")
echo "nsod infer: $n images, $(printf %.2f "$infer_ips") images/s (run.json: processing time, model loaded)"

"$bin/nsod" serve --addr 127.0.0.1:0 --workers 1 --queue 8 --timeout 120s 2> "$work/serve.log" &
server=$!
for _ in $(seq 1 100); do grep -q "http://" "$work/serve.log" && break; sleep 0.2; done
addr="$(sed -n 's/.*http:\/\/\([0-9.:]*\) .*/\1/p' "$work/serve.log" | head -n1)"
[ -n "$addr" ] || { cat "$work/serve.log"; echo "error: the server did not start" >&2; exit 1; }
url="http://$addr/v1/detect"
"$bin/nsod-loadgen" "$url" "$img" closed 1 4 >/dev/null  # warm-up
sat="$("$bin/nsod-loadgen" "$url" "$img" closed 4 "$n")"
echo "saturation (4 clients): $sat"
serve_ips=$(sed 's/.*throughput=\([0-9.]*\).*/\1/' <<<"$sat")
python3 -c "print(f'serve / infer throughput: {$serve_ips / $infer_ips:.3f} (target >= 0.9)')"
for pct in 50 90; do
  rate=$(python3 -c "print($serve_ips * $pct / 100)")
  line="$("$bin/nsod-loadgen" "$url" "$img" open "$rate" "$n" "http://$addr/metrics")"
  echo "open loop at ${pct}% ($(printf %.2f "$rate") req/s): $line"
  grep -q "other=0 " <<<"$line" || { echo "error: answers other than 200 and 503" >&2; exit 1; }
done
kill -TERM "$server"; wait "$server" || true; server=""

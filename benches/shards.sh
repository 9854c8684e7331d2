#!/usr/bin/env bash
# Sharded runs on one machine (issue "Scale-out"): the same folder run as 1, 2 and 4 shards, each shard a concurrent
# local process with the cores split among them (--threads), then `nsod merge`. Prints per shard count the total
# wall time (plan + shards + merge), the merge's time and its share of the run (target: the merge < 5% of the run),
# and checks that the merged predictions equal the 1-shard run's.
# Needs ../shared (or NSOD_TEST_DATA) and scripts/setup.sh's ONNX Runtime. About 4 minutes on 2 cores.
# Usage: benches/shards.sh [IMAGES] [SHARD COUNTS...]   (default: 24 images; 1 2 4 shards)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
data="${NSOD_TEST_DATA:-$root/../shared/data}"
n_images="${1:-24}"
shift || true
counts=("${@:-1 2 4}")
read -r -a counts <<<"${counts[*]}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/nsod-shards-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release --locked -p nsod
nsod="${CARGO_TARGET_DIR:-$root/target}/release/nsod"
cores="$(nproc)"

mkdir -p "$work/imgs"
for i in $(seq 1 "$n_images"); do
  if [ $((i % 2)) = 0 ]; then src="$data/dota_P0006.png"; else src="$data/P0006_crop1024_x0_y0.png"; fi
  ln -s "$src" "$work/imgs/$(printf 'img%03d' "$i").png"
done
echo "$n_images images (the DOTA image and its 1024 crop, alternating), $cores cores"

now() { date +%s.%N; }
for n in "${counts[@]}"; do
  out="$work/run-$n"
  threads=$(( cores / n )); [ "$threads" -ge 1 ] || threads=1
  t0=$(now)
  "$nsod" plan "$work/imgs" --shards "$n" --out "$out" -q
  pids=()
  for i in $(seq 0 $((n - 1))); do
    "$nsod" infer --plan "$out/plan.json" --shard "$i/$n" --out "$out" --threads "$threads" --no-metrics -q &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(now)
  "$nsod" merge "$out" -q
  t2=$(now)
  python3 - "$n" "$threads" "$t0" "$t1" "$t2" <<'PY'
import sys
n, threads, t0, t1, t2 = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
total, merge = t2 - t0, t2 - t1
print(f"{n} shard(s) x {threads} thread(s): total {total:.1f} s (plan + shards {t1 - t0:.1f} s, merge {merge:.2f} s): "
      f"merge = {100 * merge / total:.1f}% of the run (target < 5%)")
PY
  if [ "$n" != "${counts[0]}" ]; then
    cmp -s "$work/run-${counts[0]}/predictions.jsonl" "$out/predictions.jsonl" \
      && echo "  predictions.jsonl identical to the ${counts[0]}-shard run" \
      || { echo "  predictions.jsonl DIFFERS from the ${counts[0]}-shard run"; exit 1; }
  fi
done

#!/usr/bin/env bash
# CPU cost of `nsod train-monitor` while it waits for rows: it polls (one stat of results.csv, args.yaml and
# weights/ per --poll-interval, default 1 s) rather than using file notifications. Prints the CPU used over 10 s
# of waiting as a share of one core (target < 1%).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
cargo build --quiet --release -p nsod
work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/run/weights"
printf 'epochs: 100\n' > "$work/run/args.yaml"
printf 'epoch,time,train/box_loss\n1,30,1.5\n' > "$work/run/results.csv"
target/release/nsod train-monitor "$work/run" --metrics-addr 127.0.0.1:0 >/dev/null 2>&1 &
pid=$!
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
sleep 10
t1=$(ticks); s1=$(date +%s.%N)
python3 -c "print(f'train-monitor idle: {100 * ($t1 - $t0) / $hz / ($s1 - $s0):.3f}% of one core over {$s1 - $s0:.1f} s (poll interval 1 s)')"

#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a given time each, libFuzzer with a 2 GB memory limit, growing
# fuzz/corpus/TARGET (git-ignored) from fuzz/seeds/TARGET; a crash lands in fuzz/artifacts/TARGET (copy it to
# fuzz/regressions/TARGET with a test that replays it). Prints each target's executions and coverage at the end.
# Needs cargo-fuzz (cargo install cargo-fuzz --locked); RUSTC_BOOTSTRAP lets the stable toolchain build with the
# sanitizer flags cargo-fuzz passes.
# Usage: fuzz/run.sh SECONDS [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="${NSOD_FUZZ_TARGET:-$PWD/target}"
cargo fuzz build >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t"
  log="$(mktemp)"
  cargo fuzz run "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || { tail -n 40 "$log"; echo "$t: FAILED (see fuzz/artifacts/$t)"; exit 1; }
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
  echo "$t: ${secs} s, ${execs} executions, coverage ${cov} edges, ${ft} features, corpus $(ls "corpus/$t" | wc -l) inputs, no crash"
  rm -f "$log"
done

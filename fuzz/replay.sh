#!/usr/bin/env bash
# For CI: builds every fuzz target (so they cannot rot) and replays the seeds and the regression corpus (inputs
# that once crashed) through each, once: fast, and a fixed crash stays fixed. In the dev profile (see README.md):
# about 4 minutes cold on the 2-core machine against 11.8 for the release profile fuzz/run.sh fuzzes with, and
# integer overflow checks and debug assertions are on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="${NSOD_FUZZ_TARGET:-$PWD/target}"
cargo fuzz build --dev
# cargo-fuzz has no --locked: a lock file the build had to change is stale, and fails here instead.
if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- Cargo.lock; then
  echo "fuzz/Cargo.lock is stale (the build changed it): commit the updated fuzz/Cargo.lock" >&2
  exit 1
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for t in $(cargo fuzz list); do
  mkdir -p "regressions/$t"
  cargo fuzz run --dev "$t" "seeds/$t" "regressions/$t" -- -runs=0 -rss_limit_mb=2048 -malloc_limit_mb=2048 >"$log" 2>&1 \
    || {
      echo "fuzz target $t fails on its seeds or regressions:" >&2
      # The cause (a panic, a sanitizer's report) and the command that reproduces it with the crashing input.
      grep -E -A2 "panicked at|ERROR: |Reproduce with:" "$log" >&2 || tail -n 30 "$log" >&2
      exit 1
    }
done
echo "fuzz: $(cargo fuzz list | wc -l) targets built, their seeds and regressions replayed without a crash"

#!/usr/bin/env bash
# The README's test command: sets up what the tests need (scripts/setup.sh --tests: ONNX Runtime, the reference
# tools and the Python references), runs the whole suite (cargo test --workspace --locked --no-fail-fast, extra
# arguments passed on) and closes with one summary line: how many tests passed and failed, and which did not run and why.
#
# Tests that need the shared assets (models that take PyTorch to export, a DOTA image that cannot be
# redistributed) run when NSOD_TEST_MODELS and NSOD_TEST_DATA name them (tests/README.md) and show as ignored
# otherwise. Under CI=true every test must run: a test that did not is a failure.
#
# Usage: scripts/test.sh [cargo test arguments...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/setup.sh --tests --skip-build
# The sharding test submits a real Slurm array job: a one-node cluster on this machine (left running).
if [ "$(id -u)" = 0 ]; then
  scripts/slurm-local.sh start
fi
export NSOD_VENV="${NSOD_VENV:-$root/.venv}"
# nsod quantize's tests run the quantiser of scripts/setup.sh --quantize (installed by --tests above).
export NSOD_QUANTIZE_PYTHON="${NSOD_QUANTIZE_PYTHON:-${NSOD_QUANTIZE_VENV:-$root/.venv-quantize}/bin/python3}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
set -e

python3 - "$log" "$status" <<'PY'
import collections, re, os, sys
log, status = sys.argv[1], int(sys.argv[2])
passed = failed = ignored = 0
not_run = collections.defaultdict(list)
for line in open(log, errors="replace"):
    m = re.match(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", line)
    if m:
        passed += int(m[1]); failed += int(m[2]); ignored += int(m[3])
    m = re.match(r"test (\S+) \.\.\. ignored(?:, (.*))?$", line.rstrip("\n"))
    if m:
        not_run[m[2] or "no reason given"].append(m[1])
summary = f"tests: {passed} passed, {failed} failed, {ignored} not run"
if status != 0 and failed == 0:
    summary += f" (cargo test exited with {status} before every test ran)"
print(summary)
for reason, names in sorted(not_run.items()):
    print(f"  not run ({reason}): {', '.join(sorted(names))}")
if ignored and os.environ.get("CI") == "true":
    print("error: CI=true: every test must run (set NSOD_TEST_MODELS and NSOD_TEST_DATA)", file=sys.stderr)
    sys.exit(1)
sys.exit(1 if status != 0 else 0)
PY

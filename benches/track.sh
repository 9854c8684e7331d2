#!/usr/bin/env bash
# Tracker speed (issue 32), on this machine, in one run: one `Tracker::update` with 100 / 1,000 / 10,000 objects
# already tracked (target: <= 1 ms at 1,000), next to the trackers-compatible axis-aligned ByteTrack on the same
# scenes; then criterion's figures for 100 and 1,000.
# Not yet here: frames per second of `nsod track` against supervision's InferenceSlicer + trackers' ByteTrack.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo bench --quiet -p nsod-benches --bench track -- --noplot 2>&1 | grep -v '^\(Gnuplot\|Benchmarking\|Found\|  [0-9]* (\)'

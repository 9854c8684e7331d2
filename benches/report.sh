#!/usr/bin/env bash
# `nsod report` at scale (issue "nsod report"): a synthetic run folder of N images (default 2000; 96 x 64 PNGs, two
# detections each, a rule change on every tenth) made into a report, then opened in Debian's Chromium through
# tests/browser/check.mjs. Prints the report's time (pictures made, then reused), the number of pages, the largest
# HTML file (target: under 1 MB) and the time to render the first gallery page in the browser, from navigation to
# every visible thumbnail decoded (target: under 2 s).
# Needs chromium and tests/browser/node_modules (scripts/setup.sh --tests). About a minute on 2 cores.
# Usage: benches/report.sh [IMAGES]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
n="${1:-2000}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/nsod-report-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release --locked -p nsod
nsod="${CARGO_TARGET_DIR:-$root/target}/release/nsod"

python3 - "$work" "$n" <<'PY'
import json, os, struct, sys, zlib
work, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{work}/images"); os.makedirs(f"{work}/run")
def png(w, h, seed):
    raw = b"".join(b"\0" + b"".join(bytes((x * 2 % 256, y * 3 % 256, seed % 251)) for x in range(w)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
with open(f"{work}/run/predictions.jsonl", "w") as p, open(f"{work}/run/report.jsonl", "w") as r:
    for i in range(n):
        name = f"img_{i:05}.png"
        open(f"{work}/images/{name}", "wb").write(png(96, 64, i))
        p.write(json.dumps({"image": name, "width": 96, "height": 64, "detections": [
            {"class_id": 0, "class_name": "plane", "score": 0.8, "bbox": [10, 10, 30, 20]},
            {"class_id": 1, "class_name": "ship", "score": 0.4, "bbox": [50, 30, 70, 50], "obb": [60, 40, 20, 20, 0.5]}]}) + "\n")
        if i % 10 == 0:
            r.write(json.dumps({"action": "PENALTY", "factor": 0.5, "image": name, "object_1": {"index": 1, "class_name": "ship",
                    "conf_before": 0.8, "conf_after": 0.4}, "object_2": None, "reason": "a ship on land", "rule": "on_land(ship)"}) + "\n")
json.dump({"complete": True, "inputs": [f"{work}/images"], "counts": {"failed": 0}, "failures": []}, open(f"{work}/run/run.json", "w"))
PY

for pass in "made" "reused"; do
  start=$(date +%s.%N)
  "$nsod" report "$work/run" --out "$work/site" -q
  end=$(date +%s.%N)
  python3 -c "print(f'report of $n images, pictures $pass: {$end - $start:.2f} s')"
done
pages=$(ls "$work/site/gallery" | wc -l)
largest=$(find "$work/site" -name '*.html' -printf '%s %P\n' | sort -n | tail -n1)
echo "$pages gallery pages, $(find "$work/site" -name '*.html' | wc -l) HTML files; largest: ${largest#* } (${largest%% *} bytes; target < 1048576)"
node tests/browser/check.mjs "$work/site" 0 "$work/shots" | python3 -c "
import json, sys
v = json.load(sys.stdin)
assert not v['console_errors'] and not v['failed_requests'], v
g = v['pages']['gallery']
print(f\"first gallery page in Chromium: {v['first_page_ms']} ms to {g['items']} thumbnails on the page decoded (target < 2000 ms)\")"

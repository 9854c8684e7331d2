#!/usr/bin/env bash
# Sample images for the README's run command: the example photos Ultralytics ships inside its PyPI wheel
# (ultralytics/assets/*.jpg), extracted into samples/ (git-ignored). Small and fast: only the wheel is downloaded.
# They are street photos, not aerial images: they show that the pipeline runs; use your own images for results.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ls samples/*.jpg >/dev/null 2>&1; then
  echo "==> samples/ already has images"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "==> downloading the ultralytics==8.4.190 wheel for its sample images"
python3 -m pip download --quiet --no-deps --only-binary=:all: "ultralytics==8.4.190" -d "$tmp"
mkdir -p samples
python3 - "$tmp"/ultralytics-*.whl samples <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("ultralytics/assets/") and name.endswith(".jpg"):
            with z.open(name) as src, open(os.path.join(dest, os.path.basename(name)), "wb") as dst:
                dst.write(src.read())
            n += 1
if n == 0:
    sys.exit("fetch-samples.sh: the wheel has no ultralytics/assets/*.jpg")
print(f"==> {n} sample images in {dest}/")
PY

#!/usr/bin/env bash
# One-time setup of a fresh clone:
#   1. ONNX Runtime 1.31.1: the PyPI wheel `onnxruntime` (or `onnxruntime-gpu` with --gpu) is downloaded with pip,
#      its sha256 verified, and libonnxruntime.so.1.31.1 extracted into third_party/onnxruntime/ (git-ignored).
#   2. The release binary: target/release/nsod.
#   3. The default model models/yolov8n-obb.onnx, by scripts/fetch-models.sh, when no model is there yet
#      (slow the first time: it installs PyTorch and Ultralytics in a throwaway virtualenv), and sample images in
#      samples/ (scripts/fetch-samples.sh).
#
# Usage: scripts/setup.sh [--gpu] [--skip-models] [--skip-build]
# Needs: python3 with pip, cargo. Safe to run again: finished steps are skipped.
set -euo pipefail

ORT_VERSION=1.31.1
# sha256 of the wheels, as published on PyPI (cp311 wheels; the library inside does not depend on Python).
declare -A ORT_SHA256=(
  [onnxruntime:x86_64]=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
  [onnxruntime:aarch64]=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
  [onnxruntime-gpu:x86_64]=e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6
)

package=onnxruntime
skip_models=0
skip_build=0
for arg in "$@"; do
  case "$arg" in
    --gpu) package=onnxruntime-gpu ;;
    --skip-models) skip_models=1 ;;
    --skip-build) skip_build=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is required (to download the ONNX Runtime wheel with pip)"
python3 -m pip --version >/dev/null 2>&1 || die "pip is required: install python3-pip"

arch="$(uname -m)"
key="$package:$arch"
expected="${ORT_SHA256[$key]:-}"
[ -n "$expected" ] || die "no pinned $package $ORT_VERSION wheel for $arch; pass --ort-lib to nsod with a library you trust"

dest="third_party/onnxruntime"
lib="$dest/libonnxruntime.so.$ORT_VERSION"
if [ -f "$lib" ] && [ -f "$dest/PACKAGE" ] && [ "$(cat "$dest/PACKAGE")" = "$package==$ORT_VERSION" ]; then
  say "ONNX Runtime $ORT_VERSION ($package) already in $dest"
else
  say "downloading $package==$ORT_VERSION from PyPI"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.11 \
    --platform "manylinux_2_28_$arch" "$package==$ORT_VERSION" -d "$tmp"
  wheel="$(ls "$tmp"/*.whl)"
  actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
  [ "$actual" = "$expected" ] || die "sha256 mismatch for $(basename "$wheel"): expected $expected, got $actual"
  say "sha256 verified: $(basename "$wheel")"
  rm -rf "$dest"
  mkdir -p "$dest"
  # Extract every shared library of the runtime (the GPU wheel adds its CUDA provider libraries).
  python3 - "$wheel" "$dest" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as dst:
                dst.write(src.read())
PY
  [ -f "$lib" ] || die "$(basename "$wheel") has no libonnxruntime.so.$ORT_VERSION"
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
  echo "$package==$ORT_VERSION" > "$dest/PACKAGE"
  say "ONNX Runtime $ORT_VERSION installed in $dest"
fi

if [ "$skip_build" = 0 ]; then
  say "building target/release/nsod"
  cargo build --release --locked -p nsod
fi

if [ "$skip_models" = 0 ]; then
  if ls models/*.onnx >/dev/null 2>&1; then
    say "model present: $(ls models/*.onnx | head -n1)"
  else
    scripts/fetch-models.sh
  fi
fi

if [ "$skip_models" = 0 ]; then
  scripts/fetch-samples.sh
fi

say "done. Check the installation with: target/release/nsod doctor"
say "run: target/release/nsod infer samples --out runs/infer"

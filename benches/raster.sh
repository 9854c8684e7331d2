#!/usr/bin/env bash
# Large rasters end to end (issue "Large rasters and geospatial output"): a 10000 x 10000 and a 30000 x 30000 (900
# megapixel) GeoTIFF, mirror-tiled from the DOTA image by scripts/mirror-raster.sh (tiled, deflate, EPSG:32633), the
# big one a cloud-optimised layout with internal overviews (gdaladdo), both run by `nsod infer` with slices of 1024.
# Prints, per raster: peak RSS (run.json's VmHWM), wall time, the detect stage's time and the sum of the model's
# session.run times (from --metrics-textfile), and the ratios the targets are about:
#   peak RSS <= 1 GB and 30000^2 within 1.2x of 10000^2 (memory flat in raster size);
#   whole-command wall time <= 1.10x the sum of session.run on the 30000^2 raster (reads hidden behind the model,
#   the outputs of its 86k detections written in about a second).
# Needs gdal-bin, ../shared (or NSOD_TEST_DATA) and scripts/setup.sh's ONNX Runtime. Takes about 10 minutes on 2 cores.
# Usage: benches/raster.sh [SIZES...]   (default: 10000 30000)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. benches/machine.sh
data="${NSOD_TEST_DATA:-$root/../shared/data}"
sizes=("${@:-10000 30000}")
read -r -a sizes <<<"${sizes[*]}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/nsod-raster-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release --locked -p nsod
nsod="${CARGO_TARGET_DIR:-$root/target}/release/nsod"

metric() { # metric FILE NAME: the value of an unlabelled or first-labelled sample
  awk -v n="$2" '$1 == n || index($1, n"{") == 1 { print $2; exit }' "$1"
}

declare -A rss
for size in "${sizes[@]}"; do
  tif="$work/mosaic-$size.tif"
  t0=$(date +%s.%N)
  scripts/mirror-raster.sh "$data/dota_P0006.png" "$size" "$tif"
  if [ "$size" -ge 20000 ]; then
    gdaladdo -q -r average --config COMPRESS_OVERVIEW DEFLATE "$tif" 2 4 8 16 32
  fi
  t1=$(date +%s.%N)
  out="$work/out-$size"
  start=$(date +%s.%N)
  "$nsod" infer "$tif" --out "$out" --no-metrics --metrics-textfile "$work/m-$size.prom" -q
  end=$(date +%s.%N)
  python3 - "$size" "$t0" "$t1" "$start" "$end" "$out/run.json" "$work/m-$size.prom" "$tif" <<'PY'
import json, os, re, sys
size, t0, t1, start, end, run, prom, tif = sys.argv[1:]
t0, t1, start, end = map(float, (t0, t1, start, end))
m = json.load(open(run))
text = open(prom).read()
def total(name, label=None):
    s = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if label is None or label in line:
                s += float(line.rsplit(" ", 1)[1])
    return s
runs = total("nsod_model_run_duration_seconds_sum")
detect = total("nsod_pipeline_stage_duration_seconds_sum", 'stage="detect"')
reads = total("nsod_pipeline_stage_duration_seconds_sum", 'stage="read"')
nread = total("nsod_pipeline_stage_duration_seconds_count", 'stage="read"')
rss = m["peak_rss_bytes"] / 2**20
print(f"{size} x {size} ({int(size)**2 / 1e6:.0f} MP, {os.path.getsize(tif) / 2**20:.0f} MiB on disk, made in {t1 - t0:.0f} s): "
      f"{m['counts']['detections']} detections, peak RSS {rss:.0f} MiB, wall {end - start:.1f} s")
over = "no overviews: the full-image pass decimates from full resolution" if int(size) < 20000 else "with overviews"
print(f"  detect stage {detect:.1f} s, session.run sum {runs:.1f} s: detect / session.run = {detect / runs:.3f}; "
      f"whole command / session.run = {(end - start) / runs:.3f} (target for 30000^2: <= 1.10; {over})")
print(f"  {int(nread)} slice reads took {reads:.1f} s in all, overlapped with the model; "
      f"{total('nsod_raster_read_bytes_total') / 2**30:.2f} GiB decoded, {int(total('nsod_raster_blocks_read_total'))} block reads, "
      f"{int(total('nsod_slices_skipped_total'))} nodata slices skipped")
open(os.path.join(os.path.dirname(prom), f"rss-{size}"), "w").write(f"{rss:.0f}")
PY
  rss[$size]=$(cat "$work/rss-$size")
  rm -f "$tif"
done
if [ "${#sizes[@]}" -ge 2 ]; then
  a=${sizes[0]} b=${sizes[-1]}
  python3 -c "print(f'peak RSS {$b} vs {$a}: {${rss[$b]} / ${rss[$a]}:.2f}x (target <= 1.2x); largest {max(${rss[$a]}, ${rss[$b]})} MiB (target <= 1024)')"
fi

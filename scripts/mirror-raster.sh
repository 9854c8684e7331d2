#!/usr/bin/env bash
# Builds a large georeferenced test raster from an image with GDAL's own tools: the image mirror-tiled (every other
# column flipped left-right, every other row flipped upside down, so there are no seams), cut to SIZE x SIZE and
# written as a tiled, deflate-compressed GeoTIFF in a projected CRS (default EPSG:32633, 0.5 m pixels, upper-left
# corner at easting 500000, northing 5000000).
#
# Usage: scripts/mirror-raster.sh SRC SIZE OUT.tif [EPSG] [PIXEL_METRES] [extra gdal_translate options...]
# Needs gdal-bin (gdal_translate, gdalwarp, gdalbuildvrt, gdalinfo, gdal_edit.py).
set -euo pipefail
src="$1" size="$2" out="$3" epsg="${4:-32633}" res="${5:-0.5}"
shift $(( $# < 5 ? $# : 5 ))
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nsod-mirror.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
read -r w h < <(gdalinfo "$src" | sed -n 's/^Size is \([0-9]*\), \([0-9]*\)$/\1 \2/p')
[ -n "${w:-}" ] || { echo "error: $src: gdalinfo gives no size" >&2; exit 1; }
# The four orientations, as rasters in a pixel grid (x right, y down as negative northing).
gdal_translate -q -of VRT -a_ullr 0 0 "$w" "-$h" "$src" "$tmp/o.vrt"
gdal_translate -q -of VRT -a_ullr "$w" 0 0 "-$h" "$src" "$tmp/h-src.vrt"
gdal_translate -q -of VRT -a_ullr 0 "-$h" "$w" 0 "$src" "$tmp/v-src.vrt"
gdal_translate -q -of VRT -a_ullr "$w" "-$h" 0 0 "$src" "$tmp/hv-src.vrt"
for k in h v hv; do
  gdalwarp -q -r near -te 0 "-$h" "$w" 0 -tr 1 1 "$tmp/$k-src.vrt" "$tmp/$k.tif"
done
gdal_translate -q -of GTiff "$tmp/o.vrt" "$tmp/o.tif"
tiles=()
for ((y = 0, j = 0; y < size; y += h, j++)); do
  for ((x = 0, i = 0; x < size; x += w, i++)); do
    k=o
    if (( i % 2 == 1 && j % 2 == 1 )); then k=hv; elif (( i % 2 == 1 )); then k=h; elif (( j % 2 == 1 )); then k=v; fi
    t="$tmp/t-$i-$j.vrt"
    gdal_translate -q -of VRT -a_ullr "$x" "-$y" "$((x + w))" "-$((y + h))" "$tmp/$k.tif" "$t"
    tiles+=("$t")
  done
done
gdalbuildvrt -q "$tmp/mosaic.vrt" "${tiles[@]}"
ulx=500000 uly=5000000
lrx=$(python3 -c "print($ulx + $size * $res)") lry=$(python3 -c "print($uly - $size * $res)")
gdal_translate -q -srcwin 0 0 "$size" "$size" -co TILED=YES -co COMPRESS=DEFLATE -co BIGTIFF=IF_SAFER \
  -co NUM_THREADS=ALL_CPUS "$@" "$tmp/mosaic.vrt" "$out.partial.tif"
gdal_edit.py -a_srs "EPSG:$epsg" -a_ullr "$ulx" "$uly" "$lrx" "$lry" "$out.partial.tif"
mv "$out.partial.tif" "$out"

#!/usr/bin/env bash
# A sharded nsod run on Slurm: the plan (here, once), an array job of shards, and the merge job that runs when every
# shard succeeded (--dependency=afterok). Prints the two job ids ("ARRAY MERGE").
# Usage: deploy/slurm/submit.sh --shards N --out DIR [--cpus C] [--partition P] [--] INPUT... [nsod plan settings]
#   e.g. deploy/slurm/submit.sh --shards 64 --out /scratch/run1 -- /data/tiles --kg --conf 0.3
# Environment: NSOD (the nsod binary, default nsod on PATH), NSOD_RETRIES, NSOD_PUSHGATEWAY (see the .sbatch files).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
shards="" out="" cpus=1 partition=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) shards="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --cpus) cpus="$2"; shift 2 ;;
    --partition) partition=(--partition "$2"); shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ -n "$shards" ] && [ -n "$out" ] && [ $# -gt 0 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
nsod="${NSOD:-nsod}"
# Slurm writes the tasks' logs into OUT/logs/ (kept when the merge commits the run folder).
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
"$nsod" plan "$@" --shards "$shards" --out "$out" >&2
export NSOD NSOD_PLAN="$out/plan.json" NSOD_OUT="$out" NSOD_SHARDS="$shards"
export NSOD="${NSOD:-nsod}"
array=$(sbatch --parsable "${partition[@]}" --array="0-$((shards - 1))" --cpus-per-task="$cpus" \
  --chdir="$out" --export=ALL "$here/nsod-shard.sbatch")
array="${array%%;*}"
merge=$(sbatch --parsable "${partition[@]}" --dependency="afterok:$array" --chdir="$out" --export=ALL \
  "$here/nsod-merge.sbatch")
echo "$array ${merge%%;*}"

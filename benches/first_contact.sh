#!/usr/bin/env bash
# Time and disk of the README's first command on a fresh clone, as a new user meets it: a new clone, an empty build
# folder and an empty pip cache, so the whole Rust build and every download happen. Crates come from cargo's
# registry cache when this machine has them; their size is reported separately (the target, <= 8 minutes and
# <= 1 GB of downloads, counts downloads beyond the Rust build).
#
# Downloads are the bytes this machine received while the command ran (/proc/net/dev), an upper bound.
#
# Usage: benches/first_contact.sh [REPO]   (default: this checkout's committed HEAD)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/machine.sh"
src="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)"
cmd="$(python3 - "$src/README.md" <<'PY'
import re, sys
m = re.search(r"<!-- quickstart:[^>]*-->\s*```sh\n(.*?)```", open(sys.argv[1]).read(), re.S)
print([l.split(" #")[0].strip() for l in m.group(1).splitlines() if l.strip()][0])
PY
)"
tmp="$(mktemp -d "${TMPDIR:-/var/tmp}/nsod-first-contact.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet "$src" "$tmp/nsod"
export CARGO_TARGET_DIR="$tmp/target" PIP_CACHE_DIR="$tmp/pip-cache" PIP_FIND_LINKS=""
cd "$tmp/nsod"
echo "first command: $cmd (fresh clone in $tmp/nsod, empty CARGO_TARGET_DIR and pip cache)"
rx() { awk -F'[: ]+' 'NR > 2 && $2 != "lo" { s += $3 } END { print s + 0 }' /proc/net/dev; }
rx0=$(rx)
start=$(date +%s.%N)
bash -c "$cmd" > "$tmp/out.txt" 2>&1 || { tail -n 30 "$tmp/out.txt"; echo "error: the first command failed" >&2; exit 1; }
end=$(date +%s.%N)
rx1=$(rx)
build="$(grep -Eo 'Finished `release` profile .* in [0-9ms. ]+' "$tmp/out.txt" | grep -Eo '[0-9]+m [0-9.]+s|[0-9.]+s$' | tail -n1)"
pip_bytes=$(du -sb "$PIP_CACHE_DIR" 2>/dev/null | cut -f1 || echo 0)
crates_bytes=$(python3 - Cargo.lock "${CARGO_HOME:-$HOME/.cargo}" <<'PY'
import glob, os, re, sys
lock, home = sys.argv[1], sys.argv[2]
pkgs = re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"\nsource = "registry', open(lock).read())
total = 0
for name, ver in pkgs:
    hits = glob.glob(os.path.join(home, "registry/cache/*", f"{name}-{ver}.crate"))
    total += os.path.getsize(hits[0]) if hits else 0
print(total)
PY
)
clone=$(du -sb "$tmp/nsod" | cut -f1)
target=$(du -sb "$CARGO_TARGET_DIR" | cut -f1)
mib() { python3 -c "print(f'{$1/2**20:.0f} MiB')"; }
python3 - "$start" "$end" <<PY
s, e = float("$start"), float("$end")
print(f"wall time of the first command: {(e - s) / 60:.1f} min ({e - s:.0f} s), of which the release build: ${build:-?}")
PY
echo "received over the network during the command (all downloads: wheels, apt packages, crates not cached): $(mib "$((rx1 - rx0))")"
echo "crates the Rust build downloads on a machine without cargo's cache: $(mib "$crates_bytes")"
echo "disk: clone with third_party/, samples/, runs/ $(mib "$clone"); build folder $(mib "$target"); pip cache $(mib "$pip_bytes")"

#!/usr/bin/env bash
# Builds deploy/Dockerfile with podman and runs the image the way clusters run it (issue 36).
#
#   scripts/container.sh            # prepare podman, make local bases when the registry's are unreachable, build, check
#   scripts/container.sh --build    # prepare and build only
#
# 1. podman, runc and debootstrap from apt (idempotent); /etc/containers/containers.conf with runc (crun fails on
#    cgroup hybrid mode) and ulimits within the machine's (higher ones fail with "setrlimit ... not permitted").
# 2. Bases: docker.io's debian:bookworm-slim and rust:1-bookworm when pullable; else local ones: a debootstrap
#    minbase of bookworm imported as localhost/nsod-base:bookworm, and localhost/nsod-rust:bookworm = that plus a C
#    toolchain and this machine's Rust toolchain (rustup's stable, docs left out). Passed as build arguments, never
#    by shadowing docker.io tags.
# 3. podman build with the commit as a build argument and this machine's CA bundle as the `ca` build secret (a
#    TLS-intercepting proxy stands between the build and crates.io / PyPI here); tagged as deploy/k8s names it.
# 4. Checks, in containers started with --read-only --tmpfs /tmp --user 65532:65532 (podman's own extra tmpfs
#    mounts off, so the test is what Docker users get): nsod --version names the commit; nsod doctor passes; nsod
#    infer on the samples into a mounted /runs equals the host binary's run folder file by file (run.json's times
#    and paths apart; GeoPackages row by row, as GDAL stamps their time of writing); nsod serve as
#    deploy/k8s/base/serve-deployment.yaml runs it, on a published loopback port: its probes, a tritonclient infer,
#    /v1/detect, and SIGTERM; the Kubernetes Jobs' commands taken from `kubectl kustomize` (an overlay sets 2
#    shards) run as containers on one volume: plan, shards, merge equal one process; the same for the Slurm task
#    scripts; ldd of every binary and library; the largest layers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '==> %s\n' "$*"; }
die() { printf 'error: container.sh: %s\n' "$*" >&2; exit 1; }
build_only=0
[ "${1:-}" = "--build" ] && build_only=1
image="${NSOD_IMAGE:-localhost/nsod:0.1.0}"
work="${NSOD_CONTAINER_WORK:-/var/tmp/nsod-container}"
mkdir -p "$work"

# 1. podman
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  [ "$(id -u)" = 0 ] || die "podman, runc and debootstrap are needed: sudo apt-get install podman runc debootstrap"
  say "installing podman, runc, debootstrap (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null
fi
conf=/etc/containers/containers.conf
if [ "$(id -u)" = 0 ] && ! grep -q 'nsod' "$conf" 2>/dev/null; then
  say "configuring podman in $conf (runc, ulimits within this machine's)"
  mkdir -p /etc/containers
  cat > "$conf" <<'EOF'
# Written by nsod's scripts/container.sh: runc (crun fails on this kernel's mixed cgroup hierarchy) and ulimits
# within the machine's own (higher values fail with "setrlimit ... operation not permitted").
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
fi

# 2. base images
base=docker.io/library/debian:bookworm-slim
rust=docker.io/library/rust:1-bookworm
if ! podman image exists "$base" && ! timeout 60 podman pull -q "$base" >/dev/null 2>&1; then
  base=localhost/nsod-base:bookworm
  if ! podman image exists "$base"; then
    say "no registry: making $base with debootstrap (about a minute)"
    rootfs="$work/rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
      || die "debootstrap failed: $work/debootstrap.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
  fi
fi
if ! podman image exists "$rust" && ! timeout 60 podman pull -q "$rust" >/dev/null 2>&1; then
  rust=localhost/nsod-rust:bookworm
  toolchain="$(rustc --print sysroot)"
  version="$(rustc --version)"
  if ! podman image exists "$rust" || [ "$(podman image inspect -f '{{index .Labels "nsod.rustc"}}' "$rust")" != "$version" ]; then
    say "no registry: making $rust from $base and this machine's $version"
    ctx="$work/rust-context"
    rm -rf "$ctx" && mkdir -p "$ctx"
    # The toolchain without its documentation (800 MB), hard-linked into the context.
    cp -al "$toolchain" "$ctx/toolchain" 2>/dev/null || cp -a "$toolchain" "$ctx/toolchain"
    rm -rf "$ctx/toolchain/share/doc"
    cat > "$ctx/Containerfile" <<EOF
FROM $base
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates gcc g++ libc6-dev make git curl python3 \\
 && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/cargo
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL nsod.rustc="$version"
EOF
    podman build -q -t "$rust" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
fi

# 3. the image
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
secret=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
say "building $image (commit $commit; bases $base, $rust)"
start=$SECONDS
began="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
podman build -f deploy/Dockerfile -t "$image" --build-arg "BASE_IMAGE=$base" --build-arg "RUST_IMAGE=$rust" \
  --build-arg "NSOD_GIT_COMMIT=$commit" "${secret[@]}" . 2>&1 | tail -n 20
say "built $image in $(( SECONDS - start )) s: $(podman image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
# The reference the Kubernetes manifests use (deploy/k8s/base/kustomization.yaml's images: newName:newTag).
k8s_ref="$(python3 - deploy/k8s/base/kustomization.yaml <<'PY'
import re, sys
t = open(sys.argv[1]).read()
name = re.search(r"newName:\s*(\S+)", t).group(1)
tag = re.search(r"newTag:\s*\"?([^\s\"]+)", t).group(1)
print(f"{name}:{tag}")
PY
)"
podman tag "$image" "$k8s_ref"
say "tagged $k8s_ref (deploy/k8s/base/kustomization.yaml)"
# What earlier builds left untagged once this one holds both tags (the image they named before, about 0.7 GB, and
# each build stage, about 3 GB): removed, so that rebuilding on one machine never fills its disk. Only dangling
# images made before this build and carrying nsod's labels (the runtime's OCI title, the build stage's rustc label)
# go.
for label in org.opencontainers.image.title=nsod nsod.rustc; do
  podman image prune -f --filter "label=$label" --filter "until=$began" >/dev/null
done
[ "$build_only" = 1 ] && exit 0

# 4. checks
run() { # run [PODMAN_RUN_OPTIONS...] -- NSOD_ARGS...: the image as clusters run it
  local opts=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  podman run --rm --read-only --read-only-tmpfs=false --tmpfs /tmp --user 65532:65532 "${opts[@]}" "$image" "$@"
}
say "nsod --version, nsod doctor"
version="$(run -- --version)"
echo "$version"
echo "$version" | grep -q "$commit" || die "nsod --version does not name the commit $commit"
run -- doctor
say "nsod infer on the samples: the container's run folder against the host's"
[ -d samples ] || scripts/fetch-samples.sh
host_nsod="${CARGO_TARGET_DIR:-$root/target}/release/nsod"
[ -x "$host_nsod" ] || cargo build --quiet --release --locked -p nsod
rm -rf "$work/runs" "$work/host"
mkdir -p "$work/runs"
chmod 0777 "$work/runs"
run -v "$root/samples:/samples:ro" -v "$work/runs:/runs" -- infer /samples --out /runs/demo --no-metrics -q --gsd 0.1
"$host_nsod" infer samples --out "$work/host" --no-metrics -q --gsd 0.1
python3 - "$work/host" "$work/runs/demo" <<'PY'
import json, os, sqlite3, sys
a, b = sys.argv[1], sys.argv[2]
files = lambda d: sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)
fa, fb = files(a), files(b)
assert fa == fb, f"different files: {sorted(set(fa) ^ set(fb))}"

def gpkg(path):
    """A GeoPackage's rows, table by table, without gpkg_contents.last_change (GDAL stamps the time of writing)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out = {}
    for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        cols = [c[1] for c in db.execute(f'PRAGMA table_info("{t}")') if c[1] != "last_change"]
        out[t] = db.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{t}" ORDER BY 1').fetchall()
    return out

for f in fa:
    if f == "run.json":
        continue
    if f.endswith(".gpkg"):
        assert gpkg(os.path.join(a, f)) == gpkg(os.path.join(b, f)), f"{f} differs (rows)"
        continue
    assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f"{f} differs"
ja, jb = json.load(open(os.path.join(a, "run.json"))), json.load(open(os.path.join(b, "run.json")))
assert ja["counts"] == jb["counts"], (ja["counts"], jb["counts"])
print(f"{len(fa)} files equal; {ja['counts']['detections']} detections")
PY
say "nsod serve on a published loopback port, as deploy/k8s/base/serve-deployment.yaml runs it"
port="${NSOD_CONTAINER_PORT:-18080}"
podman rm -f nsod-serve-check >/dev/null 2>&1 || true
serve_args="$(python3 - deploy/k8s/base/serve-deployment.yaml <<'PY'
import re, sys
m = re.search(r"args:\s*\[(.*?)\]", open(sys.argv[1]).read())
print(" ".join(a.strip().strip('"') for a in m.group(1).split(",")))
PY
)"
# shellcheck disable=SC2086 # the manifest's arguments, word by word
podman run -d --name nsod-serve-check --read-only --read-only-tmpfs=false --tmpfs /tmp --user 65532:65532 \
  -p "127.0.0.1:$port:8080" "$image" $serve_args >/dev/null
ready=0
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.5
done
[ "$ready" = 1 ] || { podman logs nsod-serve-check; die "nsod serve never became ready"; }
curl -fsS "http://127.0.0.1:$port/v2/health/live" >/dev/null || die "liveness probe failed"
py="${NSOD_VENV:-$root/.venv}/bin/python3"
"$py" - "127.0.0.1:$port" samples/neon_soap_10cm.png <<'PY'
import json, sys, urllib.request
import numpy as np
import tritonclient.http as http
url, image = sys.argv[1], sys.argv[2]
c = http.InferenceServerClient(url=url, network_timeout=120.0)
assert c.is_server_live() and c.is_server_ready()
model = "yolov8n-obb"  # the model file's stem (NSOD_MODEL in the image)
assert c.is_model_ready(model)
inp = http.InferInput("image", [1], "BYTES")
inp.set_data_from_numpy(np.array([open(image, "rb").read()], dtype=np.object_), binary_data=True)
r = c.infer(model, [inp])
n = len(r.as_numpy("scores"))
req = urllib.request.Request(f"http://{url}/v1/detect", data=open(image, "rb").read(),
                             headers={"Content-Type": "image/png"})
d = json.load(urllib.request.urlopen(req, timeout=120))
assert len(d["detections"]) == n, (len(d["detections"]), n)
print(f"tritonclient infer on {model}: {n} detections; /v1/detect: the same {n}")
PY
start=$SECONDS
podman stop -t 45 nsod-serve-check >/dev/null
code="$(podman inspect -f '{{.State.ExitCode}}' nsod-serve-check)"
podman rm nsod-serve-check >/dev/null
say "SIGTERM: stopped in $(( SECONDS - start )) s with exit code $code (drain 30s, grace 45s)"
[ "$code" = 0 ] || die "nsod serve exited with $code on SIGTERM"

say "the Kubernetes Jobs' own commands (kubectl kustomize's rendering; an overlay sets 2 shards) as containers on one volume"
k8s="$work/k8s"
rm -rf "$k8s" && mkdir -p "$k8s/runs/input" && cp -r deploy/k8s/base "$k8s/base"
cp samples/*.png samples/*.tif "$k8s/runs/input/"
chmod -R a+rwX "$k8s/runs"
mkdir -p "$k8s/two-shards"
cat > "$k8s/two-shards/kustomization.yaml" <<'EOF'
resources: [../base]
patches:
  - target: {kind: Job, name: nsod-plan}
    patch: '[{"op": "replace", "path": "/spec/template/spec/containers/0/args/3", "value": "2"}]'
  - target: {kind: Job, name: nsod-shards}
    patch: |-
      [{"op": "replace", "path": "/spec/completions", "value": 2},
       {"op": "replace", "path": "/spec/parallelism", "value": 2},
       {"op": "replace", "path": "/spec/template/spec/containers/0/args/2", "value": "--shard=2"}]
EOF
kubectl kustomize "$k8s/two-shards" > "$k8s/rendered.yaml"
# One line per Job: name, image, its args (JSON) and completions, as the cluster would run them.
"$py" - "$k8s/rendered.yaml" > "$k8s/jobs.txt" <<'PY'
import json, sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "Job":
        c = d["spec"]["template"]["spec"]["containers"][0]
        print(d["metadata"]["name"], c["image"], json.dumps(c["args"], separators=(",", ":")), d["spec"].get("completions", 1))
PY
job() { # job NAME: its line of jobs.txt
  grep "^$1 " "$k8s/jobs.txt" || die "no Job $1 in the rendered manifests"
}
k8s_run() { # k8s_run IMAGE [OPTIONS...] -- JSON_ARGS: one Pod's container, /runs the shared volume, no network
  local img="$1" opts=() args=()
  shift
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  mapfile -t args < <(python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$2")
  podman run --rm --read-only --read-only-tmpfs=false --tmpfs /tmp --user 65532:65532 --network none \
    -v "$k8s/runs:/runs" "${opts[@]}" "$img" "${args[@]}"
}
read -r _ plan_image plan_args _ < <(job nsod-plan)
read -r _ shard_image shard_args completions < <(job nsod-shards)
read -r _ merge_image merge_args _ < <(job nsod-merge)
[ "$plan_image" = "$k8s_ref" ] || die "the manifests' image $plan_image is not the one built ($k8s_ref)"
[ "$completions" = 2 ] || die "the overlay did not set 2 completions"
k8s_run "$plan_image" -- "$plan_args"
pids=()
for i in $(seq 0 $(( completions - 1 ))); do
  k8s_run "$shard_image" -e "JOB_COMPLETION_INDEX=$i" -- "$shard_args" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "a shard failed"; done
# The merge pushes to the cluster's Pushgateway: unreachable here (no network), a warning only.
k8s_run "$merge_image" -- "$merge_args" 2>&1 | grep -v "metrics export" || true
[ -f "$k8s/runs/run/run.json" ] || die "the merge wrote no run.json"
k8s_run "$plan_image" -- '["infer","/runs/input","--kg","--out","/runs/single","--no-metrics","-q"]'
same_as_one_process() { # same_as_one_process WHAT DIR: DIR's outputs equal the one-process run's, file by file
  python3 - "$k8s/runs/single" "$2" "$1" <<'PY'
import json, os, sys
a, b, what = sys.argv[1], sys.argv[2], sys.argv[3]
names = ["predictions.jsonl", "report.csv", "report.jsonl", "coco_results.json", "coco_images.json",
         "scene_graphs.jsonl", "kg_facts.pl", "kg.json"]
for f in names:
    assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f"{what}: {f} differs"
ja, jb = json.load(open(os.path.join(a, "run.json"))), json.load(open(os.path.join(b, "run.json")))
assert ja["counts"] == jb["counts"] and ja["counts"]["detections"] > 0, (what, ja["counts"], jb["counts"])
print(f"{what} equal one process ({', '.join(names)}); {jb['counts']['detections']} detections")
PY
}
same_as_one_process "plan, 2 shards and merge" "$k8s/runs/run"

say "the Slurm task scripts (deploy/slurm/*.sbatch) in containers: plan as submit.sh runs it, tasks 0 and 1, merge"
slurm_env=(-e NSOD=/usr/local/bin/nsod -e NSOD_PLAN=/runs/slurm/plan.json -e NSOD_OUT=/runs/slurm -e NSOD_SHARDS=2
  -e SLURM_ARRAY_TASK_MIN=0 -e SLURM_CPUS_PER_TASK=1 -e SLURM_ARRAY_JOB_ID=1 -v "$root/deploy/slurm:/slurm:ro")
k8s_run "$image" -- '["plan","/runs/input","--kg","--shards","2","--out","/runs/slurm"]'
pids=()
for i in 0 1; do
  k8s_run "$image" --entrypoint /bin/bash "${slurm_env[@]}" -e "SLURM_ARRAY_TASK_ID=$i" -- '["/slurm/nsod-shard.sbatch"]' &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "a Slurm task failed"; done
k8s_run "$image" --entrypoint /bin/bash "${slurm_env[@]}" -- '["/slurm/nsod-merge.sbatch"]'
same_as_one_process "the Slurm tasks and merge" "$k8s/runs/slurm"

say "every binary and library in the image finds its libraries (ldd)"
podman run --rm --entrypoint /bin/sh "$image" -c \
  'for f in /usr/local/bin/nsod /usr/local/lib/onnxruntime/*.so*; do ldd "$f" | grep "not found" && exit 1; done; echo "ldd: nothing missing"'
say "what the image is made of (largest layers)"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$image" | sort -h -r | head -n 6 | cut -c1-150
say "container checks passed"

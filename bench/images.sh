#!/usr/bin/env bash
# Image load benchmark: `quai load` vs `docker load` vs `podman load` of the
# same large docker archive (a debootstrap'd Debian rootfs plus a layer of
# 50,000 small files), in one run. Prints times, MB/s and ratios.
#
# Needs root, hyperfine, debootstrap (Debian's mirror), docker.io, podman
# (make deps). The fixture is built once and cached in $BENCH_DIR.
# Usage: bench/images.sh [RUNS]     (quai from target/release, see make release)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-3}
QUAI=${QUAI:-$PWD/target/release/quai}
BENCH_DIR=${BENCH_DIR:-/var/tmp/quai-bench-images}
SMALL_FILES=50000
MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: \(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

for tool in hyperfine debootstrap dockerd docker podman python3; do
    command -v "$tool" >/dev/null || { echo "bench/images.sh: $tool is missing (make deps)" >&2; exit 1; }
done
[ -x "$QUAI" ] || { echo "bench/images.sh: $QUAI is missing (make release)" >&2; exit 1; }

mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
DOCKER="docker -H unix://$WORK/docker.sock"

# A private dockerd (own data root, exec root, pid file and socket) on a
# fresh, empty data root: `dockerd-fresh N` stops the one running and
# starts one on $WORK/docker/N (the script is written to $WORK).
cat >"$WORK/dockerd-fresh" <<SH
#!/bin/sh
set -e
if [ -s "$WORK/dockerd.pid" ]; then
    pid=\$(cat "$WORK/dockerd.pid")
    kill "\$pid" 2>/dev/null || true
    for _ in \$(seq 1 300); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
fi
dockerd --data-root "$WORK/docker/\$1" --exec-root "$WORK/docker-exec" \
    --pidfile "$WORK/docker/pid" -H "unix://$WORK/docker.sock" \
    --bridge=none --iptables=false --ip-masq=false >>"$WORK/dockerd.log" 2>&1 &
echo \$! >"$WORK/dockerd.pid"
for _ in \$(seq 1 300); do $DOCKER version >/dev/null 2>&1 && exit 0; sleep 0.1; done
echo "dockerd did not start, see $WORK/dockerd.log" >&2
exit 1
SH
chmod +x "$WORK/dockerd-fresh"

cleanup() {
    if [ -s "$WORK/dockerd.pid" ]; then
        pid=$(cat "$WORK/dockerd.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    # Hundreds of thousands of files: deleted in the background, under a
    # name no later run uses.
    mv "$WORK" "$WORK.trash" 2>/dev/null && (rm -rf "$WORK.trash" >/dev/null 2>&1 &) || rm -rf "$WORK"
}
trap cleanup EXIT
"$WORK/dockerd-fresh" 0

ARCHIVE=$BENCH_DIR/bench-image.tar
if [ ! -s "$ARCHIVE" ]; then
    echo "building the fixture (once): debootstrap from $MIRROR + $SMALL_FILES small files" >&2
    ROOTFS=$BENCH_DIR/rootfs
    if [ ! -x "$ROOTFS/bin/sh" ]; then
        rm -rf "$ROOTFS"
        debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$BENCH_DIR/debootstrap.log" 2>&1
    fi
    CTX=$WORK/ctx
    mkdir -p "$CTX/files"
    python3 - "$CTX/files" "$SMALL_FILES" <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
for i in range(n):
    d = os.path.join(root, f"{i // 1000:03d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(512, 4096)))
PY
    tar -C "$ROOTFS" -c . | $DOCKER import - bench-base:latest >/dev/null
    printf 'FROM bench-base:latest\nCOPY files /files\nCMD ["/bin/bash"]\n' >"$CTX/Dockerfile"
    DOCKER_BUILDKIT=0 $DOCKER build -q -t bench:latest "$CTX" >/dev/null 2>&1
    $DOCKER save -o "$ARCHIVE.tmp" bench:latest
    mv "$ARCHIVE.tmp" "$ARCHIVE"
    rm -rf "$CTX"
fi
SIZE=$(stat -c %s "$ARCHIVE")
echo "archive: $ARCHIVE, $((SIZE / 1000000)) MB, layers: $(tar -xOf "$ARCHIVE" manifest.json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["Layers"]))')" >&2

# Each run loads into a fresh, empty store: a new state root for quai and
# podman, a dockerd restarted on a new data root for docker. Nothing is
# deleted between runs (deleting ~60,000 files and creating as many again
# right after stalls on this shared disk: ext4 scans past recently freed
# inodes); every store is deleted at the end. `sync` before each run, so
# that no tool pays for the previous one's writeback.
cat "$ARCHIVE" >/dev/null   # in the page cache for every tool alike
next() { echo "n=\$(( \$(cat $WORK/$1.n 2>/dev/null || echo 0) + 1 )); echo \$n >$WORK/$1.n"; }
cur() { echo "\$(cat $WORK/$1.n)"; }
PODMAN_BASE="podman --storage-driver overlay --events-backend file"
hyperfine --runs "$RUNS" --export-json "$WORK/results.json" \
    --prepare "$(next quai); sync" \
    -n quai "$QUAI --root $WORK/quai/$(cur quai) --runroot $WORK/quai-run/$(cur quai) load -q -i $ARCHIVE" \
    --prepare "$(next docker); $WORK/dockerd-fresh \$n; sync" \
    -n docker "$DOCKER load -q -i $ARCHIVE" \
    --prepare "$(next podman); sync" \
    -n podman "$PODMAN_BASE --root $WORK/podman/$(cur podman) --runroot $WORK/podman-run/$(cur podman) load -q -i $ARCHIVE"

python3 - "$WORK/results.json" "$SIZE" <<'PY'
import json, statistics, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
size_mb = int(sys.argv[2]) / 1e6
# This machine's disk is shared: the minimum is the least disturbed run,
# the median the typical one. Both are compared.
stat = {n: {"mean": r["mean"], "median": statistics.median(r["times"]), "min": min(r["times"])} for n, r in results.items()}
print()
print(f"{'tool':<8} {'mean s':>8} {'median s':>9} {'min s':>7} {'MB/s(min)':>10} {'median vs docker':>17} {'min vs docker':>14}")
for name in ("quai", "docker", "podman"):
    s = stat[name]
    print(f"{name:<8} {s['mean']:>8.2f} {s['median']:>9.2f} {s['min']:>7.2f} {size_mb / s['min']:>10.1f} "
          f"{s['median'] / stat['docker']['median']:>16.2f}x {s['min'] / stat['docker']['min']:>13.2f}x")
print()
for k in ("median", "min"):
    print(f"{k}: quai/docker = {stat['quai'][k] / stat['docker'][k]:.2f} (target <= 0.50), "
          f"quai/podman = {stat['quai'][k] / stat['podman'][k]:.2f}")
PY

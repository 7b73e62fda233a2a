#!/usr/bin/env bash
# quai networking benchmark, in one run:
#  (a) the time the default bridge network adds to `run --rm IMG true` over
#      `--network none`, for quai, docker (Debian's dockerd with its iptables
#      rules and docker-proxy) and podman (netavark), with hyperfine;
#  (b) TCP throughput (iperf3) through quai's bridge and its in-kernel port
#      publishing (quai-net driven directly, and quai's engine with `-p`),
#      against a plain veth pair and docker's published port through
#      docker-proxy.
# Everything happens in network namespaces this script creates (one of
# them plays the host, and dockerd, podman and quai all run in it); the real
# host's interfaces, routes, iptables and nftables rulesets are never
# touched, and no traffic leaves the machine.
#
# Figures are medians: part (a) runs ROUNDS rounds of hyperfine over all six
# commands (so that load from other work on the machine hits every engine
# alike) and reports the median of the per-round added times; part (b)
# repeats each iperf3 measurement REPEATS times. Every iperf3 client and
# server is pinned to one CPU (taskset), and so is dockerd (its docker-proxy
# inherits the affinity): every path gets the same single core, and a path
# that copies data through a userland proxy pays for it there, as it does on
# a busy host.
#
# Usage: bench/net.sh [SECONDS_PER_RUN] [RUNS] [ROUNDS] [REPEATS]
#        (as root; defaults 5, 10, 3, 3)
set -euo pipefail

SECONDS_PER_RUN=${1:-5}
RUNS=${2:-10}
ROUNDS=${3:-3}
REPEATS=${4:-3}
CPU=${BENCH_CPU:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for tool in iperf3 ip nft python3 hyperfine dockerd docker podman busybox tar taskset; do
    command -v "$tool" >/dev/null || { echo "net.sh: $tool is missing (make deps)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "net.sh: run as root" >&2; exit 1; }

echo "building quai and the net-bench driver (release)..." >&2
cargo build --quiet --release -p quai-net --example net-bench --manifest-path "$ROOT/Cargo.toml"
cargo build --quiet --release -p quai --manifest-path "$ROOT/Cargo.toml"
NETBENCH="$ROOT/target/release/examples/net-bench"
QUAI="$ROOT/target/release/quai"
WORK=$(mktemp -d /tmp/quai-bench-net.XXXXXX)
DOCKERD_PID=""

TAG=qb$$
HOST=${TAG}h C1=${TAG}c1 C2=${TAG}c2 OUT=${TAG}o P1=${TAG}p1 P2=${TAG}p2
TABLE=${TAG}t
BENCH_SUBNET=10.210.1.0/24
PIDS=()

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$DOCKERD_PID" ]; then
        docker_ ps -aq | xargs -r docker -H "unix://$WORK/docker.sock" rm -f >/dev/null 2>&1
        kill "$DOCKERD_PID"
        for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    podman_ ps -aq 2>/dev/null | xargs -r podman_ rm -f >/dev/null 2>&1
    quai_ ps -aq --no-trunc 2>/dev/null | xargs -r "$QUAI" --root "$WORK/quai" --runroot "$WORK/quai-run" rm -f >/dev/null 2>&1
    quai_ system reset -f >/dev/null 2>&1
    grep " $WORK" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$WORK"
    ip netns exec "$HOST" "$NETBENCH" down "$TABLE" "$BENCH_SUBNET" >/dev/null 2>&1 || true
    for ns in "$HOST" "$C1" "$C2" "$OUT" "$P1" "$P2"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

# The engines, all inside the host namespace.
# nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup
# mounts dockerd and podman need.
in_host() { nsenter --net="/run/netns/$HOST" "$@"; }
quai_() { in_host "$QUAI" --root "$WORK/quai" --runroot "$WORK/quai-run" "$@"; }
docker_() { docker -H "unix://$WORK/docker.sock" "$@"; }
podman_() { in_host podman --root "$WORK/podman" --runroot "$WORK/podman-run" --storage-driver overlay --events-backend file --runtime runc --network-config-dir "$WORK/podman-net" "$@"; }

for ns in "$HOST" "$C1" "$C2" "$OUT" "$P1" "$P2"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done

# Plain veth pair: the baseline.
ip link add "${TAG}a" netns "$P1" type veth peer name "${TAG}b" netns "$P2"
ip -n "$P1" addr add 10.211.0.1/24 dev "${TAG}a"
ip -n "$P2" addr add 10.211.0.2/24 dev "${TAG}b"
ip -n "$P1" link set "${TAG}a" up
ip -n "$P2" link set "${TAG}b" up

# An outside host linked to the test host (TEST-NET-1 addresses).
ip link add "${TAG}x" netns "$HOST" type veth peer name ext0 netns "$OUT"
ip -n "$HOST" addr add 192.0.2.1/24 dev "${TAG}x"
ip -n "$OUT" addr add 192.0.2.2/24 dev ext0
ip -n "$HOST" link set "${TAG}x" up
ip -n "$OUT" link set ext0 up

# quai's network, two containers, port 15201 published to the first.
SETUP=$(ip netns exec "$HOST" "$NETBENCH" up "$TABLE" "$BENCH_SUBNET" 15201:5201 \
    "/run/netns/$C1" "/run/netns/$C2")
C1_IP=$(awk -v p="/run/netns/$C1" '$1 == "container" && $2 == p {print $3}' <<<"$SETUP")
GATEWAY=$(awk '$1 == "gateway" {print $2}' <<<"$SETUP")

# ---- part (a): what the default bridge adds to run --rm IMG true -------------
ROOTFS="$WORK/rootfs"
mkdir -p "$ROOTFS"/{bin,etc,proc,sys,dev,tmp,root,usr,lib,lib64}
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOTFS/etc/passwd"
echo 'root:x:0:' > "$ROOTFS/etc/group"
tar -C "$ROOTFS" -cf "$WORK/busybox.tar" .
mkdir -p "$WORK/quai-run" "$WORK/podman-run" "$WORK/docker" "$WORK/docker-exec" "$WORK/podman-net"
for d in "$WORK/quai-run" "$WORK/podman-run"; do mount -t tmpfs -o mode=0700 bench "$d"; done

echo "starting dockerd in the bench namespace..." >&2
# nsenter execs dockerd (no function, no subshell): $! is dockerd itself,
# which cleanup stops.
nsenter --net="/run/netns/$HOST" taskset -c "$CPU" dockerd --data-root "$WORK/docker" --exec-root "$WORK/docker-exec" --pidfile "$WORK/docker.pid" \
    --host "unix://$WORK/docker.sock" >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 300); do docker_ info >/dev/null 2>&1 && break; sleep 0.1; done
docker_ info >/dev/null 2>&1 || { echo "dockerd did not start:"; tail -20 "$WORK/dockerd.log"; exit 1; } >&2
quai_ import "$WORK/busybox.tar" bench/busybox >/dev/null
docker_ import "$WORK/busybox.tar" bench/busybox >/dev/null
podman_ import "$WORK/busybox.tar" bench/busybox >/dev/null

PODMAN_ULIMITS="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
declare -A RUNCMD=(
    [quai-none]="$QUAI --root $WORK/quai --runroot $WORK/quai-run run --rm --network none bench/busybox true"
    [quai-bridge]="$QUAI --root $WORK/quai --runroot $WORK/quai-run run --rm bench/busybox true"
    [docker-none]="docker -H unix://$WORK/docker.sock run --rm --network none bench/busybox true"
    [docker-bridge]="docker -H unix://$WORK/docker.sock run --rm bench/busybox true"
    [podman-none]="podman --root $WORK/podman --runroot $WORK/podman-run --storage-driver overlay --events-backend file --runtime runc --network-config-dir $WORK/podman-net run --rm --network none $PODMAN_ULIMITS bench/busybox true"
    [podman-bridge]="podman --root $WORK/podman --runroot $WORK/podman-run --storage-driver overlay --events-backend file --runtime runc --network-config-dir $WORK/podman-net run --rm $PODMAN_ULIMITS bench/busybox true"
)
ORDER=(quai-none quai-bridge docker-none docker-bridge podman-none podman-bridge)
HF_ARGS=()
for name in "${ORDER[@]}"; do
    in_host sh -c "${RUNCMD[$name]}" >/dev/null 2>"$WORK/err" || { echo "$name does not run:"; cat "$WORK/err"; exit 1; } >&2
    HF_ARGS+=(--command-name "$name" "nsenter --net=/run/netns/$HOST ${RUNCMD[$name]}")
done
for round in $(seq "$ROUNDS"); do
    echo "part (a), round $round/$ROUNDS: run --rm IMG true, $RUNS runs each..." >&2
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$WORK/run-$round.json" "${HF_ARGS[@]}" >&2
done

# ---- part (b) with the engines: an iperf3 server in a container, -p --------
# iperf3 and its libraries come from the host, bind-mounted read-only.
IPERF_MOUNTS="-v /usr:/usr:ro -v /usr/lib:/lib:ro -v /usr/lib64:/lib64:ro"
quai_ run -d --name iperf -p 15202:5201 $IPERF_MOUNTS bench/busybox /usr/bin/iperf3 -s >/dev/null
docker_ run -d --name iperf -p 15203:5201 $IPERF_MOUNTS bench/busybox /usr/bin/iperf3 -s >/dev/null
for port in 15202 15203; do
    for _ in $(seq 50); do
        in_host busybox nc -z 127.0.0.1 "$port" 2>/dev/null && break
        sleep 0.1
    done
done
taskset -a -p -c "$CPU" "$(quai_ inspect -f '{{.State.Pid}}' iperf)" >/dev/null
taskset -a -p -c "$CPU" "$(docker_ inspect -f '{{.State.Pid}}' iperf)" >/dev/null

start_server() { # NETNS PORT
    taskset -c "$CPU" ip netns exec "$1" iperf3 -s -p "$2" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do
        ip netns exec "$1" ss -ltn "sport = :$2" | grep -q LISTEN && return 0
        sleep 0.1
    done
    echo "net.sh: iperf3 server in $1 did not start" >&2
    exit 1
}

throughput() { # NETNS TARGET PORT -> median Gbit/s received over REPEATS runs
    local runs=()
    for _ in $(seq "$REPEATS"); do
        runs+=("$(taskset -c "$CPU" ip netns exec "$1" iperf3 -c "$2" -p "$3" -t "$SECONDS_PER_RUN" -O 1 -J |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)')")
    done
    python3 -c 'import statistics,sys; print("%.2f" % statistics.median(map(float, sys.argv[1:])))' "${runs[@]}"
}

start_server "$P2" 5201
start_server "$C1" 5201

VETH=$(throughput "$P1" 10.211.0.2 5201)
BRIDGE=$(throughput "$C2" "$C1_IP" 5201)
HOST_PUBLISHED=$(throughput "$HOST" 192.0.2.1 15201)
LOCAL_PUBLISHED=$(throughput "$HOST" 127.0.0.1 15201)
OUTSIDE_PUBLISHED=$(throughput "$OUT" 192.0.2.1 15201)
HAIRPIN=$(throughput "$C2" "$GATEWAY" 15201)
QUAI_ENGINE=$(throughput "$HOST" 192.0.2.1 15202)
QUAI_ENGINE_LOCAL=$(throughput "$HOST" 127.0.0.1 15202)
DOCKER_PROXY=$(throughput "$HOST" 127.0.0.1 15203)
DOCKER_NAT=$(throughput "$OUT" 192.0.2.1 15203)

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

echo
echo "TCP throughput, iperf3 on CPU $CPU, median of $REPEATS runs of ${SECONDS_PER_RUN}s (Gbit/s; ratio to a plain veth pair)"
printf '%-44s %10s %8s\n' "path" "Gbit/s" "ratio"
printf '%-44s %10s %8s\n' "plain veth pair (baseline)" "$VETH" "1.00"
printf '%-44s %10s %8s\n' "container -> container, one quai bridge" "$BRIDGE" "$(ratio "$BRIDGE" "$VETH")"
printf '%-44s %10s %8s\n' "host -> published port (host address)" "$HOST_PUBLISHED" "$(ratio "$HOST_PUBLISHED" "$VETH")"
printf '%-44s %10s %8s\n' "host -> published port (127.0.0.1)" "$LOCAL_PUBLISHED" "$(ratio "$LOCAL_PUBLISHED" "$VETH")"
printf '%-44s %10s %8s\n' "outside host -> published port" "$OUTSIDE_PUBLISHED" "$(ratio "$OUTSIDE_PUBLISHED" "$VETH")"
printf '%-44s %10s %8s\n' "container -> published port (hairpin)" "$HAIRPIN" "$(ratio "$HAIRPIN" "$VETH")"
printf '%-44s %10s %8s\n' "quai run -p: host -> port (host address)" "$QUAI_ENGINE" "$(ratio "$QUAI_ENGINE" "$VETH")"
printf '%-44s %10s %8s\n' "quai run -p: host -> port (127.0.0.1)" "$QUAI_ENGINE_LOCAL" "$(ratio "$QUAI_ENGINE_LOCAL" "$VETH")"
printf '%-44s %10s %8s\n' "docker run -p: 127.0.0.1 (docker-proxy)" "$DOCKER_PROXY" "$(ratio "$DOCKER_PROXY" "$VETH")"
printf '%-44s %10s %8s\n' "docker run -p: outside host (iptables)" "$DOCKER_NAT" "$(ratio "$DOCKER_NAT" "$VETH")"
echo
echo "published port, quai engine over plain veth: $(ratio "$QUAI_ENGINE" "$VETH") (target >= 0.9)"
echo "published port, quai (127.0.0.1) over docker-proxy (127.0.0.1): $(ratio "$QUAI_ENGINE_LOCAL" "$DOCKER_PROXY") (target >= 2)"
echo
echo "setup cost of quai-net (microseconds):"
awk '$1 == "time" {printf "  %-10s %s\n", $2, $3}' <<<"$SETUP"

python3 - "$RUNS" "$WORK"/run-*.json <<'PY'
import json, statistics, sys
rounds = [{r["command"]: r["median"] * 1000 for r in json.load(open(f))["results"]} for f in sys.argv[2:]]
print(f"\n(a) run --rm IMG true: medians of {sys.argv[1]} runs, {len(rounds)} rounds (ms)")
print(f"{'':10}{'none':>10}{'bridge':>10}{'added':>10}   added per round")
added = {}
for e in ["quai", "docker", "podman"]:
    per_round = [r[e + "-bridge"] - r[e + "-none"] for r in rounds]
    added[e] = statistics.median(per_round)
    none = statistics.median(r[e + "-none"] for r in rounds)
    bridge = statistics.median(r[e + "-bridge"] for r in rounds)
    print(f"{e:10}{none:10.1f}{bridge:10.1f}{added[e]:10.1f}   " + " / ".join(f"{a:.1f}" for a in per_round))
for peer in ["docker", "podman"]:
    if added[peer] > 0:
        print(f"quai's added time / {peer}'s: {added['quai'] / added[peer]:.3f}" + ("  (target <= 0.25)" if peer == "docker" else ""))
PY

#!/usr/bin/env bash
# quai networking benchmark, part (b): TCP throughput (iperf3) through quai's
# bridge and its in-kernel port publishing, against a plain veth pair, in one
# run. Everything happens in network namespaces this script creates (one of
# them plays the host); the real host's interfaces, routes and ruleset are
# never touched, and no traffic leaves the machine.
#
# Part (a) (time the bridge adds to `quai run --rm IMG true`, against docker
# and podman) and the docker-proxy comparison need the engine wired to the
# network library (issue 6, phase 2): they are not measured yet.
#
# Usage: bench/net.sh [SECONDS_PER_RUN]   (as root; default 5)
set -euo pipefail

SECONDS_PER_RUN=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for tool in iperf3 ip nft python3; do
    command -v "$tool" >/dev/null || { echo "net.sh: $tool is missing (make deps)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "net.sh: run as root" >&2; exit 1; }

echo "building the net-bench driver (release)..." >&2
cargo build --quiet --release -p quai-net --example net-bench --manifest-path "$ROOT/Cargo.toml"
NETBENCH="$ROOT/target/release/examples/net-bench"

TAG=qb$$
HOST=${TAG}h C1=${TAG}c1 C2=${TAG}c2 OUT=${TAG}o P1=${TAG}p1 P2=${TAG}p2
TABLE=${TAG}t
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    ip netns exec "$HOST" "$NETBENCH" down "$TABLE" >/dev/null 2>&1 || true
    for ns in "$HOST" "$C1" "$C2" "$OUT" "$P1" "$P2"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

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
SETUP=$(ip netns exec "$HOST" "$NETBENCH" up "$TABLE" 10.210.1.0/24 15201:5201 \
    "/run/netns/$C1" "/run/netns/$C2")
C1_IP=$(awk -v p="/run/netns/$C1" '$1 == "container" && $2 == p {print $3}' <<<"$SETUP")
GATEWAY=$(awk '$1 == "gateway" {print $2}' <<<"$SETUP")

start_server() { # NETNS PORT
    ip netns exec "$1" iperf3 -s -p "$2" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do
        ip netns exec "$1" ss -ltn "sport = :$2" | grep -q LISTEN && return 0
        sleep 0.1
    done
    echo "net.sh: iperf3 server in $1 did not start" >&2
    exit 1
}

throughput() { # NETNS TARGET PORT -> Gbit/s received
    ip netns exec "$1" iperf3 -c "$2" -p "$3" -t "$SECONDS_PER_RUN" -O 1 -J |
        python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}

start_server "$P2" 5201
start_server "$C1" 5201

VETH=$(throughput "$P1" 10.211.0.2 5201)
BRIDGE=$(throughput "$C2" "$C1_IP" 5201)
HOST_PUBLISHED=$(throughput "$HOST" 192.0.2.1 15201)
LOCAL_PUBLISHED=$(throughput "$HOST" 127.0.0.1 15201)
OUTSIDE_PUBLISHED=$(throughput "$OUT" 192.0.2.1 15201)
HAIRPIN=$(throughput "$C2" "$GATEWAY" 15201)

ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

echo
echo "TCP throughput, iperf3 ${SECONDS_PER_RUN}s per run (Gbit/s; ratio to a plain veth pair)"
printf '%-44s %10s %8s\n' "path" "Gbit/s" "ratio"
printf '%-44s %10s %8s\n' "plain veth pair (baseline)" "$VETH" "1.00"
printf '%-44s %10s %8s\n' "container -> container, one quai bridge" "$BRIDGE" "$(ratio "$BRIDGE" "$VETH")"
printf '%-44s %10s %8s\n' "host -> published port (host address)" "$HOST_PUBLISHED" "$(ratio "$HOST_PUBLISHED" "$VETH")"
printf '%-44s %10s %8s\n' "host -> published port (127.0.0.1)" "$LOCAL_PUBLISHED" "$(ratio "$LOCAL_PUBLISHED" "$VETH")"
printf '%-44s %10s %8s\n' "outside host -> published port" "$OUTSIDE_PUBLISHED" "$(ratio "$OUTSIDE_PUBLISHED" "$VETH")"
printf '%-44s %10s %8s\n' "container -> published port (hairpin)" "$HAIRPIN" "$(ratio "$HAIRPIN" "$VETH")"
echo
echo "setup cost of quai-net (microseconds):"
awk '$1 == "time" {printf "  %-10s %s\n", $2, $3}' <<<"$SETUP"
echo
echo "not measured yet: docker-proxy (needs dockerd and the engine wired to quai-net, issue 6 phase 2)"

#!/usr/bin/env bash
# Registry benchmarks, one run each, all on 127.0.0.1.
#
# Builds a 5-layer image of ~300 MB (incompressible data, so compression cannot
# flatter anyone) as an OCI layout, then times:
#   server: `skopeo copy` of the image into `quai registry serve` vs into Debian's
#           docker-registry (the distribution project's server); ratio printed.
#   pull:   from docker-registry, into an empty store each time: `quai pull` vs
#           `docker pull` (a private dockerd) vs `podman pull` vs `skopeo copy`
#           into an OCI layout directory.
#   push:   the pulled image into an empty docker-registry each time (so no tool
#           can mount or skip blobs): `quai push` vs `docker push` vs `podman
#           push` vs `skopeo copy` from the OCI layout.
# Needs: skopeo, umoci, docker-registry, docker.io, podman (make deps).
# Usage: bench/pull.sh [MB per layer]   (QUAI=path/to/quai to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
LAYER_MB=${1:-60}
QUAI=${QUAI:-target/release/quai}
[ -x "$QUAI" ] || cargo build --release -p quai
QUAI=$(realpath "$QUAI")
WORK=$(mktemp -d /tmp/quai-bench-pull.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  umount -R "$WORK/podman" 2>/dev/null || true
  rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# docker-registry on a free port with its own root; echoes the port.
start_docker_registry() {
  local port; port=$(free_port)
  cat > "$WORK/dr-$port.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/dr-$port}}
http: {addr: 127.0.0.1:$port}
YML
  docker-registry serve "$WORK/dr-$port.yml" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  echo "$port"
}

echo "building a 5-layer image, ${LAYER_MB} MB per layer..."
umoci init --layout "$WORK/img" >/dev/null
umoci new --image "$WORK/img:big" >/dev/null
for i in 1 2 3 4 5; do
  mkdir -p "$WORK/layer$i"
  head -c "$((LAYER_MB << 20))" /dev/urandom > "$WORK/layer$i/data$i"
  umoci insert --image "$WORK/img:big" "$WORK/layer$i/data$i" "/data$i" >/dev/null
  rm -rf "$WORK/layer$i"
done
umoci config --image "$WORK/img:big" --config.cmd /data1 >/dev/null
du -sh "$WORK/img/blobs" | sed 's/^/image blobs: /'

# --- server: skopeo into quai registry serve vs docker-registry ---------------
QPORT=$(free_port)
"$QUAI" registry serve --listen "127.0.0.1:$QPORT" --root "$WORK/quai-registry" >/dev/null &
PIDS+=($!)
wait_port "$QPORT"
DPORT=$(start_docker_registry)
skopeo_push() { skopeo copy -q --dest-tls-verify=false "oci:$WORK/img:big" "docker://127.0.0.1:$1/bench/big:v1"; }
skopeo_pull() { rm -rf "$WORK/out"; skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$1/bench/big:v1" "oci:$WORK/out:x"; }
t=$(now); skopeo_push "$DPORT"; srv_push_dr=$(elapsed "$t")
t=$(now); skopeo_push "$QPORT"; srv_push_quai=$(elapsed "$t")
t=$(now); skopeo_pull "$DPORT"; srv_pull_dr=$(elapsed "$t")
t=$(now); skopeo_pull "$QPORT"; srv_pull_quai=$(elapsed "$t")

# --- clients -------------------------------------------------------------------
SRC=127.0.0.1:$DPORT/bench/big:v1
mkdir -p "$WORK/dockerd"
dockerd --data-root "$WORK/dockerd/data" --exec-root "$WORK/dockerd/exec" \
  --pidfile "$WORK/dockerd/pid" -H "unix://$WORK/dockerd/sock" \
  --bridge=none --iptables=false --ip-masq=false >"$WORK/dockerd/log" 2>&1 &
PIDS+=($!)
DOCKER=(docker -H "unix://$WORK/dockerd/sock")
for _ in $(seq 600); do "${DOCKER[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
PODMAN=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver overlay)

sync; t=$(now); "$QUAI" --root "$WORK/quai-store" --runroot "$WORK/quai-run" pull -q "$SRC" >/dev/null; pull_quai=$(elapsed "$t")
sync; t=$(now); "${DOCKER[@]}" pull -q "$SRC" >/dev/null; pull_docker=$(elapsed "$t")
sync; t=$(now); "${PODMAN[@]}" pull -q --tls-verify=false "$SRC" >/dev/null; pull_podman=$(elapsed "$t")
sync; t=$(now); rm -rf "$WORK/out"; skopeo copy -q --src-tls-verify=false "docker://$SRC" "oci:$WORK/out:x"; pull_skopeo=$(elapsed "$t")

# Each push goes to a registry of its own, so none finds blobs to skip or mount.
P=$(start_docker_registry); "$QUAI" --root "$WORK/quai-store" --runroot "$WORK/quai-run" tag "$SRC" "127.0.0.1:$P/bench/big:v1"
sync; t=$(now); "$QUAI" --root "$WORK/quai-store" --runroot "$WORK/quai-run" push -q "127.0.0.1:$P/bench/big:v1" >/dev/null; push_quai=$(elapsed "$t")
P=$(start_docker_registry); "${DOCKER[@]}" tag "$SRC" "127.0.0.1:$P/bench/big:v1"
sync; t=$(now); "${DOCKER[@]}" push -q "127.0.0.1:$P/bench/big:v1" >/dev/null; push_docker=$(elapsed "$t")
P=$(start_docker_registry)
sync; t=$(now); "${PODMAN[@]}" push -q --tls-verify=false "$SRC" "docker://127.0.0.1:$P/bench/big:v1" >/dev/null; push_podman=$(elapsed "$t")
P=$(start_docker_registry)
sync; t=$(now); skopeo copy -q --dest-tls-verify=false "oci:$WORK/out:x" "docker://127.0.0.1:$P/bench/big:v1"; push_skopeo=$(elapsed "$t")

ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
echo
printf '%-46s %9s %12s\n' "case (one run each)" "seconds" "quai ratio"
printf '%-46s %9.2f %12s\n' "server: skopeo push into docker-registry" "$srv_push_dr" ""
printf '%-46s %9.2f %12s\n' "server: skopeo push into quai registry serve" "$srv_push_quai" "$(ratio "$srv_push_quai" "$srv_push_dr")"
printf '%-46s %9.2f %12s\n' "server: skopeo pull from docker-registry" "$srv_pull_dr" ""
printf '%-46s %9.2f %12s\n' "server: skopeo pull from quai registry serve" "$srv_pull_quai" "$(ratio "$srv_pull_quai" "$srv_pull_dr")"
printf '%-46s %9.2f %12s\n' "pull: quai pull" "$pull_quai" ""
printf '%-46s %9.2f %12s\n' "pull: docker pull" "$pull_docker" "$(ratio "$pull_quai" "$pull_docker")"
printf '%-46s %9.2f %12s\n' "pull: podman pull" "$pull_podman" "$(ratio "$pull_quai" "$pull_podman")"
printf '%-46s %9.2f %12s\n' "pull: skopeo copy to an OCI dir" "$pull_skopeo" "$(ratio "$pull_quai" "$pull_skopeo")"
printf '%-46s %9.2f %12s\n' "push: quai push" "$push_quai" ""
printf '%-46s %9.2f %12s\n' "push: docker push" "$push_docker" "$(ratio "$push_quai" "$push_docker")"
printf '%-46s %9.2f %12s\n' "push: podman push" "$push_podman" "$(ratio "$push_quai" "$push_podman")"
printf '%-46s %9.2f %12s\n' "push: skopeo copy from an OCI dir" "$push_skopeo" "$(ratio "$push_quai" "$push_skopeo")"
echo "(quai ratio: quai's time / that tool's; targets: pull <= 0.5 x docker, push <= 0.7 x docker)"

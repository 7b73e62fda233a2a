#!/usr/bin/env bash
# Registry benchmarks, one run each, all on 127.0.0.1.
#
# Builds a 5-layer image of ~300 MB (incompressible data, so compression cannot
# flatter anyone) as an OCI layout, then times:
#   server: `skopeo copy` of the image into `quai registry serve` vs into Debian's
#           docker-registry (the distribution project's server); ratio printed.
#   client: once `quai pull`/`quai push` exist (they wait for the image store),
#           quai vs docker pull vs podman pull vs skopeo copy; until then skopeo
#           copy out of each server is timed as the reference figure.
# Needs: skopeo, umoci, docker-registry (make deps). Usage: bench/pull.sh [MB per layer]
set -euo pipefail
cd "$(dirname "$0")/.."
LAYER_MB=${1:-60}
QUAI=${QUAI:-target/release/quai}
[ -x "$QUAI" ] || cargo build --release -p quai
WORK=$(mktemp -d /tmp/quai-bench-pull.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }

echo "building a 5-layer image, ${LAYER_MB} MB per layer..."
umoci init --layout "$WORK/img" >/dev/null
umoci new --image "$WORK/img:big" >/dev/null
for i in 1 2 3 4 5; do
  mkdir -p "$WORK/layer$i"
  head -c "$((LAYER_MB << 20))" /dev/urandom > "$WORK/layer$i/data$i"
  umoci insert --image "$WORK/img:big" "$WORK/layer$i/data$i" "/data$i" >/dev/null
  rm -rf "$WORK/layer$i"
done
du -sh "$WORK/img/blobs" | sed 's/^/image blobs: /'

QPORT=$(free_port)
"$QUAI" registry serve --listen "127.0.0.1:$QPORT" --root "$WORK/quai-root" >/dev/null &
PIDS+=($!)
DPORT=$(free_port)
cat > "$WORK/dr.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/dr-root}}
http: {addr: 127.0.0.1:$DPORT}
YML
docker-registry serve "$WORK/dr.yml" >/dev/null 2>&1 &
PIDS+=($!)
for p in $QPORT $DPORT; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done

push() { skopeo copy -q --dest-tls-verify=false "oci:$WORK/img:big" "docker://127.0.0.1:$1/bench/big:v1"; }
pull() { rm -rf "$WORK/out"; skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$1/bench/big:v1" "oci:$WORK/out:x"; }

t=$(now); push "$DPORT"; push_dr=$(elapsed "$t")
t=$(now); push "$QPORT"; push_quai=$(elapsed "$t")
t=$(now); pull "$DPORT"; pull_dr=$(elapsed "$t")
t=$(now); pull "$QPORT"; pull_quai=$(elapsed "$t")

printf '%-44s %8.2f s\n' "skopeo push into docker-registry" "$push_dr"
printf '%-44s %8.2f s\n' "skopeo push into quai registry serve" "$push_quai"
printf '%-44s %8.2f s\n' "skopeo pull from docker-registry" "$pull_dr"
printf '%-44s %8.2f s\n' "skopeo pull from quai registry serve" "$pull_quai"
printf 'server ratio, push (quai / docker-registry): %.2f\n' "$(echo "$push_quai / $push_dr" | bc -l)"
printf 'server ratio, pull (quai / docker-registry): %.2f\n' "$(echo "$pull_quai / $pull_dr" | bc -l)"

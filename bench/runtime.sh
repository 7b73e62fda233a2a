#!/usr/bin/env bash
# Container start-to-exit time: `quai-runtime run` of a busybox bundle that
# runs `true`, against crun and runc, with and without a new network
# namespace, and with cgroup limits (memory + pids) plus Docker's default
# seccomp profile. Prints means, ratios, peak RSS and, separately, the
# seccomp filter compile time (bench/seccomp-compile.sh).
#
# usage: bench/runtime.sh [RUNS]        (as root; builds quai in release mode)
#
# crun 1.8 refuses this host's hybrid cgroup v1 layout: it runs in a
# private mount namespace with cgroup2 mounted on /sys/fs/cgroup (see
# DESIGN.md). Rather than pay that wrapper on every run, quai and crun are
# compared inside one such mount namespace (one hyperfine run), where both
# see a unified cgroup2 host and both create the container's cgroup (crun's
# cgroupfs manager: each starts its init in the cgroup with clone3), and
# quai and runc in the host's (another): neither comparison carries a
# wrapper. crun with the per-run wrapper (and its cgroup manager disabled,
# as DESIGN.md runs it) is measured too, since that is what running it on
# this host costs.
set -euo pipefail
runs=${1:-50}
cd "$(dirname "$0")/.."

for tool in hyperfine crun runc busybox python3 unshare /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/runtime.sh: $tool is missing (make deps)" >&2; exit 1; }
done

cargo build --release -j 2 -p quai >&2
cargo build --release -j 2 -p quai-runtime --example seccomp_compile >&2
work=$(mktemp -d /tmp/quai-bench-runtime.XXXXXX)
state="$work/state"
cleanup() {
  for id in b-net b-nonet b-cg b-sec; do
    "$work/quai-runtime" --root "$state/quai" delete --force "$id" >/dev/null 2>&1 || true
    runc --root "$state/runc" delete --force "$id" >/dev/null 2>&1 || true
  done
  # quai keeps a read-only bind of its binary under its state root.
  umount -R "$state" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# State roots live on tmpfs, as /run does on a normal host (each runtime's
# default root is under /run).
mkdir -p "$state"
mount -t tmpfs -o mode=0700 quai-bench "$state"

ln -s "$PWD/target/release/quai" "$work/quai-runtime"
# Docker's default profile in the OCI `linux.seccomp` form, specialised as
# the engine does it (quai_runtime::seccomp::from_docker_profile: this
# machine's architecture, Docker's default capabilities, includes/excludes
# resolved), so every runtime gets the config.json docker would write.
seccomp_profile=tests/fixtures/docker-default-seccomp.json
target/release/examples/seccomp_compile "$seccomp_profile" --oci >"$work/seccomp.json"
make_bundle() { # name, variant(yes|no|limits|seccomp)
  local b="$work/$1"
  mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
  cp /bin/busybox "$b/rootfs/bin/busybox"
  ln -s busybox "$b/rootfs/bin/true"
  ln -s busybox "$b/rootfs/bin/sh"
  (cd "$b" && "$work/quai-runtime" spec)
  python3 - "$b/config.json" "$2" "$work/seccomp.json" <<'PY'
import json, sys
path, netns, seccomp = sys.argv[1], sys.argv[2], sys.argv[3]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["true"]
if netns == "limits":
    # Memory and pids limits; the default device rules stay (devices cgroup).
    spec["linux"]["resources"]["memory"] = {"limit": 67108864, "swap": 67108864}
    spec["linux"]["resources"]["pids"] = {"limit": 100}
else:
    spec["linux"].pop("resources", None)
if netns in ("limits", "seccomp"):
    spec["linux"]["seccomp"] = json.load(open(seccomp))
if netns == "no":
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
json.dump(spec, open(path, "w"), indent=2)
PY
}
make_bundle net yes
make_bundle nonet no
make_bundle cg limits
make_bundle sec seccomp

crun_wrapper="$work/crun-run"
cat > "$crun_wrapper" <<'SH'
#!/bin/sh
# crun on a hybrid cgroup v1 host (see DESIGN.md)
exec unshare -m sh -c 'umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; exec "$@"' sh "$@"
SH
chmod +x "$crun_wrapper"

declare -A cmd
for v in net nonet cg sec; do
  cmd[quai-$v]="$work/quai-runtime --root $state/quai run --bundle $work/$v b-$v"
  cmd[crun-$v]="crun --root $state/crun --cgroup-manager=cgroupfs run --bundle $work/$v b-$v"
  cmd[crun-nocg-$v]="crun --root $state/crun --cgroup-manager=disabled run --bundle $work/$v b-$v"
  cmd[runc-$v]="runc --root $state/runc run --bundle $work/$v b-$v"
done

# Sanity: every runtime runs both bundles.
for v in net nonet; do
  if ! { ${cmd[quai-$v]} && ${cmd[runc-$v]} && "$crun_wrapper" ${cmd[crun-nocg-$v]}; } >/dev/null; then
    echo "bench/runtime.sh: a runtime failed to run the $v bundle" >&2
    exit 1
  fi
done

# Runs a command in a private mount namespace with cgroup2 on /sys/fs/cgroup.
in_cgroup2_ns() { unshare -m sh -c 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' sh "$@"; }
for v in net nonet; do
  # quai vs crun, in one private mount namespace with cgroup2 on /sys/fs/cgroup.
  in_cgroup2_ns hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/$v-crun.json" \
    -n "quai-$v" "${cmd[quai-$v]}" -n "crun-$v" "${cmd[crun-$v]}" \
    -n "crun-nocg-$v" "${cmd[crun-nocg-$v]}" >&2
  # quai vs runc (and crun with its per-run wrapper) in the host's namespace.
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/$v-runc.json" \
    -n "quai-$v" "${cmd[quai-$v]}" -n "runc-$v" "${cmd[runc-$v]}" \
    -n "crun-wrapped-$v" "$crun_wrapper ${cmd[crun-nocg-$v]}" >&2
done

# The cgroup + seccomp case. Against runc: memory + pids limits and Docker's
# seccomp profile, in the host's namespace. crun cannot enforce the limits
# here (in the private cgroup2 namespace the memory and pids controllers
# belong to the host's v1 hierarchies), so against crun the same profile
# runs with a cgroup created but no limits set, in the private namespace.
if ! { ${cmd[quai-cg]} && ${cmd[runc-cg]} && in_cgroup2_ns ${cmd[quai-sec]} && in_cgroup2_ns ${cmd[crun-sec]}; } >/dev/null; then
  echo "bench/runtime.sh: a runtime failed to run the cg or sec bundle" >&2
  exit 1
fi
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/cg-runc.json" \
  -n "quai-cg" "${cmd[quai-cg]}" -n "runc-cg" "${cmd[runc-cg]}" >&2
in_cgroup2_ns hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/sec-crun.json" \
  -n "quai-sec" "${cmd[quai-sec]}" -n "crun-sec" "${cmd[crun-sec]}" >&2

peak_rss_kib() { # command... -> max RSS over 5 runs, KiB
  local max=0 r
  for _ in 1 2 3 4 5; do
    r=$(/usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}')
    [ "${r:-0}" -gt "$max" ] && max=$r
  done
  echo "$max"
}
# shellcheck disable=SC2086 # the commands are word lists on purpose
rss_quai=$(peak_rss_kib ${cmd[quai-net]})
# shellcheck disable=SC2086
rss_crun=$(peak_rss_kib "$crun_wrapper" ${cmd[crun-nocg-net]})
# shellcheck disable=SC2086
rss_runc=$(peak_rss_kib ${cmd[runc-net]})

python3 - "$work" "$rss_quai" "$rss_crun" "$rss_runc" <<'PY'
import json, sys
work, rss = sys.argv[1], dict(zip(["quai", "crun", "runc"], sys.argv[2:5]))
def means(path):
    return {r["command"]: r["mean"] * 1000 for r in json.load(open(path))["results"]}
print()
print("quai-runtime vs crun and runc: run a busybox bundle executing `true` (means of hyperfine runs)")
for variant, label in [("net", "with a new network namespace"), ("nonet", "without a network namespace")]:
    a, b = means(f"{work}/{variant}-crun.json"), means(f"{work}/{variant}-runc.json")
    quai_a, crun = a[f"quai-{variant}"], a[f"crun-{variant}"]
    quai_b, runc, wrapped = b[f"quai-{variant}"], b[f"runc-{variant}"], b[f"crun-wrapped-{variant}"]
    print(f"\n{label}:")
    nocg = a[f"crun-nocg-{variant}"]
    print(f"  same mount namespace: quai {quai_a:6.2f} ms  crun {crun:6.2f} ms   quai/crun = {quai_a / crun:.2f}x")
    print(f"                        crun without a cgroup {nocg:6.2f} ms   quai/that = {quai_a / nocg:.2f}x")
    print(f"  host namespace:       quai {quai_b:6.2f} ms  runc {runc:6.2f} ms   quai/runc = {quai_b / runc:.2f}x")
    print(f"                        crun with its per-run wrapper {wrapped:6.2f} ms   quai/that = {quai_b / wrapped:.2f}x")
c = means(f"{work}/cg-runc.json")
print("\nwith cgroup limits (memory + pids, default device rules) and Docker's seccomp profile, host namespace:")
print(f"  quai {c['quai-cg']:6.2f} ms  runc {c['runc-cg']:6.2f} ms   quai/runc = {c['quai-cg'] / c['runc-cg']:.2f}x  (target <= 0.50x)")
s = means(f"{work}/sec-crun.json")
print("with Docker's seccomp profile and a cgroup without limits, same mount namespace:")
print(f"  quai {s['quai-sec']:6.2f} ms  crun {s['crun-sec']:6.2f} ms   quai/crun = {s['quai-sec'] / s['crun-sec']:.2f}x  (target <= 1.00x)")
print("\npeak RSS (max over 5 runs; includes the container's processes, and crun's wrapper):")
for name in ["quai", "crun", "runc"]:
    print(f"  {name:5s} {int(rss[name]) / 1024:6.1f} MiB")
PY

echo
bench/seccomp-compile.sh "$seccomp_profile"

#!/usr/bin/env bash
# Container start-to-exit time: `quai-runtime run` of a busybox bundle that
# runs `true`, against crun and runc in the same hyperfine run, with and
# without a new network namespace. Prints means, ratios and peak RSS.
#
# usage: bench/runtime.sh [RUNS]        (as root; builds quai in release mode)
#
# crun 1.8 refuses this host's hybrid cgroup v1 layout: it runs, as
# DESIGN.md says, in a private mount namespace with cgroup2 mounted on
# /sys/fs/cgroup and its cgroup manager disabled. That wrapper costs a few
# milliseconds itself, so its own cost (the same wrapper running `true`) is
# measured too and "crun (net of wrapper)" subtracts it.
set -euo pipefail
runs=${1:-50}
cd "$(dirname "$0")/.."

for tool in hyperfine crun runc busybox python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/runtime.sh: $tool is missing (make deps)" >&2; exit 1; }
done

cargo build --release -p quai >&2
work=$(mktemp -d /tmp/quai-bench-runtime.XXXXXX)
state="$work/state"
cleanup() {
  for id in b-net b-nonet; do
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
make_bundle() { # name, keep-netns(yes|no)
  local b="$work/$1"
  mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
  cp /bin/busybox "$b/rootfs/bin/busybox"
  ln -s busybox "$b/rootfs/bin/true"
  ln -s busybox "$b/rootfs/bin/sh"
  (cd "$b" && "$work/quai-runtime" spec)
  python3 - "$b/config.json" "$2" <<'EOF'
import json, sys
path, netns = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["true"]
spec["linux"].pop("resources", None)
if netns == "no":
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
json.dump(spec, open(path, "w"), indent=2)
EOF
}
make_bundle net yes
make_bundle nonet no

crun_wrapper="$work/crun-run"
cat > "$crun_wrapper" <<'EOF'
#!/bin/sh
# crun on a hybrid cgroup v1 host (see DESIGN.md)
exec unshare -m sh -c 'umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; exec "$@"' sh "$@"
EOF
chmod +x "$crun_wrapper"

declare -A cmd
for v in net nonet; do
  cmd[quai-$v]="$work/quai-runtime --root $state/quai run --bundle $work/$v b-$v"
  cmd[crun-$v]="$crun_wrapper crun --root $state/crun --cgroup-manager=disabled run --bundle $work/$v b-$v"
  cmd[runc-$v]="runc --root $state/runc run --bundle $work/$v b-$v"
done
cmd[wrapper]="$crun_wrapper true"

# Sanity: every runtime runs the bundle.
for k in "${!cmd[@]}"; do
  ${cmd[$k]} >/dev/null || { echo "bench/runtime.sh: '$k' failed: ${cmd[$k]}" >&2; exit 1; }
done

for v in net nonet; do
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/$v.json" \
    -n "quai-$v" "${cmd[quai-$v]}" -n "crun-$v" "${cmd[crun-$v]}" -n "runc-$v" "${cmd[runc-$v]}" \
    -n "crun-wrapper" "${cmd[wrapper]}" >&2
done

peak_rss_kib() { # command... -> max RSS over 5 runs, KiB
  local max=0 r
  for _ in 1 2 3 4 5; do
    r=$(/usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {print $2}')
    [ "${r:-0}" -gt "$max" ] && max=$r
  done
  echo "$max"
}
rss_quai=$(peak_rss_kib ${cmd[quai-net]})
rss_crun=$(peak_rss_kib ${cmd[crun-net]})
rss_runc=$(peak_rss_kib ${cmd[runc-net]})

python3 - "$work" "$rss_quai" "$rss_crun" "$rss_runc" <<'EOF'
import json, sys
work, rss = sys.argv[1], dict(zip(["quai", "crun", "runc"], sys.argv[2:5]))
print()
print("quai-runtime vs crun and runc: run a busybox bundle executing `true` (mean of hyperfine runs)")
for variant, label in [("net", "with a new network namespace"), ("nonet", "without a network namespace")]:
    results = {r["command"]: r for r in json.load(open(f"{work}/{variant}.json"))["results"]}
    mean = lambda name: results[name]["mean"] * 1000
    wrapper = mean("crun-wrapper")
    quai, crun, runc = mean(f"quai-{variant}"), mean(f"crun-{variant}"), mean(f"runc-{variant}")
    crun_net = crun - wrapper
    print(f"\n{label}:")
    print(f"  quai-runtime            {quai:7.2f} ms")
    print(f"  crun (with wrapper)     {crun:7.2f} ms   quai/crun = {quai / crun:.2f}x")
    print(f"  crun (net of wrapper)   {crun_net:7.2f} ms   quai/crun = {quai / crun_net:.2f}x")
    print(f"  runc                    {runc:7.2f} ms   quai/runc = {quai / runc:.2f}x")
    print(f"  (wrapper alone          {wrapper:7.2f} ms)")
print("\npeak RSS (max over 5 runs, includes the container's own processes):")
for name in ["quai", "crun", "runc"]:
    print(f"  {name:5s} {int(rss[name]) / 1024:6.1f} MiB")
EOF

#!/usr/bin/env bash
# `run --rm IMG true` from start to exit, and 100 detached containers, for
# quai against docker (Debian's dockerd, started here with private dirs),
# podman and the runtimes alone, on one busybox image with --network none.
# Prints a table of figures and ratios.
#
# usage: bench/run.sh [RUNS] [COUNT]      (as root; builds quai in release mode,
#        or QUAI=path/to/quai bench/run.sh to measure that binary instead)
#   RUNS   hyperfine runs per command (default 30)
#   COUNT  detached containers for the second part (default 100)
#
# Baselines:
# - quai-runtime: `quai-runtime run` of a bundle whose config.json is the
#   very one quai's engine generated for the same container (same mounts,
#   capabilities, seccomp profile), on a plain copy of the rootfs: quai's
#   overhead over its own runtime.
# - crun: the same bundle through DESIGN.md's workaround for this hybrid
#   cgroup v1 host (a private mount namespace with cgroup2 on
#   /sys/fs/cgroup, cgroup manager disabled), wrapper included.
# - podman needs --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 here,
#   and runc as its runtime (its default, crun 1.8, refuses hybrid cgroups).
set -euo pipefail
runs=${1:-30}
count=${2:-100}
cd "$(dirname "$0")/.."

for tool in hyperfine crun dockerd docker podman busybox python3 unshare tar; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is missing (make deps)" >&2; exit 1; }
done

if [ -n "${QUAI:-}" ]; then
  quai_bin=$(realpath "$QUAI")   # another build of quai, e.g. one from before a change
else
  cargo build --release -j 2 -p quai >&2
  quai_bin="$PWD/target/release/quai"
fi
work=$(mktemp -d /tmp/quai-bench-run.XXXXXX)
dockerd_pid=""
cleanup() {
  set +e
  if [ -n "$dockerd_pid" ]; then
    # (xargs cannot run the shell functions docker_ and podman_)
    docker_ ps -aq | xargs -r docker -H "unix://$work/docker.sock" rm -f >/dev/null 2>&1
    kill "$dockerd_pid"
    for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  podman_ rm -a -f -t 0 >/dev/null 2>&1
  quai_ ps -aq --no-trunc 2>/dev/null | xargs -r "$quai_bin" --root "$work/quai" --runroot "$work/quai-run" rm -f >/dev/null 2>&1
  "$work/quai-runtime" --root "$work/rt" delete --force b-rt >/dev/null 2>&1
  umount -R "$work/rt" "$work/quai-run" "$work/docker" "$work/docker-exec" "$work/podman" "$work/podman-run" 2>/dev/null
  grep " $work" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

quai_() { "$quai_bin" --root "$work/quai" --runroot "$work/quai-run" "$@"; }
docker_() { docker -H "unix://$work/docker.sock" "$@"; }
podman_() { podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay --events-backend file --runtime runc "$@"; }

# Run roots on tmpfs, as /run is on a normal host.
mkdir -p "$work/quai-run" "$work/rt" "$work/podman-run"
for d in "$work/quai-run" "$work/rt" "$work/podman-run"; do mount -t tmpfs -o mode=0700 bench "$d"; done

# One busybox rootfs, as a tarball for every engine.
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
tar -C "$rootfs" -cf "$work/busybox.tar" .

echo "== images" >&2
quai_ import "$work/busybox.tar" bench/busybox >/dev/null
mkdir -p "$work/docker" "$work/docker-exec"
dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --pidfile "$work/docker.pid" \
  --host "unix://$work/docker.sock" --bridge none --iptables=false --ip6tables=false \
  >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 300); do docker_ info >/dev/null 2>&1 && break; sleep 0.1; done
docker_ info >/dev/null || { echo "dockerd did not start:"; tail -20 "$work/dockerd.log"; exit 1; } >&2
docker_ import "$work/busybox.tar" bench/busybox >/dev/null
podman_ import "$work/busybox.tar" bench/busybox >/dev/null

# The runtime-only bundle: the config quai generates, on a plain rootfs.
echo "== bundle" >&2
ln -s "$quai_bin" "$work/quai-runtime"
id=$(quai_ run -d --network none bench/busybox sleep 3600)
bundle="$work/bundle"
mkdir -p "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
mkdir -p "$bundle/etc"
cp "$work/quai/containers/$id/"{hosts,hostname,resolv.conf} "$bundle/etc/"
python3 - "$work/quai-run/containers/$id/config.json" "$bundle" <<'PY'
import json, sys
src, bundle = sys.argv[1], sys.argv[2]
spec = json.load(open(src))
spec["root"]["path"] = "rootfs"
spec["process"]["args"] = ["true"]
for m in spec["mounts"]:
    if m["destination"] in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
        m["source"] = bundle + "/etc/" + m["destination"].rsplit("/", 1)[1]
json.dump(spec, open(bundle + "/config.json", "w"), indent=1)
# crun 1.8 knows OCI versions up to 1.0.x; the config is the same otherwise.
spec["ociVersion"] = "1.0.2"
json.dump(spec, open(bundle + "/config-crun.json", "w"), indent=1)
PY
mkdir -p "$work/crun-bundle"
ln -s "$bundle/rootfs" "$work/crun-bundle/rootfs"
cp "$bundle/config-crun.json" "$work/crun-bundle/config.json"
quai_ rm -f "$id" >/dev/null
cat > "$work/crun-run" <<SH
#!/bin/sh
# crun on a hybrid cgroup v1 host (DESIGN.md)
exec unshare -m sh -c 'umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; exec crun --root $work/crun --cgroup-manager=disabled run --bundle $work/crun-bundle b-crun'
SH
chmod +x "$work/crun-run"

declare -A cmd=(
  [quai]="$quai_bin --root $work/quai --runroot $work/quai-run run --rm --network none bench/busybox true"
  [quai-runtime]="$work/quai-runtime --root $work/rt run --bundle $bundle b-rt"
  [crun]="$work/crun-run"
  [docker]="docker -H unix://$work/docker.sock run --rm --network none bench/busybox true"
  [podman]="podman --root $work/podman --runroot $work/podman-run --storage-driver overlay --events-backend file --runtime runc run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 bench/busybox true"
)
order=(quai quai-runtime crun docker podman)
for name in "${order[@]}"; do
  sh -c "${cmd[$name]}" >/dev/null 2>"$work/err" || { echo "$name does not run:"; cat "$work/err"; exit 1; } >&2
done

echo "== run --rm IMG true ($runs runs each)" >&2
args=()
for name in "${order[@]}"; do args+=(--command-name "$name" "${cmd[$name]}"); done
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/run.json" "${args[@]}" >&2

# The overhead figure, robust to the load of a shared machine: quai and
# its runtime alternate in short rounds (drift in the load hits both), and
# the median of the rounds' median differences is reported.
overhead_rounds=${OVERHEAD_ROUNDS:-7}
echo "== quai over its runtime: $overhead_rounds rounds" >&2
for r in $(seq "$overhead_rounds"); do
  hyperfine -N --warmup 2 --runs 10 --export-json "$work/round$r.json" \
    --command-name quai "${cmd[quai]}" --command-name quai-runtime "${cmd[quai-runtime]}" >/dev/null 2>&1
done

echo "== where quai's time goes (bench/timeline.py)" >&2
python3 bench/timeline.py 20 ${cmd[quai]} >"$work/timeline.txt"

echo "== $count detached containers" >&2
declare -A total
start_many() { # name, command prefix
  local t0 t1
  t0=$(date +%s%N)
  for i in $(seq "$count"); do sh -c "$2" >/dev/null; done
  t1=$(date +%s%N)
  total[$1]=$(( (t1 - t0) / 1000000 ))
}
start_many quai "$quai_bin --root $work/quai --runroot $work/quai-run run -d --network none bench/busybox sleep 3600"
start_many docker "docker -H unix://$work/docker.sock run -d --network none bench/busybox sleep 3600"
start_many podman "podman --root $work/podman --runroot $work/podman-run --storage-driver overlay --events-backend file --runtime runc run -d --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 bench/busybox sleep 3600"

# Memory of each monitor: RSS, and PSS (shared pages of one binary are
# counted once across all its processes).
mem() { # patterns (all in the command line) -> "count rss_kib pss_kib" (sums)
  python3 - "$@" <<'PY'
import os, sys
pats = sys.argv[1:]
n = rss = pss = 0
me = str(os.getpid())
for p in os.listdir("/proc"):
    if not p.isdigit() or p == me:
        continue
    try:
        cmd = open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        if not all(p in cmd for p in pats):
            continue
        roll = open(f"/proc/{p}/smaps_rollup").read()
    except OSError:
        continue
    vals = {l.split(":")[0]: int(l.split()[1]) for l in roll.splitlines()[1:] if l.split()[-1] == "kB"}
    n += 1
    rss += vals.get("Rss", 0)
    pss += vals.get("Pss", 0)
print(n, rss, pss)
PY
}
read -r quai_n quai_rss quai_pss <<<"$(mem "internal shim --root $work/quai")"
# Only this run's monitors: other users of the machine may run their own.
read -r shim_n shim_rss shim_pss <<<"$(mem "containerd-shim-runc-v2 -namespace moby" "-address $work/docker-exec/")"
read -r conmon_n conmon_rss conmon_pss <<<"$(mem "conmon" "$work/podman")"

python3 - "$work" "$overhead_rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
diffs = []
for r in range(1, rounds + 1):
    res = {x["command"]: x for x in json.load(open(f"{work}/round{r}.json"))["results"]}
    diffs.append((res["quai"]["median"] - res["quai-runtime"]["median"]) * 1000)
print(f"\nquai over its runtime, {rounds} alternating rounds of 10 runs each:")
print(f"  {statistics.median(diffs):+.1f} ms (median of the rounds' median differences; "
      f"rounds {' '.join(f'{d:+.1f}' for d in diffs)}); target <= 10 ms")
PY
echo
cat "$work/timeline.txt"

python3 - "$work/run.json" "$runs" "$count" \
  "${total[quai]}" "${total[docker]}" "${total[podman]}" \
  "$quai_n" "$quai_rss" "$quai_pss" "$shim_n" "$shim_rss" "$shim_pss" "$conmon_n" "$conmon_rss" "$conmon_pss" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
runs, count = sys.argv[2], int(sys.argv[3])
tq, td, tp = (int(x) for x in sys.argv[4:7])
m = [int(x) for x in sys.argv[7:]]
res = {r["command"]: r for r in data["results"]}
mean = lambda n: res[n]["mean"] * 1000
med = lambda n: res[n]["median"] * 1000
q = mean("quai")
print(f"\nrun --rm IMG true, --network none ({runs} runs; milliseconds)")
print(f"{'':14}{'mean':>9}{'median':>9}{'min':>9}{'quai/x':>9}")
for n in ["quai", "quai-runtime", "crun", "docker", "podman"]:
    print(f"{n:14}{mean(n):9.1f}{med(n):9.1f}{res[n]['min']*1000:9.1f}{q/mean(n):9.3f}")
print(f"\nquai over its runtime: {q - mean('quai-runtime'):+.1f} ms (mean), {med('quai') - med('quai-runtime'):+.1f} ms (median); target <= 10 ms")
print(f"quai/docker: {q/mean('docker'):.3f} (target <= 0.1)   quai/podman: {q/mean('podman'):.3f} (target <= 0.15)")
print(f"\n{count} detached `sleep 3600` containers")
print(f"{'':14}{'total s':>9}{'per ms':>9}{'monitors':>10}{'RSS KiB':>9}{'PSS KiB':>9}")
rows = [("quai", tq, m[0:3], "quai internal shim"), ("docker", td, m[3:6], "containerd-shim-runc-v2"), ("podman", tp, m[6:9], "conmon")]
for name, total, (n, rss, pss), what in rows:
    per_rss = rss / n if n else 0
    per_pss = pss / n if n else 0
    print(f"{name:14}{total/1000:9.2f}{total/count:9.1f}{n:10}{per_rss:9.0f}{per_pss:9.0f}   ({what}, per monitor)")
print(f"\nstart {count}: quai/docker {tq/td:.3f}, quai/podman {tq/tp:.3f}")
if m[0] and m[3]:
    print(f"monitor RSS: quai/containerd-shim {m[1]/m[0]/(m[4]/m[3]):.3f}", end="")
if m[0] and m[6]:
    print(f", quai/conmon {m[1]/m[0]/(m[7]/m[6]):.3f}", end="")
print(f"; target < 2048 KiB per monitor")
PY

#!/usr/bin/env bash
# What a Docker-size seccomp profile costs a whole container run: each
# runtime runs `true` in a busybox bundle without and with Docker's default
# profile (converted for this machine), in one hyperfine run. Prints the
# means, each runtime's seccomp overhead, and quai's ratios to its peers.
# quai-runtime takes part once the quai binary answers `quai runtime`.
#
# Usage: bench/seccomp-runtime-cost.sh [RUNS]
# Needs: root, cargo, hyperfine, runc, crun, busybox-static (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}

profile=""
for dir in .. ../.. ../../..; do
	if [[ -f "$dir/shared/reference/docker-default-seccomp.json" ]]; then
		profile="$dir/shared/reference/docker-default-seccomp.json"
		break
	fi
done
[[ -n $profile ]] || { echo "Docker's default profile not found (shared/reference)" >&2; exit 1; }

work=$(mktemp -d /tmp/quai-bench-seccomp-XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet -p quai-runtime --example seccomp_compile
cargo build --release --quiet -p quai
target/release/examples/seccomp_compile "$profile" --oci >"$work/seccomp.json"

mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/"
ln -s busybox "$work/rootfs/bin/true"
(cd "$work" && runc spec)
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
config = json.load(open(f"{work}/config.json"))
config["process"]["args"] = ["/bin/true"]
config["process"]["terminal"] = False
config["root"] = {"path": f"{work}/rootfs", "readonly": True}
for name, seccomp in (("plain", None), ("seccomp", json.load(open(f"{work}/seccomp.json")))):
    if seccomp is None:
        config["linux"].pop("seccomp", None)
    else:
        config["linux"]["seccomp"] = seccomp
    os.makedirs(f"{work}/{name}", exist_ok=True)
    json.dump(config, open(f"{work}/{name}/config.json", "w"))
PY

# crun 1.8 refuses this machine's hybrid cgroup layout: give it a private
# cgroup2 mount and no cgroup manager (DESIGN.md).
crun_run() {
	echo "unshare -m sh -c 'umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; crun --root $work/crun-state --cgroup-manager=disabled run -b $work/$1 c$1'"
}
commands=(
	-n runc-plain "runc --root $work/runc-state run -b $work/plain rplain"
	-n runc-seccomp "runc --root $work/runc-state run -b $work/seccomp rseccomp"
	-n crun-plain "$(crun_run plain)"
	-n crun-seccomp "$(crun_run seccomp)"
)
if target/release/quai runtime --help >/dev/null 2>&1; then
	quai=$(pwd)/target/release/quai
	commands+=(
		-n quai-plain "$quai runtime --root $work/quai-state run -b $work/plain qplain"
		-n quai-seccomp "$quai runtime --root $work/quai-state run -b $work/seccomp qseccomp"
	)
else
	echo "(quai runtime is not built yet: peers only)"
fi

hyperfine -N -w 3 -r "$runs" --export-json "$work/results.json" "${commands[@]}" >/dev/null
python3 - "$work/results.json" <<'PY'
import json, sys
means = {r["command"]: r["mean"] * 1000 for r in json.load(open(sys.argv[1]))["results"]}
print("whole run of `true`, mean ms (Docker's default seccomp profile vs none)")
for runtime in ("runc", "crun", "quai"):
    if f"{runtime}-plain" in means:
        plain, seccomp = means[f"{runtime}-plain"], means[f"{runtime}-seccomp"]
        print(f"  {runtime:5} plain {plain:7.2f}  seccomp {seccomp:7.2f}  overhead {seccomp - plain:+7.2f}")
if "quai-seccomp" in means:
    for peer in ("runc", "crun"):
        print(f"  quai/{peer} with seccomp = {means['quai-seccomp'] / means[peer + '-seccomp']:.2f}")
PY

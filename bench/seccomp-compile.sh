#!/usr/bin/env bash
# seccomp filter compile time: quai's compiler against libseccomp (what runc
# and crun use), both turning the same profile (Docker's default, for this
# machine's architecture and Docker's default capabilities) into BPF.
# Prints the mean time per compile, the program sizes and the ratio.
#
# Usage: bench/seccomp-compile.sh [PROFILE.json] [ITERATIONS]
# Needs: cargo, cc, libseccomp-dev (make deps).
set -euo pipefail
cd "$(dirname "$0")/.."

find_reference() {
	local dir
	for dir in .. ../.. ../../..; do
		if [[ -f "$dir/shared/reference/docker-default-seccomp.json" ]]; then
			echo "$dir/shared/reference/docker-default-seccomp.json"
			return
		fi
	done
	echo "bench/seccomp-compile.sh: Docker's default profile not found (shared/reference); pass a profile" >&2
	exit 1
}

profile=${1:-$(find_reference)}
iterations=${2:-2000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet -p quai-runtime --example seccomp_compile
quai=target/release/examples/seccomp_compile
cc -O2 -o "$work/libseccomp-compile" bench/seccomp-compile-libseccomp.c -lseccomp

"$quai" "$profile" --flatten >"$work/rules"
read -r quai_us quai_insns < <("$quai" "$profile" --iterations "$iterations")
read -r lib_us lib_insns < <("$work/libseccomp-compile" "$work/rules" "$iterations")

echo "seccomp filter compile time ($(basename "$profile"), $iterations runs each)"
printf '  %-12s %10s us  %5s BPF instructions\n' quai "$quai_us" "$quai_insns" libseccomp "$lib_us" "$lib_insns"
awk -v q="$quai_us" -v l="$lib_us" 'BEGIN { printf "  quai / libseccomp = %.3f\n", q / l }'

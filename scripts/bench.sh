#!/usr/bin/env bash
# `make bench`: Apply/Revert latency of the nodequake agent against the exec
# path of peer tools (nsenter + tc / iptables), and the agent's idle RSS.
#   scripts/bench.sh BUILD_DIR [nq-bench-apply options...]
# e.g. scripts/bench.sh build --runs 500, or --state-parent /dev/shm to keep
# the agent's journal on tmpfs (no fsync cost). See docs/benchmarks.md.
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR [nq-bench-apply options...]}
shift
here=$(cd "$(dirname "$0")" && pwd)

# tc and iptables for the comparison (the agent itself never runs them).
"$here/install-deps.sh" bench

bin="$build/bin/nq-bench-apply"
if [[ ! -x $bin ]]; then
  echo "bench: $bin is not built (cmake --build $build)" >&2
  exit 1
fi
if ((EUID != 0)); then
  echo "bench: needs root (sandbox pods: netns, veth, cgroups; qdiscs and BPF)" >&2
  exit 1
fi

out="$build/bench-results"
mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
"$bin" --json-file "$out/apply-$stamp.json" "$@" | tee "$out/apply-$stamp.txt"
echo
echo "bench: figures in $out/apply-$stamp.txt (table) and $out/apply-$stamp.json"

# CPU and memory stress: achieved vs requested, nq-stressor vs stress-ng
# (about three minutes: twelve measured windows). See docs/stress.md.
stress_bin="$build/bin/nq-bench-stress"
if [[ -x $stress_bin ]]; then
  echo
  "$stress_bin" | tee "$out/stress-$stamp.txt"
  echo "bench: stress figures in $out/stress-$stamp.txt"
else
  echo "bench: $stress_bin is not built; stress figures skipped" >&2
fi

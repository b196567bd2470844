#!/usr/bin/env bash
# `make bench`: Apply/Revert latency of the nodequake agent against the exec
# path of peer tools (nsenter + tc / iptables), and the agent's idle RSS;
# then stress accuracy, and the controller's fan-out to 100 agents.
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

# Controller fan-out to 100 agent processes on loopback: submit until every
# injection is acknowledged, and the HTTP kill switch until everything is
# reverted (about two minutes, most of it bringing up 100 pods and agents).
# NQ_BENCH_FANOUT_ARGS passes options, e.g. "--agents 50 --runs 10".
# See docs/benchmarks.md, "Fan-out to 100 agents".
fanout_bin="$build/bin/nq-bench-fanout"
if [[ -x $fanout_bin ]]; then
  echo
  # shellcheck disable=SC2086 # word splitting of the options is intended
  "$fanout_bin" --json-file "$out/fanout-$stamp.json" ${NQ_BENCH_FANOUT_ARGS:-} |
    tee "$out/fanout-$stamp.txt"
  echo "bench: fan-out figures in $out/fanout-$stamp.txt and $out/fanout-$stamp.json"
else
  echo "bench: $fanout_bin is not built; fan-out figures skipped" >&2
fi

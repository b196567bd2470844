// Which CRI socket to talk to: the one given, or the first of the well-known
// runtime sockets present on the host.
#pragma once

#include <filesystem>
#include <span>
#include <string_view>

#include "common/result.h"

namespace nq::cri {

struct KnownSocket {
  std::string_view runtime;
  std::string_view path;  // absolute, on the host
};

// Probed in this order: a node runs one CRI runtime, and where k3s is
// installed next to a stock containerd, the stock one is what a kubelet
// configured by hand would use.
inline constexpr KnownSocket kKnownSockets[] = {
    {"containerd", "/run/containerd/containerd.sock"},
    {"k3s", "/run/k3s/containerd/containerd.sock"},
    {"cri-o", "/var/run/crio/crio.sock"},
    {"cri-o", "/run/crio/crio.sock"},
};

// The first of `candidates` that is a Unix socket under `host_root`, as a
// path the agent can connect to. NotFound listing every path tried.
// A dangling or non-socket file is skipped: containerd leaves its socket
// behind after a crash, but then nothing accepts on it either way, and a
// regular file in its place is certainly not a runtime.
Result<std::filesystem::path> detect_socket(
    const std::filesystem::path& host_root,
    std::span<const KnownSocket> candidates = kKnownSockets);

}  // namespace nq::cri

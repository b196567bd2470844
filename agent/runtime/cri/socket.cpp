#include "agent/runtime/cri/socket.h"

#include "agent/runtime/cri/pod_mapping.h"

namespace nq::cri {

Result<std::filesystem::path> detect_socket(const std::filesystem::path& host_root,
                                            std::span<const KnownSocket> candidates) {
  std::string tried;
  for (const KnownSocket& c : candidates) {
    const std::filesystem::path path = under_root(host_root, std::string(c.path));
    std::error_code ec;
    // status() follows symlinks: /var/run is one to /run on most hosts.
    if (std::filesystem::is_socket(std::filesystem::status(path, ec))) return path;
    if (!tried.empty()) tried += ", ";
    tried += path.string();
  }
  return Error::not_found("no CRI runtime socket found (tried " + tried +
                          "); give one with --cri-socket");
}

}  // namespace nq::cri

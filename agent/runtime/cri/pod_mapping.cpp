#include "agent/runtime/cri/pod_mapping.h"

#include <limits>
#include <nlohmann/json.hpp>

namespace nq::cri {
namespace {

using nlohmann::json;

// A JSON member that may be absent or null; the wrong type is an error.
template <class T>
Result<T> optional_field(const json& obj, const char* key, std::string_view field, T fallback) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception& e) {
    return Error::invalid_argument(field, std::string("unexpected type: ") + e.what());
  }
}

}  // namespace

std::string info_document(const google::protobuf::Map<std::string, std::string>& info) {
  auto it = info.find("info");
  return it == info.end() ? std::string() : it->second;
}

Result<VerboseInfo> parse_verbose_info(std::string_view text) {
  VerboseInfo out;
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return out;
  const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error::invalid_argument("info", "not a JSON document");
  if (!doc.is_object()) return Error::invalid_argument("info", "not a JSON object");

  NQ_ASSIGN_OR_RETURN(int64_t pid, optional_field<int64_t>(doc, "pid", "info.pid", 0));
  if (pid < 0 || pid > std::numeric_limits<pid_t>::max())
    return Error::invalid_argument("info.pid", "out of range: " + std::to_string(pid));
  out.pid = static_cast<pid_t>(pid);

  auto spec = doc.find("runtimeSpec");
  if (spec == doc.end() || !spec->is_object()) return out;
  auto linux_it = spec->find("linux");
  if (linux_it == spec->end() || !linux_it->is_object()) return out;
  const json& linux = *linux_it;
  NQ_ASSIGN_OR_RETURN(
      out.cgroups_path,
      optional_field<std::string>(linux, "cgroupsPath", "info.runtimeSpec.linux.cgroupsPath", ""));
  auto namespaces = linux.find("namespaces");
  if (namespaces == linux.end() || !namespaces->is_array()) return out;
  for (size_t i = 0; i < namespaces->size(); ++i) {
    const json& ns = (*namespaces)[i];
    if (!ns.is_object()) continue;
    const std::string field = "info.runtimeSpec.linux.namespaces[" + std::to_string(i) + "]";
    NQ_ASSIGN_OR_RETURN(std::string type,
                        optional_field<std::string>(ns, "type", field + ".type", ""));
    if (type != "network") continue;
    // No path: the runtime creates a fresh namespace for the process (the
    // sandbox's pid then names it); a path: the process joins that one.
    NQ_ASSIGN_OR_RETURN(out.netns_path,
                        optional_field<std::string>(ns, "path", field + ".path", ""));
  }
  return out;
}

std::filesystem::path under_root(const std::filesystem::path& root, const std::string& path) {
  if (root.empty() || root == "/") return path;
  return root / std::filesystem::path(path).relative_path();
}

runtime::PodInfo map_sandbox(const criv1::PodSandboxStatus& status, const VerboseInfo& info,
                             const PathRoots& roots) {
  runtime::PodInfo pod;
  pod.namespace_name = status.metadata().namespace_();
  pod.name = status.metadata().name();
  pod.uid = status.metadata().uid();
  pod.labels.insert(status.labels().begin(), status.labels().end());
  pod.host_network = status.linux().namespaces().options().network() == criv1::NODE;
  // With host networking the runtime reports the node's IP (or nothing):
  // not the pod's own address, so not a scope for network faults.
  if (!pod.host_network) {
    if (!status.network().ip().empty()) pod.ips.push_back(status.network().ip());
    for (const auto& extra : status.network().additional_ips())
      if (!extra.ip().empty()) pod.ips.push_back(extra.ip());
    if (!info.netns_path.empty()) {
      pod.netns_path = under_root(roots.host_root, info.netns_path).string();
    } else if (info.pid > 0) {
      pod.netns_path = (roots.proc_root / std::to_string(info.pid) / "ns" / "net").string();
    }
  }
  return pod;
}

runtime::ContainerInfo map_container(const criv1::ContainerStatus& status,
                                     const VerboseInfo& info) {
  runtime::ContainerInfo c;
  c.name = status.metadata().name();
  c.id = status.id();
  // An exited container's last pid may already belong to another process.
  if (status.state() == criv1::CONTAINER_RUNNING) c.pid = info.pid;
  return c;
}

}  // namespace nq::cri

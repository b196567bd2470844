// The sandbox pods file: multi-document YAML in the shape of a Kubernetes Pod.
//
//   apiVersion: nodequake.io/v1alpha1
//   kind: SandboxPod
//   metadata: {name: postgres-0, namespace: llm-marketplace, labels: {app: postgres}}
//   spec:
//     hostNetwork: false
//     containers:
//     - name: postgres
//       command: []          # default: nq-echo; argv, never a shell line
//       resources: {limits: {cpu: "500m", memory: "128Mi"}}
//       readinessProbe: {tcpSocket: {port: 8080}}   # default with the default command
//
// Errors name "file:line: field.path".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nq::sandbox {

inline constexpr std::string_view kApiVersion = "nodequake.io/v1alpha1";
inline constexpr std::string_view kKind = "SandboxPod";

struct Limits {
  std::optional<int64_t> cpu_millis;    // 500 for "500m"
  std::optional<int64_t> memory_bytes;  // 134217728 for "128Mi"
  bool operator==(const Limits&) const = default;
};

struct ContainerSpec {
  std::string name;
  std::vector<std::string> command;  // empty: the bundled nq-echo
  Limits limits;
  // readinessProbe.tcpSocket.port: `up` returns once the container accepts
  // connections on it inside the pod (like a Kubernetes readiness probe).
  std::optional<uint16_t> readiness_port;
  std::string where;  // "file:line" of the container, for errors found later
  bool operator==(const ContainerSpec& o) const {
    return name == o.name && command == o.command && limits == o.limits &&
           readiness_port == o.readiness_port;
  }
};

struct PodSpec {
  std::string namespace_name = "default";
  std::string name;
  std::map<std::string, std::string> labels;
  bool host_network = false;
  std::vector<ContainerSpec> containers;
  std::string where;  // "file:line" of the document

  std::string key() const { return namespace_name + "/" + name; }
  bool operator==(const PodSpec& o) const {
    return namespace_name == o.namespace_name && name == o.name && labels == o.labels &&
           host_network == o.host_network && containers == o.containers;
  }
};

// Parses every document of `text`; `filename` only names the source in errors.
// Empty documents are skipped; a duplicate namespace/name is an error.
Result<std::vector<PodSpec>> parse_pods(std::string_view text, std::string_view filename);
Result<std::vector<PodSpec>> load_pods_file(const std::filesystem::path& path);

// Kubernetes quantities. CPU: "500m", "2", "0.25" -> millicores. Memory:
// "128Mi", "1G", "1048576" -> bytes (binary Ki..Ei and decimal k..E suffixes).
Result<int64_t> parse_cpu_millis(std::string_view text, std::string_view field);
Result<int64_t> parse_memory_bytes(std::string_view text, std::string_view field);

// RFC 1123 label: lowercase alphanumerics and '-', 1..63, alphanumeric at both
// ends (Kubernetes names and namespaces).
bool is_dns_label(std::string_view s);
// Kubernetes label key ("app", "app.kubernetes.io/name") and value rules.
bool is_label_key(std::string_view s);
bool is_label_value(std::string_view s);

}  // namespace nq::sandbox

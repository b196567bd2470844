// The benchmark's two sandbox pods (client and server, running nq-echo) in a
// sandbox of its own: registry, bridge nqbrb<pid%1000>, subnet
// 10.215.<pid%250>.0/24, netns prefix and cgroup parent all named after the
// benchmark's pid, so it never collides with a real sandbox, the demo or a
// concurrent test run. The destructor takes everything down again.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>

#include "agent/runtime/local/sandbox.h"
#include "common/result.h"

namespace nq::bench {

struct BenchPod {
  std::string namespace_name;
  std::string name;
  std::string ip;          // the pod's address on the bridge
  std::string netns_path;  // pinned under /run/netns
  pid_t pid = 0;           // its container's process (the peer tools nsenter through it)
  std::string key() const { return namespace_name + "/" + name; }
};

struct BenchSandboxConfig {
  std::filesystem::path registry_dir;  // must not exist yet or be empty
  std::string nqctl;                   // shim: `nqctl sandbox shim`
  std::string nq_echo;                 // the pods' workload
};

class BenchSandbox {
 public:
  // Brings both pods up and waits until they are ready (nq-echo answers).
  static Result<std::unique_ptr<BenchSandbox>> up(const BenchSandboxConfig& config);
  // Same as down(), errors logged to stderr: destructors do not fail.
  ~BenchSandbox();
  BenchSandbox(const BenchSandbox&) = delete;
  BenchSandbox& operator=(const BenchSandbox&) = delete;

  // Removes the pods (through `sandbox down`), then, as a safety net, any
  // process, netns, bridge or cgroup with the benchmark's names. Idempotent.
  Status down();

  const BenchPod& client() const { return client_; }
  const BenchPod& server() const { return server_; }
  const sandbox::SandboxOptions& options() const { return opts_; }

 private:
  explicit BenchSandbox(sandbox::SandboxOptions opts) : opts_(std::move(opts)) {}
  Result<BenchPod> resolve(const std::string& ns, const std::string& name) const;

  sandbox::SandboxOptions opts_;
  std::string namespace_name_;
  BenchPod client_, server_;
  bool down_ = false;
};

}  // namespace nq::bench

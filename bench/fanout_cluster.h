// The fan-out benchmark's cluster on loopback: N real nodequake-agent
// processes, each a "node" with a sandbox of its own (registry, bridge, /28
// subnet, netns prefix, cgroup parent, one small pod) and an mTLS listener on
// 127.0.0.1, plus one real nodequake-controller given the static list of the
// N agents. Every name carries the benchmark's pid ("nqf<pid>...", subnets
// in 10.216.0.0/16) so nothing collides with tests, the demo or
// nq-bench-apply (10.215.x) and the tests' sandboxes (10.214.x).
//
// The destructor takes everything down (controller and agents by pid, pods,
// bridges, netns pins, cgroups, directories), also after a half-done start.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/runtime/local/sandbox.h"
#include "common/result.h"
#include "nodequake/v1/controller.grpc.pb.h"
#include "tests/support/agent_process.h"

namespace nq::bench {

struct FanoutClusterConfig {
  int agents = 100;
  std::filesystem::path work;          // empty, ours: registries, sockets, logs, certs
  std::filesystem::path journal_root;  // empty, ours: the agents' journals
  std::string agent_binary, controller_binary, nqctl, nq_echo;
  std::string gen_certs;  // tests/support/certs/gen-test-certs.sh
  int setup_threads = 2;  // pods and agents brought up side by side
};

// One node's sandbox names (pure; see the header comment).
sandbox::SandboxOptions node_sandbox_options(pid_t pid, int index,
                                             const std::filesystem::path& registry);
// The /28 of node `index` within 10.216.<16 * (pid % 16)>.0/20.
std::string node_subnet(pid_t pid, int index);
inline constexpr int kMaxAgents = 256;  // 256 x /28 = one /20

struct FanoutNode {
  int index = 0;
  std::string name;    // node name the agent reports
  std::string pod;     // its one pod, in the cluster's namespace
  std::string target;  // "127.0.0.1:<port>": the controller's address for it
  sandbox::SandboxOptions sandbox;
  std::filesystem::path journal_dir, socket, log;
  std::unique_ptr<testing::AgentProcess> agent;
};

class FanoutCluster {
 public:
  explicit FanoutCluster(FanoutClusterConfig config);
  // teardown(), errors to stderr.
  ~FanoutCluster();
  FanoutCluster(const FanoutCluster&) = delete;
  FanoutCluster& operator=(const FanoutCluster&) = delete;

  // Certificates, then pods and agents (setup_threads at a time), then the
  // controller. `interrupted` is polled meanwhile; when it returns an error
  // the start stops with it. `progress` gets a line now and then.
  Status start(const std::function<Status()>& interrupted,
               const std::function<void(const std::string&)>& progress);
  // Controller (SIGTERM: it reverts its runs), agents (SIGTERM: they revert
  // and exit), pods, then a safety net by name. Idempotent.
  Status teardown();

  const std::string& ns() const { return ns_; }
  std::vector<FanoutNode>& nodes() { return nodes_; }
  pid_t controller_pid() const { return controller_pid_; }
  nodequake::v1::Controller::Stub& controller() { return *controller_stub_; }
  const std::string& controller_socket() const { return controller_socket_; }
  std::string killswitch_url() const;  // http://127.0.0.1:<port>/v1/killswitch
  const std::string& operator_token() const { return operator_token_; }
  std::string operator_token_file() const;
  const std::string& killswitch_token() const { return killswitch_token_; }
  std::string controller_log() const;

 private:
  Status make_certs();
  Status write_access_files();
  Status start_node(FanoutNode& node);
  Status start_controller();
  Status stop_controller();

  FanoutClusterConfig cfg_;
  std::string ns_;
  std::vector<FanoutNode> nodes_;
  std::atomic<uint16_t> next_port_{0};
  uint16_t killswitch_port_ = 0;
  std::string operator_token_, killswitch_token_;
  std::string controller_socket_;
  pid_t controller_pid_ = -1;
  std::unique_ptr<nodequake::v1::Controller::Stub> controller_stub_;
  bool torn_down_ = false;
};

}  // namespace nq::bench

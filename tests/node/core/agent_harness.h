// What the end-to-end agent tests and the crash test share: the real
// nodequake-agent binary as a child process on a state directory and socket
// of the test's own, Apply request builders, RPCs with deadlines, the kernel
// state of every sandbox pod (and of the host side), and a CNI-like root
// qdisc tree to prove that one survives.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nodequake/v1/agent.grpc.pb.h"
#include "tests/support/agent_process.h"
#include "tests/support/kernel_state.h"
#include "tests/support/sandbox_env.h"

namespace nq::testing {

namespace v1 = nodequake::v1;

// ------------------------------------------------------------ requests

struct Scope {
  std::vector<std::string> remote_cidrs;
  std::vector<uint32_t> remote_ports;  // single ports
};

v1::FaultSpec partition(v1::Direction dir, const Scope& scope = {});
v1::FaultSpec bandwidth(uint64_t bps, v1::Direction dir, const Scope& scope = {});
v1::FaultSpec netem_delay(std::chrono::milliseconds delay, v1::Direction dir);

v1::ApplyRequest apply_request(const std::string& id, const std::string& ns, const std::string& pod,
                               const v1::FaultSpec& spec,
                               std::chrono::milliseconds ttl = std::chrono::minutes(5));

// One unary RPC with a deadline: `rpc(stub, &v1::Agent::Stub::List, {}, &resp)`.
template <class Method, class Req, class Resp>
grpc::Status rpc(v1::Agent::Stub& stub, Method method, const Req& req, Resp* resp,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  return (stub.*method)(&ctx, req, resp);
}

// ------------------------------------------------------------ the agent

// A directory removed with everything in it by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& name);  // under the temp dir, made unique by pid
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The agent binary on a journal directory and socket of the test's own,
// resolving pods from `env`'s registry. Its log (stderr) goes to log_file().
class AgentHarness {
 public:
  explicit AgentHarness(const SandboxEnv& env, const std::string& name = "agent");
  // SIGKILLs a running agent (AgentProcess); the test decides about reverting.
  ~AgentHarness();

  // Starts the agent and waits until it answers Probe. `extra` are added to
  // the command line (e.g. {"--attach", "clsact"}).
  Status start(const std::vector<std::string>& extra = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Sends `sig` and reaps the agent; returns its wait status.
  Result<int> stop(int sig);
  bool running() const { return proc_ != nullptr; }
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }
  v1::Agent::Stub& stub() { return proc_->stub(); }
  AgentProcessOptions options(const std::vector<std::string>& extra) const;
  // Serve metrics there from the next start() on ("" = none, the default).
  void set_metrics_address(std::string address) { metrics_address_ = std::move(address); }

  const std::filesystem::path& state_dir() const { return state_.path(); }
  std::filesystem::path journal_file() const { return state_.path() / "journal.log"; }
  std::string log_file() const { return (logs_.path() / "agent.log").string(); }
  // The last `bytes` of the log, for failure messages.
  std::string log_tail(size_t bytes = 4000) const;

  // The path of the nodequake-agent binary this build made.
  static std::string binary();

 private:
  const SandboxEnv& env_;
  TempDir state_;
  TempDir logs_;
  std::string metrics_address_;
  std::unique_ptr<AgentProcess> proc_;
};

// ------------------------------------------------------------ kernel state

// Every given pod's netns state, by pod name.
using PodStates = std::map<std::string, NetnsKernelState>;
Result<PodStates> capture_pods(const SandboxEnv& env, const std::vector<std::string>& pods);
// "" when equal, else "<pod>:\n<diff>" per differing pod.
std::string diff(const PodStates& before, const PodStates& after);

// The host side of the sandbox: the pods' host veths and the bridge with their
// tc objects, plus every ifb device in the host namespace named "nq..."
// (nodequake's ifbs belong in the pods' namespaces, never here). One line each.
Result<std::vector<std::string>> capture_host_side(const SandboxEnv& env,
                                                   const std::vector<std::string>& pods);

// A CNI-like egress tree on `ifname` inside `netns`: HTB root 1: with class
// 1:1 carrying a tbf leaf 10: (200 Mbit/s), as a CNI bandwidth plugin would.
Status install_cni_root(const Netns& netns, const std::string& ifname = "eth0");

// ------------------------------------------------------------ misc

// A TCP port on 127.0.0.1 that was free a moment ago.
Result<uint16_t> free_local_port();
// GET http://127.0.0.1:<port><path>; the body of a 200 answer.
Result<std::string> http_get_body(uint16_t port, const std::string& path);
// One sample of the Prometheus text format: the value of `name` whose labels
// include `labels`; NotFound when there is none.
Result<double> prometheus_sample(const std::string& text, const std::string& name,
                                 const std::map<std::string, std::string>& labels = {});

}  // namespace nq::testing

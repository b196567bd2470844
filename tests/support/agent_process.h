// The real nodequake-agent binary as a child process, for tests and
// benchmarks that must see it crash and restart: spawned with its own state
// directory and socket, waited for until it answers Probe, killed by pid.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "nodequake/v1/agent.grpc.pb.h"

namespace nq::testing {

struct AgentProcessOptions {
  std::string binary;       // path of nodequake-agent
  std::string state_dir;    // journal
  std::string socket;       // Unix socket
  std::string sandbox_dir;  // local runtime registry
  // Prometheus endpoint ("127.0.0.1:9464"); "" = none. A field of its own
  // because the agent refuses an option given twice (CLI11's default).
  std::string metrics_address;
  std::vector<std::string> extra_args;
  std::string log_file;  // stderr goes here ("" = inherit)
};

class AgentProcess {
 public:
  // Starts the agent and waits until Probe answers (or it exits / `timeout`).
  static Result<std::unique_ptr<AgentProcess>> start(
      const AgentProcessOptions& opts,
      std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGKILLs the agent if it still runs.
  ~AgentProcess();

  pid_t pid() const { return pid_; }
  nodequake::v1::Agent::Stub& stub() { return *stub_; }
  // Sends `sig` and reaps the process; returns its wait status.
  Result<int> stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  AgentProcess() = default;
  pid_t pid_ = -1;
  std::unique_ptr<nodequake::v1::Agent::Stub> stub_;
};

}  // namespace nq::testing

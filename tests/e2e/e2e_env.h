// What the e2e tier needs beyond the controller node tests' fixtures
// (tests/node/controller: agents over mTLS, Prometheus): the real
// nodequake-controller as a child process, and nqctl runs with their output.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "nodequake/v1/controller.grpc.pb.h"
#include "tests/node/core/agent_harness.h"

namespace nq::testing {

// The controller binary on a state directory of its own; its log goes to a
// file there. Killed by pid in the destructor (SIGKILL if still running).
class ControllerProcess {
 public:
  struct Options {
    std::vector<std::string> args;  // everything but the binary
    std::string socket;             // the API's Unix socket (waited for)
    std::string token;              // a token that may call Get, to see it answer
    std::string log_file;
  };
  static Result<std::unique_ptr<ControllerProcess>> start(
      const Options& options, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  ~ControllerProcess();

  pid_t pid() const { return pid_; }
  // Sends `sig` and reaps the process; its wait status.
  Result<int> stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::string log_tail(size_t bytes = 4000) const;

 private:
  ControllerProcess() = default;
  pid_t pid_ = -1;
  std::string log_file_;
};

struct CommandResult {
  int exit_code = -1;  // 128+signal when killed
  std::string out, err;
};

// Runs `argv` (argv[0] a path) to completion with extra environment entries;
// stdout and stderr captured.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {});

// One Controller RPC over the Unix socket with a bearer token.
std::unique_ptr<nodequake::v1::Controller::Stub> controller_stub(const std::string& socket);
grpc::Status get_experiment(nodequake::v1::Controller::Stub& stub, const std::string& token,
                            const std::string& id, nodequake::v1::ExperimentStatus* out);

}  // namespace nq::testing

// What the controller's node tests share: several real nodequake-agent
// processes, each acting as one node with sandbox pods of its own and an
// mTLS TCP listener on loopback, plus the controller's client certificates.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/fanout/fanout.h"
#include "tests/node/core/agent_harness.h"

namespace nq::testing {

// One "node": a sandbox environment, its pods, and an agent serving them on
// 127.0.0.1:<port> with mTLS (and on its Unix socket, for the test's checks).
struct Node {
  std::unique_ptr<SandboxEnv> env;
  std::unique_ptr<AgentHarness> harness;  // state and log directories
  std::unique_ptr<AgentProcess> agent;
  std::string name;    // node name the agent reports
  std::string target;  // "127.0.0.1:<port>"
  std::vector<std::string> pods;
  PodStates baseline;  // the pods' kernel state before any fault
};

// Test certificates (tests/support/certs/gen-test-certs.sh) in a directory of
// their own, removed by the destructor.
class TestCerts {
 public:
  TestCerts();
  const std::string& error() const { return error_; }  // "" when generated
  std::string file(const std::string& name) const { return (dir_.path() / name).string(); }
  fanout::PoolOptions controller_pool() const;

 private:
  TempDir dir_;
  std::string error_;
};

// Starts an agent for `node` (its env must be up) listening with mTLS.
Status start_agent(Node& node, const TestCerts& certs);

// Active injections on the node, through the agent's Unix socket.
Result<std::vector<v1::Injection>> active_injections(Node& node);

// A TCP listener on 127.0.0.1 that never accepts: connections complete in the
// kernel's backlog and then hear nothing, like a hung agent. Closed by the
// destructor.
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

v1::ApplyRequest bandwidth_request(const std::string& ns, const std::string& pod);

}  // namespace nq::testing

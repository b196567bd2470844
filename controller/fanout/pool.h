// One cached gRPC channel (and stub) per agent. TCP agents are reached with
// mTLS (the controller's client certificate, TLS 1.3); unix: agents (a local
// agent, tests) through their socket.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/result.h"
#include "nodequake/v1/agent.grpc.pb.h"

namespace nq::fanout {

struct PoolOptions {
  std::string tls_cert_file, tls_key_file, tls_ca_file;
  // Name verified in every agent's certificate (e.g. "nodequake-agent"):
  // agents found through DNS are dialled by IP, which their certificates
  // need not carry. "" verifies the dialled host.
  std::string tls_server_name;
};

class AgentPool {
 public:
  explicit AgentPool(PoolOptions options) : options_(std::move(options)) {}

  // The stub for `target` (see discover()), creating its channel on first use.
  // A channel connects lazily, so this fails only on bad TLS material or
  // target syntax, never because the agent is down.
  Result<std::shared_ptr<nodequake::v1::Agent::Stub>> stub(const std::string& target);

  // Drops the channels of agents not in `targets` (after a re-discovery).
  void retain(const std::set<std::string>& targets);
  size_t size() const;

 private:
  PoolOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<nodequake::v1::Agent::Stub>> stubs_;
};

}  // namespace nq::fanout

#include "controller/fanout/pool.h"

#include <grpcpp/channel.h>

#include "agent/server/channel.h"

namespace nq::fanout {

Result<std::shared_ptr<nodequake::v1::Agent::Stub>> AgentPool::stub(const std::string& target) {
  std::lock_guard lock(mu_);
  if (auto it = stubs_.find(target); it != stubs_.end()) return it->second;
  ChannelOptions co;
  co.target = target;
  co.tls_cert_file = options_.tls_cert_file;
  co.tls_key_file = options_.tls_key_file;
  co.tls_ca_file = options_.tls_ca_file;
  co.tls_server_name = options_.tls_server_name;
  auto channel = make_channel(co);
  if (!channel.ok()) return std::move(channel).error().wrapped("agent " + target);
  std::shared_ptr<nodequake::v1::Agent::Stub> stub = nodequake::v1::Agent::NewStub(*channel);
  stubs_.emplace(target, stub);
  return stub;
}

void AgentPool::retain(const std::set<std::string>& targets) {
  std::lock_guard lock(mu_);
  std::erase_if(stubs_, [&](const auto& kv) { return !targets.count(kv.first); });
}

size_t AgentPool::size() const {
  std::lock_guard lock(mu_);
  return stubs_.size();
}

}  // namespace nq::fanout

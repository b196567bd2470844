#include "tests/node/controller/controller_env.h"

#include <arpa/inet.h>
#include <google/protobuf/util/time_util.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace nq::testing {

TestCerts::TestCerts() : dir_("ctl-certs") {
  // A test fixture may run the project's own script; the libraries may not.
  const std::string cmd = std::string(NQ_GEN_TEST_CERTS) + " " + dir_.path().string();
  if (std::system(cmd.c_str()) != 0) error_ = "generating test certificates failed: " + cmd;
}

fanout::PoolOptions TestCerts::controller_pool() const {
  return {file("controller.crt"), file("controller.key"), file("ca.crt"), ""};
}

Status start_agent(Node& node, const TestCerts& certs) {
  NQ_ASSIGN_OR_RETURN(uint16_t port, free_local_port());
  node.target = "127.0.0.1:" + std::to_string(port);
  AgentProcessOptions o = node.harness->options(
      {"--listen", node.target, "--tls-cert", certs.file("server.crt"), "--tls-key",
       certs.file("server.key"), "--tls-ca", certs.file("ca.crt")});
  // Every node needs a name of its own; the harness names them after the pid.
  for (size_t i = 0; i + 1 < o.extra_args.size(); ++i)
    if (o.extra_args[i] == "--node-name") o.extra_args[i + 1] = node.name;
  NQ_ASSIGN_OR_RETURN(node.agent, AgentProcess::start(o));
  return ok();
}

Result<std::vector<v1::Injection>> active_injections(Node& node) {
  v1::ListResponse resp;
  grpc::Status st = rpc(node.agent->stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &resp);
  if (!st.ok()) return Error::unavailable("List on " + node.name + ": " + st.error_message());
  return std::vector<v1::Injection>(resp.injections().begin(), resp.injections().end());
}

SilentListener::SilentListener() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::listen(fd_, 16) == 0 && ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port_ = ntohs(addr.sin_port);
}

SilentListener::~SilentListener() {
  if (fd_ >= 0) ::close(fd_);
}

v1::ApplyRequest bandwidth_request(const std::string& ns, const std::string& pod) {
  // tbf egress: available on every kernel this project runs on.
  return apply_request("", ns, pod, bandwidth(8'000'000, v1::DIRECTION_TO),
                       std::chrono::minutes(5));
}

}  // namespace nq::testing

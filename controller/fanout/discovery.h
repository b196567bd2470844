// Where the agents are: a static list, or a headless Service whose DNS name
// has one A/AAAA record per agent pod (one per node, the DaemonSet).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nq::fanout {

// Name resolution behind an interface, so discovery is tested without DNS.
class Resolver {
 public:
  virtual ~Resolver() = default;
  // Every address of `host` (numeric, "10.0.0.7" or "fd00::7"), A and AAAA.
  virtual Result<std::vector<std::string>> resolve(const std::string& host) const = 0;
};

// getaddrinfo(): /etc/hosts, then the cluster DNS through /etc/resolv.conf.
class SystemResolver final : public Resolver {
 public:
  Result<std::vector<std::string>> resolve(const std::string& host) const override;
};

struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};

// "host:port" or "[v6]:port". Errors name `field`.
Result<HostPort> split_host_port(std::string_view text, std::string_view field);

// A gRPC target for one agent: "unix:/path" unchanged, "10.0.0.7:9443",
// "[fd00::7]:9443" (numeric, so gRPC does not resolve it again).
std::string grpc_target(const HostPort& hp);

struct DiscoveryOptions {
  // Agents by address: "host:port", "[v6]:port" or "unix:/path/agent.sock".
  std::vector<std::string> agents;
  // A headless Service "name[.ns.svc.cluster.local]:port": every address it
  // resolves to is an agent.
  std::string service;
};

// The agents' gRPC targets, sorted and de-duplicated; resolves `service` now
// (call it per experiment: the DaemonSet's pods come and go). Errors name the
// option; a Service that resolves to nothing is an error too, since fanning
// out to no agent would select no pod and "succeed".
Result<std::vector<std::string>> discover(const DiscoveryOptions& options,
                                          const Resolver& resolver);

}  // namespace nq::fanout

#include "controller/fanout/discovery.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <memory>

namespace nq::fanout {

Result<std::vector<std::string>> SystemResolver::resolve(const std::string& host) const {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    // EAI_SYSTEM keeps its cause in errno; the others are resolver answers.
    if (rc == EAI_SYSTEM) return Error::from_errno(errno, "resolve " + host);
    const Code code = (rc == EAI_NONAME || rc == EAI_NODATA) ? Code::kNotFound : Code::kUnavailable;
    return Error::status(code, "resolve " + host + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(res, &::freeaddrinfo);
  std::vector<std::string> out;
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* addr = nullptr;
    if (ai->ai_family == AF_INET)
      addr = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    else if (ai->ai_family == AF_INET6)
      addr = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    if (addr != nullptr && ::inet_ntop(ai->ai_family, addr, buf, sizeof(buf)) != nullptr)
      out.emplace_back(buf);
  }
  return out;
}

Result<HostPort> split_host_port(std::string_view text, std::string_view field) {
  HostPort hp;
  std::string_view port;
  if (text.starts_with("[")) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Error::invalid_argument(field, "\"" + std::string(text) + "\" is not [address]:port");
    hp.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return Error::invalid_argument(
          field, "\"" + std::string(text) + "\" is not host:port (IPv6 needs [address]:port)");
    hp.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (hp.host.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535)
    return Error::invalid_argument(field,
                                   "\"" + std::string(text) + "\" has no valid host and port");
  hp.port = static_cast<uint16_t>(value);
  return hp;
}

std::string grpc_target(const HostPort& hp) {
  const bool v6 = hp.host.find(':') != std::string::npos;
  return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

Result<std::vector<std::string>> discover(const DiscoveryOptions& options,
                                          const Resolver& resolver) {
  std::vector<std::string> out;
  for (size_t i = 0; i < options.agents.size(); ++i) {
    const std::string& a = options.agents[i];
    const std::string field = "agents[" + std::to_string(i) + "]";
    if (a.starts_with("unix:")) {
      if (a.size() <= 5) return Error::invalid_argument(field, "unix: needs a socket path");
      out.push_back(a);
      continue;
    }
    NQ_ASSIGN_OR_RETURN(HostPort hp, split_host_port(a, field));
    out.push_back(grpc_target(hp));
  }
  if (!options.service.empty()) {
    NQ_ASSIGN_OR_RETURN(HostPort svc, split_host_port(options.service, "service"));
    auto addrs = resolver.resolve(svc.host);
    if (!addrs.ok()) return std::move(addrs).error().wrapped("service");
    if (addrs->empty())
      return Error::unavailable("service: " + svc.host + " resolves to no agent address");
    for (const auto& ip : *addrs) out.push_back(grpc_target({ip, svc.port}));
  }
  if (out.empty()) return Error::invalid_argument("agents", "no agents and no service given");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace nq::fanout

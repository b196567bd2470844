#include "tests/node/core/agent_harness.h"

#include <arpa/inet.h>
#include <google/protobuf/util/time_util.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <sstream>

#include "agent/net/links.h"
#include "agent/net/qdisc.h"
#include "agent/net/tc_dump.h"
#include "common/fd.h"

namespace nq::testing {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

v1::TrafficScope* fill_scope(v1::NetworkPath* path, v1::Direction dir, const Scope& scope) {
  path->set_direction(dir);
  auto* s = path->mutable_scope();
  for (const auto& c : scope.remote_cidrs) s->add_remote_cidrs(c);
  for (uint32_t p : scope.remote_ports) {
    auto* r = s->add_remote_ports();
    r->set_first(p);
    r->set_last(p);
  }
  return s;
}

std::string hex(const std::vector<uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::atomic<int> g_temp_dirs{0};

}  // namespace

// ------------------------------------------------------------ requests

v1::FaultSpec partition(v1::Direction dir, const Scope& scope) {
  v1::FaultSpec spec;
  fill_scope(spec.mutable_partition()->mutable_path(), dir, scope);
  return spec;
}

v1::FaultSpec bandwidth(uint64_t bps, v1::Direction dir, const Scope& scope) {
  v1::FaultSpec spec;
  spec.mutable_bandwidth()->set_rate_bps(bps);
  fill_scope(spec.mutable_bandwidth()->mutable_path(), dir, scope);
  return spec;
}

v1::FaultSpec netem_delay(std::chrono::milliseconds delay, v1::Direction dir) {
  v1::FaultSpec spec;
  *spec.mutable_netem()->mutable_delay() = TimeUtil::MillisecondsToDuration(delay.count());
  fill_scope(spec.mutable_netem()->mutable_path(), dir, {});
  return spec;
}

v1::ApplyRequest apply_request(const std::string& id, const std::string& ns, const std::string& pod,
                               const v1::FaultSpec& spec, std::chrono::milliseconds ttl) {
  v1::ApplyRequest req;
  req.set_id(id);
  req.mutable_target()->mutable_pod()->set_namespace_(ns);
  req.mutable_target()->mutable_pod()->set_name(pod);
  *req.mutable_spec() = spec;
  *req.mutable_ttl() = TimeUtil::MillisecondsToDuration(ttl.count());
  return req;
}

// ------------------------------------------------------------ the agent

TempDir::TempDir(const std::string& name) {
  path_ = fs::temp_directory_path() / ("nqt-" + name + "-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(g_temp_dirs.fetch_add(1)));
  std::error_code ec;
  fs::remove_all(path_, ec);  // a leftover of an earlier process with our pid
  fs::create_directories(path_, ec);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

AgentHarness::AgentHarness(const SandboxEnv& env, const std::string& name)
    : env_(env), state_(name + "-state"), logs_(name + "-logs") {}

AgentHarness::~AgentHarness() = default;

std::string AgentHarness::binary() {
  return NQ_AGENT_PATH;
}

AgentProcessOptions AgentHarness::options(const std::vector<std::string>& extra) const {
  AgentProcessOptions o;
  o.binary = binary();
  o.state_dir = state_.path().string();
  o.socket = (state_.path() / "agent.sock").string();
  o.sandbox_dir = env_.options().state_dir.string();
  o.log_file = log_file();
  o.metrics_address = metrics_address_;
  // The tests compare kernel state right after a revert: no idle program.
  o.extra_args = {"--node-name", "nqtest" + env_.suffix(), "--log-level", "info", "--bpf-idle",
                  "0s"};
  o.extra_args.insert(o.extra_args.end(), extra.begin(), extra.end());
  return o;
}

Status AgentHarness::start(const std::vector<std::string>& extra,
                           std::chrono::milliseconds timeout) {
  if (proc_) return Error::failed_precondition("agent already running");
  { std::ofstream(log_file(), std::ios::app) << "---- start\n"; }
  auto proc = AgentProcess::start(options(extra), timeout);
  if (!proc.ok()) return std::move(proc).error().wrapped("log tail:\n" + log_tail());
  proc_ = std::move(*proc);
  return ok();
}

Result<int> AgentHarness::stop(int sig) {
  if (!proc_) return Error::failed_precondition("agent not running");
  auto status = proc_->stop(sig);
  proc_.reset();  // SIGKILLs it if stop() failed
  return status;
}

std::string AgentHarness::log_tail(size_t bytes) const {
  std::ifstream in(log_file());
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  return all.size() <= bytes ? all : all.substr(all.size() - bytes);
}

// ------------------------------------------------------------ kernel state

Result<PodStates> capture_pods(const SandboxEnv& env, const std::vector<std::string>& pods) {
  PodStates out;
  for (const auto& name : pods) {
    NQ_ASSIGN_OR_RETURN(Netns netns, env.netns(name));
    NQ_ASSIGN_OR_RETURN(out[name], capture_kernel_state(netns));
  }
  return out;
}

std::string diff(const PodStates& before, const PodStates& after) {
  std::string out;
  for (const auto& [name, state] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      out += name + ": missing\n";
      continue;
    }
    if (std::string d = diff(state, it->second); !d.empty()) out += name + ":\n" + d;
  }
  for (const auto& [name, state] : after)
    if (!before.count(name)) out += name + ": unexpected\n";
  return out;
}

Result<std::vector<std::string>> capture_host_side(const SandboxEnv& env,
                                                   const std::vector<std::string>& pods) {
  std::set<std::string> ours = {env.options().bridge};
  for (const auto& name : pods) {
    NQ_ASSIGN_OR_RETURN(sandbox::PodRecord rec, env.record(name));
    if (!rec.host_veth.empty()) ours.insert(rec.host_veth);
  }
  NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
  nl_cache* raw = nullptr;
  if (int rc = rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &raw); rc < 0)
    return Error::from_netlink(rc, "dump host links");
  net::CachePtr cache(raw);
  std::vector<std::string> lines;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* link = reinterpret_cast<rtnl_link*>(o);
    const std::string name = rtnl_link_get_name(link) ? rtnl_link_get_name(link) : "";
    const std::string kind = rtnl_link_get_type(link) ? rtnl_link_get_type(link) : "";
    const bool stray_ifb = kind == "ifb" && name.starts_with("nq");
    if (!ours.count(name) && !stray_ifb) continue;
    lines.push_back(name + " " + kind);
    auto objects = net::dump_device(sock, rtnl_link_get_ifindex(link));
    if (!objects.ok()) {
      // Another test's device may vanish while we look; ours do not.
      if (!ours.count(name)) continue;
      return std::move(objects).error().wrapped("tc objects of " + name);
    }
    for (const auto& obj : *objects)
      lines.push_back(name + ": " + net::describe(obj) + " [" + hex(obj.attrs) + "]");
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

Status install_cni_root(const Netns& netns, const std::string& ifname) {
  return run_in_netns(netns, [&]() -> Status {
    constexpr uint32_t kRoot = 0x00010000;  // 1:
    constexpr uint16_t kMinor = 0x10;       // class 1:10, leaf 10:
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_ASSIGN_OR_RETURN(int ifindex, net::link_index(sock, ifname));
    NQ_ASSIGN_OR_RETURN(net::MsgPtr root, net::build_htb_root(ifindex, kRoot));
    NQ_TRY(net::transact(sock, root.get(), "cni root"));
    NQ_ASSIGN_OR_RETURN(net::MsgPtr cls, net::build_leaf_class(ifindex, kRoot, kMinor));
    NQ_TRY(net::transact(sock, cls.get(), "cni class"));
    net::TbfParams tbf;
    tbf.rate_bps = 200'000'000;
    tbf.buffer_bytes = 256 * 1024;
    tbf.limit_bytes = 1024 * 1024;
    NQ_ASSIGN_OR_RETURN(net::MsgPtr leaf, net::build_leaf_qdisc(ifindex, kRoot, kMinor, tbf));
    return net::transact(sock, leaf.get(), "cni tbf leaf");
  });
}

// ------------------------------------------------------------ misc

Result<uint16_t> free_local_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
    return Error::from_errno(errno, "bind 127.0.0.1:0");
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) < 0)
    return Error::from_errno(errno, "getsockname");
  return ntohs(addr.sin_port);
}

Result<std::string> http_get_body(uint16_t port, const std::string& path) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
    return Error::from_errno(errno, "connect 127.0.0.1:" + std::to_string(port));
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0)
    return Error::from_errno(errno, "send");
  std::string resp;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) return Error::from_errno(errno, "recv");
    if (n == 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  const size_t eol = resp.find("\r\n");
  if (eol == std::string::npos || resp.substr(0, eol).find(" 200") == std::string::npos)
    return Error::internal("GET " + path + ": " + resp.substr(0, eol));
  const size_t body = resp.find("\r\n\r\n");
  if (body == std::string::npos) return Error::internal("no HTTP body");
  return resp.substr(body + 4);
}

Result<double> prometheus_sample(const std::string& text, const std::string& name,
                                 const std::map<std::string, std::string>& labels) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const std::string metric = line.substr(0, std::min(brace, space));
    if (metric != name) continue;
    const std::string label_text =
        brace == std::string::npos ? "" : line.substr(brace, line.find('}') - brace + 1);
    bool all = true;
    for (const auto& [k, v] : labels)
      all = all && label_text.find(k + "=\"" + v + "\"") != std::string::npos;
    if (all) return std::stod(line.substr(space + 1));
  }
  return Error::not_found(name + " not in the scrape");
}

}  // namespace nq::testing

#include "bench/fanout_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/pod_network.h"
#include "agent/server/channel.h"
#include "common/fd.h"
#include "common/netns.h"

extern char** environ;

namespace nq::bench {
namespace {

namespace fs = std::filesystem;
namespace v1 = nodequake::v1;
using namespace std::chrono_literals;

// posix_spawn with stdout and stderr to `log` ("" = inherit) and a clean
// signal mask (we block the stop signals; children must not inherit that).
Result<pid_t> spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!log.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::from_errno(rc, "spawn " + args[0]);
  return pid;
}

// Waits for `pid` up to `timeout`; its wait status, or none when it still runs.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || r < 0) return status;
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

// Whether 127.0.0.1:`port` can be bound right now.
bool port_free(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Pids of processes whose argv has an element at or below `dir` (the shims
// get their registry as --state-dir, the agents theirs as --sandbox-dir).
std::vector<pid_t> processes_using(const std::string& dir) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string raw = read_text(entry.path() / "cmdline");
    size_t start = 0;
    while (start < raw.size()) {
      size_t end = raw.find('\0', start);
      if (end == std::string::npos) end = raw.size();
      const std::string_view arg(raw.data() + start, end - start);
      if (arg == dir || arg.starts_with(dir + "/")) {
        const pid_t pid = static_cast<pid_t>(std::stol(name));
        if (pid != ::getpid()) out.push_back(pid);
        break;
      }
      start = end + 1;
    }
  }
  return out;
}

// Runs fn(i) for i in [0, n) on `threads` threads; stops handing out work
// after the first error (returned) or when `interrupted` says so, which the
// calling thread polls meanwhile.
Status parallel_for(int n, int threads, const std::function<Status(int)>& fn,
                    const std::function<Status()>& interrupted) {
  std::atomic<int> next{0};
  std::atomic<bool> stop{false};
  std::atomic<int> running{threads};
  std::mutex mu;
  std::optional<Error> first;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      while (!stop) {
        const int i = next.fetch_add(1);
        if (i >= n) break;
        if (Status st = fn(i); !st.ok()) {
          std::lock_guard lock(mu);
          if (!first) first = std::move(st).error();
          stop = true;
        }
      }
      --running;
    });
  while (running > 0) {
    if (Status st = interrupted(); !st.ok() && !stop) {
      std::lock_guard lock(mu);
      if (!first) first = std::move(st).error();
      stop = true;
    }
    std::this_thread::sleep_for(50ms);
  }
  for (auto& t : pool) t.join();
  if (first) return std::move(*first);
  return ok();
}

sandbox::PodSpec pod_spec(const std::string& ns, const std::string& name) {
  sandbox::PodSpec p;
  p.namespace_name = ns;
  p.name = name;
  p.labels = {{"app", "fanout"}, {"chaos-ready", "true"}};
  p.where = "nq-bench-fanout";
  sandbox::ContainerSpec c;
  c.name = "main";  // empty command: nq-echo, ready once it answers on 8080
  c.limits.memory_bytes = 32LL << 20;
  c.where = p.where;
  p.containers.push_back(std::move(c));
  return p;
}

std::string tag(pid_t pid) {
  return std::to_string(pid);
}

}  // namespace

std::string node_subnet(pid_t pid, int index) {
  const int block = static_cast<int>(pid % 16) * 16;
  return "10.216." + std::to_string(block + index / 16) + "." + std::to_string((index % 16) * 16) +
         "/28";
}

sandbox::SandboxOptions node_sandbox_options(pid_t pid, int index, const fs::path& registry) {
  sandbox::SandboxOptions o;
  o.state_dir = registry;
  // Interface names have 15 characters at most: "nqf" + 4 + "b" + 3.
  o.bridge = "nqf" + std::to_string(pid % 10000) + "b" + std::to_string(index);
  o.subnet = node_subnet(pid, index);
  o.cgroup_parent = "nqfan" + tag(pid) + "-" + std::to_string(index);
  o.netns_prefix = "nqf" + tag(pid) + "-" + std::to_string(index) + "-";
  o.stop_timeout = 8s;
  return o;
}

FanoutCluster::FanoutCluster(FanoutClusterConfig config) : cfg_(std::move(config)) {
  const pid_t self = ::getpid();
  ns_ = "nqf-" + tag(self);
  // Listeners below the ephemeral range (32768+), so no outgoing connection
  // of another process takes one between our check and the agent's bind.
  next_port_ = static_cast<uint16_t>(12000 + (self % 70) * 280);
  const std::string salt = tag(self) + "-0123456789abcdef";
  operator_token_ = "fanout-operator-" + salt;
  killswitch_token_ = "fanout-killswitch-" + salt;
  controller_socket_ = (cfg_.work / "controller.sock").string();
  for (int i = 0; i < cfg_.agents; ++i) {
    FanoutNode n;
    n.index = i;
    n.name = "nqf-" + tag(self) + "-node-" + std::to_string(i);
    n.pod = "pod-" + std::to_string(i);
    n.sandbox = node_sandbox_options(self, i, cfg_.work / "pods" / std::to_string(i));
    n.sandbox.nq_echo = cfg_.nq_echo;
    n.sandbox.shim_command = {cfg_.nqctl, "sandbox", "shim"};
    n.journal_dir = cfg_.journal_root / std::to_string(i);
    n.socket = cfg_.work / "sock" / (std::to_string(i) + ".sock");
    n.log = cfg_.work / "logs" / ("agent-" + std::to_string(i) + ".log");
    nodes_.push_back(std::move(n));
  }
}

FanoutCluster::~FanoutCluster() {
  if (Status st = teardown(); !st.ok())
    std::fprintf(stderr, "nq-bench-fanout: cleanup: %s\n", st.error().message().c_str());
}

std::string FanoutCluster::killswitch_url() const {
  return "http://127.0.0.1:" + std::to_string(killswitch_port_) + "/v1/killswitch";
}
std::string FanoutCluster::operator_token_file() const {
  return (cfg_.work / "operator.token").string();
}
std::string FanoutCluster::controller_log() const {
  return (cfg_.work / "logs" / "controller.log").string();
}

Status FanoutCluster::make_certs() {
  // The project's throwaway test CA and certificates (agent: localhost and
  // 127.0.0.1; client "nodequake-controller", the agents' default identity).
  NQ_ASSIGN_OR_RETURN(pid_t pid, spawn({cfg_.gen_certs, (cfg_.work / "certs").string()},
                                       (cfg_.work / "logs" / "certs.log").string()));
  const auto status = wait_for(pid, 60s);
  if (!status) {
    ::kill(pid, SIGKILL);
    (void)wait_for(pid, 5s);
    return Error::status(Code::kDeadlineExceeded, cfg_.gen_certs + " did not finish");
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
    return Error::internal(cfg_.gen_certs + " failed; see " +
                           (cfg_.work / "logs" / "certs.log").string());
  return ok();
}

Status FanoutCluster::write_access_files() {
  const auto write = [](const fs::path& p, const std::string& text) -> Status {
    std::ofstream out(p);
    out << text;
    out.close();
    if (!out) return Error::internal("cannot write " + p.string());
    return ok();
  };
  NQ_TRY(write(operator_token_file(), operator_token_ + "\n"));
  NQ_TRY(write(cfg_.work / "killswitch.token", killswitch_token_ + "\n"));
  return write(cfg_.work / "access.yaml",
               "tokens:\n  - {name: bench, role: operator, tokenFile: operator.token}\n");
}

Status FanoutCluster::start_node(FanoutNode& n) {
  std::error_code ec;
  fs::create_directories(n.journal_dir, ec);
  if (ec) return Error(ec, "create " + n.journal_dir.string());
  auto up = sandbox::sandbox_up({pod_spec(ns_, n.pod)}, n.sandbox);
  if (!up.ok()) return std::move(up).error().wrapped("node " + std::to_string(n.index) + " pod");

  const fs::path certs = cfg_.work / "certs";
  // A port another listener took since we checked makes the agent exit at
  // start: try the next one.
  for (int attempt = 0;; ++attempt) {
    uint16_t port = next_port_.fetch_add(1);
    while (!port_free(port)) port = next_port_.fetch_add(1);
    n.target = "127.0.0.1:" + std::to_string(port);
    testing::AgentProcessOptions o;
    o.binary = cfg_.agent_binary;
    o.state_dir = n.journal_dir.string();
    o.socket = n.socket.string();
    o.sandbox_dir = n.sandbox.state_dir.string();
    o.log_file = n.log.string();
    o.extra_args = {"--node-name", n.name,
                    "--listen",    n.target,
                    "--tls-cert",  (certs / "server.crt").string(),
                    "--tls-key",   (certs / "server.key").string(),
                    "--tls-ca",    (certs / "ca.crt").string(),
                    "--log-level", "warn"};
    auto agent = testing::AgentProcess::start(o, 60s);
    if (agent.ok()) {
      n.agent = std::move(*agent);
      return ok();
    }
    if (attempt == 2)
      return std::move(agent).error().wrapped("node " + std::to_string(n.index) + " agent");
  }
}

Status FanoutCluster::start_controller() {
  while (!port_free(killswitch_port_ = next_port_.fetch_add(1))) {
  }
  const fs::path certs = cfg_.work / "certs";
  std::vector<std::string> args = {cfg_.controller_binary,
                                   "--socket",
                                   controller_socket_,
                                   "--state-dir",
                                   (cfg_.work / "controller").string(),
                                   "--access-file",
                                   (cfg_.work / "access.yaml").string(),
                                   "--tls-cert",
                                   (certs / "controller.crt").string(),
                                   "--tls-key",
                                   (certs / "controller.key").string(),
                                   "--tls-ca",
                                   (certs / "ca.crt").string(),
                                   "--killswitch-listen",
                                   "127.0.0.1:" + std::to_string(killswitch_port_),
                                   "--killswitch-token-file",
                                   (cfg_.work / "killswitch.token").string(),
                                   "--metrics-address",
                                   "127.0.0.1:0",
                                   "--log-level",
                                   "warn"};
  for (const auto& n : nodes_) args.insert(args.end(), {"--agent", n.target});
  NQ_ASSIGN_OR_RETURN(controller_pid_, spawn(args, controller_log()));

  NQ_ASSIGN_OR_RETURN(auto channel, make_channel({"unix://" + controller_socket_, "", "", "", ""}));
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(controller_pid_, &status, WNOHANG) == controller_pid_) {
      controller_pid_ = -1;
      return Error::unavailable("nodequake-controller exited at start; see " + controller_log());
    }
    if (::access(controller_socket_.c_str(), F_OK) == 0) {
      if (!controller_stub_) controller_stub_ = v1::Controller::NewStub(channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 1s);
      ctx.AddMetadata("authorization", "Bearer " + operator_token_);
      v1::GetRequest req;
      req.set_id("probe");
      v1::GetResponse resp;
      // NOT_FOUND for a made-up id: the API answers and our token is accepted.
      if (controller_stub_->Get(&ctx, req, &resp).error_code() == grpc::StatusCode::NOT_FOUND)
        return ok();
    }
    std::this_thread::sleep_for(50ms);
  }
  return Error::status(Code::kDeadlineExceeded,
                       "nodequake-controller not ready after 30 s; see " + controller_log());
}

Status FanoutCluster::start(const std::function<Status()>& interrupted,
                            const std::function<void(const std::string&)>& progress) {
  std::error_code ec;
  for (const char* d : {"certs", "logs", "pods", "sock", "controller"}) {
    fs::create_directories(cfg_.work / d, ec);
    if (ec) return Error(ec, "create " + (cfg_.work / d).string());
  }
  NQ_TRY(make_certs());
  NQ_TRY(write_access_files());
  progress("bringing up " + std::to_string(nodes_.size()) + " nodes (a pod and an agent each, " +
           std::to_string(cfg_.setup_threads) + " at a time)");
  std::atomic<int> done{0};
  const auto one = [&](int i) -> Status {
    NQ_TRY(start_node(nodes_[static_cast<size_t>(i)]));
    if (const int d = ++done; d % 20 == 0) progress(std::to_string(d) + " nodes up");
    return ok();
  };
  NQ_TRY(parallel_for(static_cast<int>(nodes_.size()), cfg_.setup_threads, one, interrupted));
  NQ_TRY(interrupted());
  progress("starting nodequake-controller with " + std::to_string(nodes_.size()) + " agents");
  return start_controller();
}

Status FanoutCluster::stop_controller() {
  if (controller_pid_ <= 0) return ok();
  // SIGTERM: the controller stops its runs and has them revert first.
  ::kill(controller_pid_, SIGTERM);
  auto status = wait_for(controller_pid_, 30s);
  Status st = ok();
  if (!status) {
    ::kill(controller_pid_, SIGKILL);
    (void)wait_for(controller_pid_, 5s);
    st = Error::status(Code::kDeadlineExceeded, "the controller ignored SIGTERM for 30 s");
  }
  controller_pid_ = -1;
  return st;
}

Status FanoutCluster::teardown() {
  if (torn_down_) return ok();
  torn_down_ = true;
  Status result = stop_controller();
  controller_stub_.reset();

  // Agents: SIGTERM to all first, so they revert and exit side by side; then
  // reap each (the AgentProcess destructor SIGKILLs one that hangs).
  for (auto& n : nodes_)
    if (n.agent && n.agent->pid() > 0) ::kill(n.agent->pid(), SIGTERM);
  for (auto& n : nodes_) {
    if (!n.agent) continue;
    if (auto st = n.agent->stop(SIGTERM, 30s); !st.ok() && result.ok())
      result = std::move(st).error().wrapped("agent " + std::to_string(n.index));
    n.agent.reset();
  }

  // Pods, each sandbox on its own; a node whose pod never came up has
  // nothing in its registry, which `down` accepts.
  for (auto& n : nodes_) {
    std::error_code ec;
    if (!fs::exists(n.sandbox.state_dir, ec)) continue;
    if (auto down = sandbox::sandbox_down_all(n.sandbox); !down.ok() && result.ok())
      result = std::move(down).error().wrapped("node " + std::to_string(n.index) + " pods");
  }

  // Safety net by name; every step tolerates absence.
  for (pid_t p : processes_using((cfg_.work / "pods").string())) ::kill(p, SIGKILL);
  const std::string netns_prefix = "nqf" + tag(::getpid()) + "-";
  std::error_code ec;
  for (const auto& n : nodes_) (void)sandbox::remove_bridge(n.sandbox.bridge);
  for (const auto& entry : fs::directory_iterator("/run/netns", ec))
    if (entry.path().filename().string().starts_with(netns_prefix))
      (void)remove_named_netns(entry.path().string());
  if (auto cg = runtime::CgroupFs::discover(); cg.ok()) {
    for (const runtime::CgroupMount& m : cg->mounts().mounts) {
      auto root = cg->dir(m, m.root);
      if (!root.ok()) continue;
      for (const auto& n : nodes_) {
        const fs::path parent = *root / n.sandbox.cgroup_parent;
        if (!fs::exists(parent, ec)) continue;
        // Leaf first: cgroupfs removes only empty directories.
        std::vector<fs::path> dirs;
        for (auto it = fs::recursive_directory_iterator(parent, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
          if (it->is_directory(ec)) dirs.push_back(it->path());
        for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) fs::remove(*it, ec);
        fs::remove(parent, ec);
      }
    }
  }
  return result;
}

}  // namespace nq::bench

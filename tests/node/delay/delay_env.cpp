#include "tests/node/delay/delay_env.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

#include "agent/net/links.h"
#include "common/cidr.h"

extern char** environ;

namespace nq::testing {
namespace {

// UAPI 6.1 predates TCX (see agent/delay/delayline_bpf.cpp).
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;

// The calling thread under SCHED_FIFO; best effort (see DelayEnv).
void measure_in_realtime() {
  sched_param param{};
  param.sched_priority = 2;
  (void)::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param);
}

}  // namespace

std::optional<std::string> delay_line_missing() {
  if (::geteuid() != 0) return "needs root (namespaces, a TAP, BPF)";
  if (::access("/dev/net/tun", R_OK | W_OK) != 0) return "no /dev/net/tun (tun driver)";
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
      (major < 6 || (major == 6 && minor < 6)))
    return std::string("kernel ") + u.release +
           " has no TCX links (6.6+), which the delay line needs";
  return std::nullopt;
}

Result<std::unique_ptr<DelayEnv>> DelayEnv::create() {
  std::unique_ptr<DelayEnv> env(new DelayEnv());
  NQ_ASSIGN_OR_RETURN(env->pair_, NetnsPair::create());
  NQ_TRY(run_in_netns(env->pair_->b(), [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_ASSIGN_OR_RETURN(Cidr addr, parse_interface_address(std::string(kIpB2) + "/24"));
    return net::add_address(sock, "eth0", addr);
  }));
  // Sockets bound inside b stay there; the loop runs on a thread of ours.
  NQ_ASSIGN_OR_RETURN(env->server_, run_in_netns(env->pair_->b(), [] {
                        return traffic::Server::create("0.0.0.0", traffic::Ports{}, "peer");
                      }));
  env->server_thread_ = std::thread([s = env->server_.get()] {
    measure_in_realtime();
    (void)s->run();
  });
  return env;
}

DelayEnv::~DelayEnv() {
  if (server_) server_->stop();
  if (server_thread_.joinable()) server_thread_.join();
}

namespace {

// Pipelined UDP echo probes on the calling thread. Not traffic's
// udp_echo_probe(): that one waits with millisecond poll() timeouts and
// spins through the last millisecond before each send, which a real-time
// thread must not do (RT throttling would then stall the engine as well).
Result<traffic::UdpProbeResult> probe_loop(const std::string& ip, int count, nanoseconds interval,
                                           nanoseconds linger) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(7);
  if (::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1)
    return Error::invalid_argument("ip", ip + " is not an IPv4 address");
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
    return Error::from_errno(errno, "connect " + ip);
  struct Datagram {
    uint64_t seq;
    int64_t sent_ns;
    uint8_t fill[48];
  };
  const auto now = [] { return std::chrono::steady_clock::now().time_since_epoch(); };
  traffic::UdpProbeResult r;
  std::vector<bool> seen(static_cast<size_t>(count), false);
  const auto receive_until = [&](nanoseconds until) -> Status {
    for (;;) {
      const nanoseconds left = until - now();
      if (left <= nanoseconds(0)) return ok();
      const timespec ts{static_cast<time_t>(left.count() / 1'000'000'000),
                        static_cast<long>(left.count() % 1'000'000'000)};
      pollfd p{fd.get(), POLLIN, 0};
      const int rc = ::ppoll(&p, 1, &ts, nullptr);
      if (rc < 0 && errno != EINTR) return Error::from_errno(errno, "ppoll");
      if (rc <= 0) continue;
      Datagram d{};
      const ssize_t n = ::recv(fd.get(), &d, sizeof(d), 0);
      if (n != sizeof(d) || d.seq >= seen.size()) continue;  // ICMP errors, strays
      if (seen[d.seq]) {
        ++r.duplicates;
        continue;
      }
      seen[d.seq] = true;
      ++r.received;
      r.rtts.push_back(now() - nanoseconds(d.sent_ns));
      r.sent_at.push_back(nanoseconds(d.sent_ns));
    }
  };
  const nanoseconds start = now();
  for (int i = 0; i < count; ++i) {
    Datagram d{};
    d.seq = static_cast<uint64_t>(i);
    d.sent_ns = now().count();
    if (::send(fd.get(), &d, sizeof(d), 0) == sizeof(d)) ++r.sent;
    NQ_TRY(receive_until(start + interval * (i + 1)));
  }
  NQ_TRY(receive_until(now() + linger));
  return r;
}

}  // namespace

Result<traffic::UdpProbeResult> udp_probes(const Netns& from, const std::string& ip, int count,
                                           nanoseconds interval, nanoseconds linger) {
  return run_in_netns(from, [&] {
    measure_in_realtime();
    return probe_loop(ip, count, interval, linger);
  });
}

traffic::Summary rtt_ms(const traffic::UdpProbeResult& r) {
  return traffic::summarize(traffic::to_millis(r.rtts));
}

Result<nanoseconds> time_until_fast(const Netns& from, const std::string& ip,
                                    std::chrono::steady_clock::time_point since, nanoseconds fast,
                                    nanoseconds limit) {
  return run_in_netns(from, [&]() -> Result<nanoseconds> {
    measure_in_realtime();
    for (;;) {
      NQ_ASSIGN_OR_RETURN(traffic::UdpProbeResult r, probe_loop(ip, 1, nanoseconds(0), fast));
      const auto now = std::chrono::steady_clock::now();
      if (r.received == 1 && r.rtts[0] < fast) return now - since;
      if (now - since > limit) return Error::status(Code::kDeadlineExceeded, "still slow");
    }
  });
}

StallWatch::StallWatch(nanoseconds threshold) : threshold_(threshold) {
  thread_ = std::thread([this] { run(); });
}

StallWatch::~StallWatch() {
  stop_.store(true);
  thread_.join();
}

void StallWatch::run() {
  sched_param param{};
  param.sched_priority = 3;
  (void)::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param);
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  const auto now = [] { return std::chrono::steady_clock::now().time_since_epoch(); };
  nanoseconds due = now();
  while (!stop_.load(std::memory_order_relaxed)) {
    due += std::chrono::milliseconds(1);
    const timespec ts{static_cast<time_t>(due.count() / 1'000'000'000),
                      static_cast<long>(due.count() % 1'000'000'000)};
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    const nanoseconds woke = now();
    if (woke - due > threshold_) {
      std::lock_guard lock(mu_);
      stalls_.push_back({due, woke});
    }
    due = std::max(due, woke);
  }
}

std::vector<StallWatch::Stall> StallWatch::stalls() const {
  std::lock_guard lock(mu_);
  return stalls_;
}

traffic::UdpProbeResult StallWatch::undisturbed(const traffic::UdpProbeResult& r) const {
  const std::vector<Stall> seen = stalls();
  traffic::UdpProbeResult out = r;
  out.rtts.clear();
  out.sent_at.clear();
  out.received = 0;
  for (size_t i = 0; i < r.rtts.size() && i < r.sent_at.size(); ++i) {
    const nanoseconds from = r.sent_at[i], to = r.sent_at[i] + r.rtts[i];
    const bool hit = std::any_of(seen.begin(), seen.end(),
                                 [&](const Stall& s) { return s.from < to && from < s.to; });
    if (hit) continue;
    out.rtts.push_back(r.rtts[i]);
    out.sent_at.push_back(r.sent_at[i]);
    ++out.received;
  }
  return out;
}

traffic::Summary WatchedProbes::undisturbed_ms() const {
  return rtt_ms(undisturbed);
}

std::string WatchedProbes::describe() const {
  double longest = 0;
  for (const StallWatch::Stall& s : stalls)
    longest = std::max(longest, std::chrono::duration<double, std::milli>(s.to - s.from).count());
  char buf[160];
  std::snprintf(buf, sizeof buf, "undisturbed %d of %d (%zu stalls > 1 ms, longest %.1f ms)",
                undisturbed.received, all.received, stalls.size(), longest);
  return buf;
}

Result<WatchedProbes> watched_udp_probes(const Netns& from, const std::string& ip, int count,
                                         nanoseconds interval, nanoseconds linger,
                                         int min_undisturbed) {
  StallWatch watch;
  WatchedProbes out;
  // Rounds of `count` probes, each on a fresh socket (a straggler of an
  // earlier round cannot be taken for an answer of this one).
  for (int round = 0; round < kMaxProbeRounds; ++round) {
    NQ_ASSIGN_OR_RETURN(traffic::UdpProbeResult r, udp_probes(from, ip, count, interval, linger));
    out.all.sent += r.sent;
    out.all.received += r.received;
    out.all.duplicates += r.duplicates;
    out.all.corrupted += r.corrupted;
    out.all.rtts.insert(out.all.rtts.end(), r.rtts.begin(), r.rtts.end());
    out.all.sent_at.insert(out.all.sent_at.end(), r.sent_at.begin(), r.sent_at.end());
    out.undisturbed = watch.undisturbed(out.all);
    if (out.undisturbed.received >= min_undisturbed) break;
  }
  out.stalls = watch.stalls();
  return out;
}

Result<bool> link_exists(const Netns& ns, const std::string& name) {
  return run_in_netns(ns, [&]() -> Result<bool> {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    auto idx = net::link_index(sock, name);
    if (idx.ok()) return true;
    if (idx.error().status_code() == Code::kNotFound) return false;
    return std::move(idx).error();
  });
}

Result<uint32_t> tcx_programs(const Netns& ns, const std::string& ifname, bool egress) {
  return run_in_netns(ns, [&]() -> Result<uint32_t> {
    const unsigned ifindex = ::if_nametoindex(ifname.c_str());
    if (ifindex == 0) return Error::from_errno(errno, "if_nametoindex " + ifname);
    uint32_t ids[16];
    uint32_t count = 16, flags = 0;
    // For TCX the "target fd" of BPF_PROG_QUERY is the ifindex.
    if (bpf_prog_query(static_cast<int>(ifindex),
                       static_cast<bpf_attach_type>(egress ? kBpfTcxEgress : kBpfTcxIngress), 0,
                       &flags, ids, &count) != 0)
      return Error::from_errno(errno, "query TCX programs of " + ifname);
    return count;
  });
}

Result<std::unique_ptr<HeldLine>> HeldLine::start(const std::string& netns_path,
                                                  const std::vector<std::string>& args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno(errno, "pipe2");
  UniqueFd rd(fds[0]), wr(fds[1]);
  std::vector<std::string> argv_s = {NQ_DELAYLINE_HOLD_PATH, "--netns", netns_path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, wr.get(), STDOUT_FILENO);
  std::unique_ptr<HeldLine> held(new HeldLine());
  const int rc = ::posix_spawn(&held->pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    held->pid_ = -1;
    return Error::from_errno(rc, std::string("spawn ") + argv[0]);
  }
  wr.reset();
  std::string line;
  // Loading, the TAP and the links take well under a second; a loaded
  // 2-core machine gets ten.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{rd.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1)
      return Error::unavailable("nq-delayline-hold did not get ready in 10 s");
    char buf[128];
    const ssize_t n = ::read(rd.get(), buf, sizeof(buf));
    if (n <= 0) return Error::unavailable("nq-delayline-hold exited before it was ready");
    line.append(buf, static_cast<size_t>(n));
  }
  if (line.rfind("ready ", 0) != 0) return Error::internal("nq-delayline-hold said: " + line);
  held->tap_name_ = line.substr(6, line.find('\n') - 6);
  return held;
}

HeldLine::~HeldLine() {
  kill();
}

Status HeldLine::signal(int sig) {
  if (pid_ <= 0) return Error::failed_precondition("nq-delayline-hold is not running");
  if (::kill(pid_, sig) != 0) return Error::from_errno(errno, "kill");
  return ok();
}

void HeldLine::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Result<int> HeldLine::wait() {
  if (pid_ <= 0) return Error::failed_precondition("nq-delayline-hold is not running");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return Error::from_errno(errno, "waitpid");
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace nq::testing

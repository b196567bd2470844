// The crash test: with injections of every kind this kernel supports active
// (or being applied), kill -9 the agent at a random moment, restart it on the
// same journal, and require that every sandbox pod's kernel state (qdiscs,
// classes, filters, clsact and TCX programs, ifb devices) is exactly what it
// was before any injection -- including a CNI-like root qdisc tree that one
// pod carries -- and so is its workload side: no stressor process, every
// cgroup thawed, the block I/O throttles as they were, no fill file, no BPF
// LSM link. Repeated with kills before, during and after the Applies, in
// both BPF attach modes, and once with a kill during the restart's reconcile.
//
// NQ_CRASH_SEED=<n> replays a run; NQ_CRASH_ITERATIONS=<n> (default 24) sets
// its length.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

#include "tests/node/core/agent_harness.h"
#include "tests/node/core/workload_state.h"
#include "tests/node/disk/disk_helpers.h"
#include "tests/node/io/io_helpers.h"

extern char** environ;

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

unsigned env_or(const char* name, unsigned fallback) {
  const char* v = std::getenv(name);
  return v && *v ? static_cast<unsigned>(std::strtoul(v, nullptr, 10)) : fallback;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The agent spawned without waiting for it (AgentProcess waits for Probe):
// for the kill that must land inside the start-up reconcile. SIGKILLed and
// reaped by the destructor.
class RawAgent {
 public:
  static Result<std::unique_ptr<RawAgent>> spawn(const AgentProcessOptions& o) {
    std::vector<std::string> args = {
        o.binary,        "--state-dir", o.state_dir,         "--socket",       o.socket,
        "--sandbox-dir", o.sandbox_dir, "--metrics-address", o.metrics_address};
    args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // No O_CLOEXEC: the file becomes fd 2 itself (see agent_process.cpp).
    posix_spawn_file_actions_addopen(&actions, 2, o.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, o.binary.c_str(), &actions, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return Error::from_errno(rc, "spawn " + o.binary);
    return std::unique_ptr<RawAgent>(new RawAgent(pid));
  }
  ~RawAgent() { kill(); }
  pid_t pid() const { return pid_; }
  bool exited() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;
    return pid_ < 0;
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  explicit RawAgent(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

uintmax_t file_size_or_zero(const std::filesystem::path& p) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(p, ec);
  return ec ? 0 : n;
}

struct Planned {
  std::string pod;
  std::string what;  // for messages
  v1::FaultSpec spec;
};

// What the Apply threads saw around one kill.
struct Outcome {
  int applied = 0;                      // Apply RPCs that succeeded
  int in_flight = 0;                    // started before the kill, failed UNAVAILABLE/CANCELLED
  int started = 0;                      // Apply RPCs sent at all
  std::vector<std::string> unexpected;  // any other failure
};

class CrashTest : public ::testing::Test {
 protected:
  static constexpr const char* kPods[] = {"alpha", "bravo", "charlie"};

  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    std::vector<sandbox::PodSpec> specs;
    for (const char* p : kPods) specs.push_back(env_.pod(p));
    auto up = env_.up(specs);
    ASSERT_TRUE(up.ok()) << up.error().message();
    for (const char* p : kPods) {
      auto ip = env_.ip(p);
      ASSERT_TRUE(ip.ok()) << ip.error().message();
      ips_[p] = *ip;
      pods_.push_back(p);
    }
    // alpha carries a CNI's egress tree, which every restore must bring back.
    auto alpha = env_.netns("alpha");
    ASSERT_TRUE(alpha.ok());
    ASSERT_TRUE(install_cni_root(*alpha).ok());

    auto states = capture_pods(env_, pods_);
    ASSERT_TRUE(states.ok()) << states.error().message();
    baseline_ = std::move(*states);
    auto host = capture_host_side(env_, pods_);
    ASSERT_TRUE(host.ok()) << host.error().message();
    host_baseline_ = std::move(*host);

    // The workload faults' targets: a block device to throttle, a small
    // file system to fill (sandbox pods see the host's mounts).
    auto loop = disk::testing::LoopDevice::create(16 << 20);
    ASSERT_TRUE(loop.ok()) << loop.error().message();
    loop_ = std::make_unique<disk::testing::LoopDevice>(std::move(*loop));
    auto tmpfs = disk::testing::Tmpfs::mount(32 << 20);
    ASSERT_TRUE(tmpfs.ok()) << tmpfs.error().message();
    tmpfs_ = std::make_unique<disk::testing::Tmpfs>(std::move(*tmpfs));
    auto workload = capture_workload();
    ASSERT_TRUE(workload.ok()) << workload.error().message();
    workload_baseline_ = std::move(*workload);

    // What this kernel supports decides the plan.
    ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
    v1::ProbeResponse probe;
    ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &probe).ok());
    for (const auto& c : probe.capabilities()) caps_[c.name()] = c.available();
    ASSERT_TRUE(agent_.stop(SIGTERM).ok());
    ready_ = true;
  }

  void TearDown() override {
    if (!ready_) return;
    if (agent_.running()) (void)agent_.stop(SIGTERM);
    if (HasFailure()) std::cerr << "agent log (tail):\n" << agent_.log_tail(20000) << "\n";
  }

  // Every fault kind this kernel supports, on every pod, scoped to ports and peers.
  std::vector<Planned> plan() {
    std::vector<Planned> out;
    for (size_t i = 0; i < pods_.size(); ++i) {
      const std::string& pod = pods_[i];
      const std::string peer = ips_[pods_[(i + 1) % pods_.size()]] + "/32";
      const std::string other = ips_[pods_[(i + 2) % pods_.size()]] + "/32";
      out.push_back({pod, "partition-to", partition(v1::DIRECTION_TO, {{peer}, {7}})});
      out.push_back({pod, "partition-from", partition(v1::DIRECTION_FROM, {{}, {8080}})});
      out.push_back({pod, "partition-both", partition(v1::DIRECTION_BOTH, {{other}, {}})});
      out.push_back({pod, "bandwidth-egress", bandwidth(5'000'000, v1::DIRECTION_TO)});
      out.push_back(
          {pod, "bandwidth-ingress", bandwidth(5'000'000, v1::DIRECTION_FROM, {{}, {19}})});
      out.push_back(
          {pod, "bandwidth-both", bandwidth(10'000'000, v1::DIRECTION_BOTH, {{peer}, {}})});
      if (caps_["sch_netem"])
        out.push_back({pod, "netem-delay", netem_delay(10ms, v1::DIRECTION_TO)});
      if (caps_["bpf_tcx"] && caps_["tun"]) {
        // The eBPF delay line: its TAP and TCX links die with the agent.
        v1::FaultSpec line = netem_delay(10ms, v1::DIRECTION_TO);
        line.mutable_netem()->set_engine(v1::NETEM_ENGINE_EBPF);
        out.push_back({pod, "delay-line", line});
      }
    }
    // Workload faults, spread so that no stressor runs in a frozen pod (a
    // frozen task cannot die, which would only test the freezer's patience).
    v1::FaultSpec cpu, memory, throttle, fill, freeze, io;
    cpu.mutable_cpu_stress()->set_load(20);
    cpu.mutable_cpu_stress()->set_workers(1);
    memory.mutable_memory_stress()->set_bytes(8 << 20);
    throttle.mutable_io_throttle()->set_path(loop_->path());
    throttle.mutable_io_throttle()->set_write_bytes_per_second(1 << 20);
    fill.mutable_disk_fill()->set_path(tmpfs_->dir().string());
    fill.mutable_disk_fill()->set_bytes(1 << 20);
    freeze.mutable_pod_failure();
    out.push_back({pods_[0], "cpu-stress", cpu});
    out.push_back({pods_[0], "memory-stress", memory});
    out.push_back({pods_[1], "io-throttle", throttle});
    out.push_back({pods_[1], "disk-fill", fill});
    out.push_back({pods_[2], "pod-failure", freeze});
    if (caps_["bpf_lsm"]) {
      io.mutable_io_errno()->set_path(tmpfs_->dir().string());
      io.mutable_io_errno()->set_error("EIO");
      out.push_back({pods_[1], "io-errno", io});
    }
    return out;
  }

  // The workload side of every pod, and what is global to the node.
  Result<std::vector<std::string>> capture_workload() {
    std::vector<std::string> out;
    for (const auto& p : pods_) {
      NQ_ASSIGN_OR_RETURN(auto rec, env_.record(p));
      NQ_ASSIGN_OR_RETURN(auto lines, capture_cgroup_state(rec.cgroup_dirs));
      out.insert(out.end(), lines.begin(), lines.end());
    }
    for (const auto& f : fill_files(tmpfs_->dir())) out.push_back("fill file " + f);
    NQ_ASSIGN_OR_RETURN(uint64_t avail, disk::testing::available_bytes(tmpfs_->dir()));
    out.push_back("tmpfs available " + std::to_string(avail));
    NQ_ASSIGN_OR_RETURN(int links, io::testing::ioerrno_links());
    out.push_back("ioerrno links " + std::to_string(links));
    return out;
  }

  // Issues the plan's Applies from two threads (so one is always queued
  // behind the one the agent is working on) until the plan is done or the
  // agent is gone. `kill_time` is set by the killer before it kills.
  void run_appliers(const std::vector<Planned>& todo, const std::string& prefix,
                    const std::atomic<int64_t>& kill_time, Outcome& out) {
    std::atomic<size_t> next{0};
    std::mutex mu;
    auto worker = [&] {
      for (;;) {
        const size_t i = next.fetch_add(1);
        if (i >= todo.size()) return;
        const auto& p = todo[i];
        const v1::ApplyRequest req =
            apply_request(prefix + "-" + p.pod + "-" + p.what, env_.ns(), p.pod, p.spec);
        const int64_t started = Clock::now().time_since_epoch().count();
        {
          std::lock_guard lock(mu);
          ++out.started;
        }
        v1::ApplyResponse resp;
        grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply, req, &resp, 20s);
        std::lock_guard lock(mu);
        if (st.ok()) {
          ++out.applied;
          continue;
        }
        const bool gone = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                          st.error_code() == grpc::StatusCode::CANCELLED;
        const int64_t killed = kill_time.load();
        if (gone && killed != 0) {
          if (started < killed) ++out.in_flight;
          return;  // the agent is dead: nothing more to send
        }
        out.unexpected.push_back(req.id() + ": " + std::to_string(st.error_code()) + " " +
                                 st.error_message());
      }
    };
    std::thread a(worker), b(worker);
    a.join();
    b.join();
  }

  // After a restart: nothing active, and the kernel exactly as before.
  void expect_restored(const std::string& when) {
    v1::ListResponse list;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list);
    ASSERT_TRUE(st.ok()) << when << ": " << st.error_message();
    EXPECT_EQ(list.injections_size(), 0) << when << ": injections survived the restart";
    EXPECT_FALSE(list.killswitch().engaged()) << when;
    auto now = capture_pods(env_, pods_);
    ASSERT_TRUE(now.ok()) << now.error().message();
    const std::string d = diff(baseline_, *now);
    ASSERT_EQ(d, "") << when << ": kernel state differs from the baseline:\n" << d;
    auto host = capture_host_side(env_, pods_);
    ASSERT_TRUE(host.ok()) << host.error().message();
    ASSERT_EQ(*host, host_baseline_) << when << ": host side changed";
    auto workload = capture_workload();
    ASSERT_TRUE(workload.ok()) << workload.error().message();
    ASSERT_EQ(*workload, workload_baseline_) << when << ": workload state changed";
  }

  // How many pods are back to their baseline right now.
  int pods_restored() {
    auto now = capture_pods(env_, pods_);
    if (!now.ok()) return -1;
    int n = 0;
    for (const auto& p : pods_) n += diff(baseline_.at(p), now->at(p)).empty() ? 1 : 0;
    return n;
  }

  std::string attach_mode(unsigned i) const {
    if (!caps_.count("bpf_tcx") || !caps_.at("bpf_tcx")) return "clsact";
    return i % 2 == 0 ? "tcx" : "clsact";
  }

  SandboxEnv env_;  // first: torn down last
  std::unique_ptr<disk::testing::LoopDevice> loop_;
  std::unique_ptr<disk::testing::Tmpfs> tmpfs_;
  AgentHarness agent_{env_};
  std::vector<std::string> pods_;
  std::map<std::string, std::string> ips_;
  std::map<std::string, bool> caps_;
  PodStates baseline_;
  std::vector<std::string> host_baseline_;
  std::vector<std::string> workload_baseline_;
  bool ready_ = false;
};

TEST_F(CrashTest, KillNineAtRandomMomentsRestoresKernelStateExactly) {
  const unsigned seed = env_or("NQ_CRASH_SEED", std::random_device{}());
  // 24 by default (the node tier); the vm tier asks for fewer under TCG.
  const unsigned iterations = std::max(1u, env_or("NQ_CRASH_ITERATIONS", 24));
  std::printf("crash test: seed %u (NQ_CRASH_SEED=%u replays it), %u iterations\n", seed, seed,
              iterations);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  const auto t0 = Clock::now();

  enum class When { kBeforeApply, kMidApply, kAfterApplied };
  // Full passes take about this long; refined by every pass that completes.
  double pass_ms = 1000;
  int kills_before = 0, kills_mid_apply = 0, kills_between = 0, kills_after = 0;
  int in_flight_total = 0, applied_total = 0;

  for (unsigned it = 0; it < iterations; ++it) {
    const std::string mode = attach_mode(it);
    const std::string restart_mode = attach_mode(it / 2);
    // The first iteration runs a full pass (it calibrates the window), the
    // second kills before any Apply, the third mid-pass; then 10 % before,
    // 15 % after, 75 % mid.
    When when = When::kMidApply;
    const unsigned draw = std::uniform_int_distribution<unsigned>(0, 99)(rng);
    if (it == 0 || (it > 2 && draw >= 85)) when = When::kAfterApplied;
    if (it == 1 || (it > 2 && draw < 10)) when = When::kBeforeApply;
    // Mid-pass kills land anywhere in the first 90 % of a typical pass.
    const double delay_ms = std::uniform_real_distribution<double>(0, 0.9 * pass_ms)(rng);
    std::vector<Planned> todo = plan();
    std::shuffle(todo.begin(), todo.end(), rng);
    const std::string where = "iteration " + std::to_string(it) + " (seed " + std::to_string(seed) +
                              ", attach " + mode + ")";
    SCOPED_TRACE(where);

    ASSERT_TRUE(agent_.start({"--attach", mode}).ok()) << agent_.log_tail();
    std::atomic<int64_t> kill_time{0};
    Outcome out;
    auto kill_now = [&] {
      kill_time = Clock::now().time_since_epoch().count();
      auto st = agent_.stop(SIGKILL);
      ASSERT_TRUE(st.ok()) << st.error().message();
      ASSERT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << "wait status " << *st;
    };
    if (when == When::kBeforeApply) {
      kill_now();
    } else {
      const auto pass_start = Clock::now();
      std::atomic<double> took_ms{0};
      std::thread appliers([&] {
        run_appliers(todo, "it" + std::to_string(it), kill_time, out);
        took_ms = seconds_since(pass_start) * 1000;
      });
      if (when == When::kAfterApplied) {
        appliers.join();
        // The first pass is the slowest (programs loaded, ifbs created): the
        // fastest pass seen is the window a mid-pass kill must land in.
        pass_ms = it == 0 ? took_ms.load() : std::min(pass_ms, took_ms.load());
        std::this_thread::sleep_for(
            std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 100)(rng)));
        kill_now();
      } else {
        std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay_ms));
        kill_now();
        appliers.join();
        // A pass that finished before the kill was faster than the window.
        if (out.applied == static_cast<int>(todo.size()))
          pass_ms = std::min(pass_ms, took_ms.load());
      }
    }
    if (HasFatalFailure()) return;
    EXPECT_TRUE(out.unexpected.empty()) << ::testing::PrintToString(out.unexpected);
    applied_total += out.applied;
    in_flight_total += out.in_flight;
    if (out.in_flight > 0) {
      ++kills_mid_apply;
    } else if (out.started == 0) {
      ++kills_before;
    } else if (out.applied == static_cast<int>(todo.size())) {
      ++kills_after;
    } else {
      ++kills_between;
    }

    // Restart on the same journal: Probe answers only after reconcile ran.
    ASSERT_TRUE(agent_.start({"--attach", restart_mode}).ok()) << agent_.log_tail();
    ASSERT_NO_FATAL_FAILURE(expect_restored(where + ", " + std::to_string(out.applied) +
                                            " applied, " + std::to_string(out.in_flight) +
                                            " in flight at the kill"));
    auto st = agent_.stop(SIGTERM);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "wait status " << *st;
  }

  std::printf(
      "crash test summary: %u iterations, %d kills mid-Apply (%d Apply RPCs in flight), %d "
      "before any Apply, %d between Applies, %d after all applied; %d injections applied before "
      "kills (a full pass of %zu Applies takes ~%.0f ms); attach tcx/clsact alternating; total "
      "%.1f "
      "s; seed %u\n",
      iterations, kills_mid_apply, in_flight_total, kills_before, kills_between, kills_after,
      applied_total, plan().size(), pass_ms, seconds_since(t0), seed);
  EXPECT_GE(kills_mid_apply, 1) << "no kill landed while an Apply was in flight";
  EXPECT_GE(kills_before, 1);
  EXPECT_GE(kills_after, 1);
}

TEST_F(CrashTest, KillDuringStartUpReconcileIsItselfRecovered) {
  // The kill lands as soon as the restarting agent has journaled its first
  // reconciled link, while others are still to do. Whether it really landed
  // half way is read off the kernel afterwards; a few attempts make sure.
  int confirmed = 0;
  for (int attempt = 0; attempt < 5 && confirmed == 0; ++attempt) {
    SCOPED_TRACE("attempt " + std::to_string(attempt));
    const std::string mode = attach_mode(static_cast<unsigned>(attempt));
    ASSERT_TRUE(agent_.start({"--attach", mode}).ok()) << agent_.log_tail();
    std::atomic<int64_t> never{0};
    Outcome out;
    const std::vector<Planned> todo = plan();
    run_appliers(todo, "rc" + std::to_string(attempt), never, out);
    ASSERT_EQ(out.applied, static_cast<int>(todo.size()))
        << ::testing::PrintToString(out.unexpected);
    ASSERT_TRUE(agent_.stop(SIGKILL).ok());
    ASSERT_EQ(pods_restored(), 0) << "a SIGKILLed agent reverted something by itself?";
    // The workload faults are in place too, or the comparison after the
    // restart would prove nothing: the frozen pod, the throttle and the fill
    // file outlive the agent (the stressors do not: they follow their
    // lifeline, see docs/stress.md).
    auto left = capture_workload();
    ASSERT_TRUE(left.ok()) << left.error().message();
    std::string state;
    for (const auto& line : *left) state += line + "\n";
    EXPECT_TRUE(state.find("FROZEN") != std::string::npos ||
                state.find("cgroup.freeze: 1") != std::string::npos)
        << state;
    EXPECT_NE(state.find("fill file .nodequake-fill-"), std::string::npos) << state;
    EXPECT_NE(state.find("1048576"), std::string::npos) << "no throttle line: " << state;

    const uintmax_t before = file_size_or_zero(agent_.journal_file());
    auto raw = RawAgent::spawn(agent_.options({"--attach", mode}));
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    const auto deadline = Clock::now() + 20s;
    while (file_size_or_zero(agent_.journal_file()) == before && !(*raw)->exited() &&
           Clock::now() < deadline)
      std::this_thread::sleep_for(100us);
    (*raw)->kill();
    const int restored = pods_restored();
    std::printf("reconcile kill, attempt %d: %d of %zu pods restored when the kill landed\n",
                attempt, restored, pods_.size());
    if (restored >= 0 && restored < static_cast<int>(pods_.size())) ++confirmed;

    // Reconcile again, from wherever the killed one stopped.
    ASSERT_TRUE(agent_.start({"--attach", mode}).ok()) << agent_.log_tail();
    ASSERT_NO_FATAL_FAILURE(expect_restored("after a kill during reconcile"));
    ASSERT_TRUE(agent_.stop(SIGTERM).ok());
  }
  EXPECT_EQ(confirmed, 1) << "no kill landed inside the reconcile in 5 attempts";
}

}  // namespace
}  // namespace nq::testing

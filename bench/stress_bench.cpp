// nq-bench-stress: how close CPU and memory stress get to what was asked, for
// nodequake's closed loop (nq-stressor) and for stress-ng's open loop
// (--cpu-load, the same placement in the container's cgroups), measured by
// the container's own cgroup accounting; on an idle container and on one whose
// workload already uses ~30 %. Plus the stress backend's Apply/Revert time.
// See docs/stress.md. Needs root (sandbox pods, cgroups).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <thread>

#include "agent/runtime/local/local_runtime.h"
#include "agent/stress/stress_backend.h"
#include "common/file.h"
#include "common/traffic.h"
#include "tests/node/stress/stress_env.h"
#include "tests/support/sandbox_env.h"

namespace nq::bench {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
constexpr int64_t kMi = 1 << 20;

struct Options {
  std::string stressor = NQ_STRESSOR_PATH;
  std::string stress_ng = "/usr/bin/stress-ng";
  std::chrono::milliseconds settle{3000};
  std::chrono::milliseconds window{10000};
  int runs = 30;
};

// stress-ng placed exactly like nq-stressor (joined to the container's
// cgroups before exec), as a child of ours.
struct StressNg {
  std::optional<stress::ControlPage> page;
  std::optional<stress::StressorProcess> proc;
};

Result<StressNg> start_stress_ng(const Options& o, const runtime::CgroupFs& fs,
                                 const runtime::ContainerInfo& c, std::vector<std::string> args) {
  NQ_ASSIGN_OR_RETURN(auto cg, stress::locate_cgroups(fs, c));
  StressNg s;
  NQ_ASSIGN_OR_RETURN(auto page, stress::ControlPage::create());
  s.page.emplace(std::move(page));
  args.push_back("--quiet");
  NQ_ASSIGN_OR_RETURN(auto proc, stress::StressorProcess::spawn(
                                     {o.stress_ng, args, cg.join_procs, cg.v2_dir}, *s.page));
  s.proc.emplace(std::move(proc));
  return s;
}

// stress-ng forks its workers: kill the parent, then whatever else is in the
// container's cgroup except the workload itself.
void stop_stress_ng(StressNg& s, const runtime::CgroupFs& fs, const runtime::ContainerInfo& c) {
  (void)s.proc->kill_and_reap(5s);
  auto dir = fs.dir_for(c.cgroups, fs.mounts().pure_v2() ? "" : "cpu");
  if (!dir.ok()) return;
  const auto deadline = Steady::now() + 5s;
  while (Steady::now() < deadline) {
    auto procs = runtime::read_cgroup_procs(*dir);
    if (!procs.ok()) return;
    bool extra = false;
    for (pid_t p : *procs) {
      if (p == c.pid) continue;
      auto cmd = read_file("/proc/" + std::to_string(p) + "/cmdline");
      if (cmd.ok() && cmd->rfind("stress-ng", 0) == 0) {
        ::kill(p, SIGKILL);
        extra = true;
      }
    }
    if (!extra) return;
    std::this_thread::sleep_for(50ms);
  }
}

struct Row {
  std::string pod;
  double requested = 0;
  double native = 0;
  double stress_ng = 0;
};

int run(const Options& o) {
  nq::testing::SandboxEnv env;
  auto up = env.up(
      {stress::testing::limited_pod(env, "idle", 1000, 512 * kMi),
       stress::testing::limited_pod(env, "busy", 1000, 512 * kMi,
                                    {o.stress_ng, "--cpu", "1", "--cpu-load", "30", "--quiet"})});
  if (!up.ok()) {
    std::fprintf(stderr, "nq-bench-stress: sandbox: %s\n", up.error().message().c_str());
    return 1;
  }
  sandbox::LocalRuntime rt({env.options().state_dir, "/proc"});
  stress::StressOptions sopts;
  sopts.stressor = o.stressor;
  auto backend = stress::StressBackend::create(
      *env.cgroups(), [](const nodequake::v1::journal::Record&) { return ok(); }, sopts);
  if (!backend.ok()) {
    std::fprintf(stderr, "nq-bench-stress: %s\n", backend.error().message().c_str());
    return 1;
  }
  const auto& fs = *env.cgroups();
  std::printf("nq-bench-stress: 1-CPU / 512Mi sandbox containers, settle %lld ms, window %lld ms\n",
              static_cast<long long>(o.settle.count()), static_cast<long long>(o.window.count()));
  std::printf("%s", stress::testing::machine_load().c_str());
  std::printf("CPU usage of the container (cgroup accounting), %% of its limit\n");
  std::printf("%-28s %9s %12s %12s\n", "container", "requested", "nq-stressor", "stress-ng");
  std::vector<Row> rows;
  int n = 0;
  for (const char* name : {"idle", "busy"}) {
    auto pod = rt.get_pod(env.ns(), name);
    if (!pod.ok()) return 1;
    const auto& c = pod->containers.at(0);
    // As in the node tests: the machine's other work must not starve the
    // container, or both tools just measure the scheduler.
    if (auto st = stress::testing::prioritize_cpu(fs, c, env.options().cgroup_parent); !st.ok()) {
      std::fprintf(stderr, "cpu weight: %s\n", st.error().message().c_str());
      return 1;
    }
    for (double load : {50.0, 80.0, 100.0}) {
      Row r{name, load};
      const std::string id = "bench-" + std::to_string(n++);
      auto d = (*backend)->apply(id, {core::FaultKind::kCpuStress, core::CpuStress{load, 0}}, *pod,
                                 pod->containers);
      if (!d.ok()) {
        std::fprintf(stderr, "apply: %s\n", d.error().message().c_str());
        return 1;
      }
      std::this_thread::sleep_for(o.settle);
      r.native = stress::testing::measure_cpu_percent(fs, c, 1.0, o.window).value();
      (void)(*backend)->revert(id);
      std::this_thread::sleep_for(500ms);
      auto ng = start_stress_ng(
          o, fs, c, {"--cpu", "1", "--cpu-load", std::to_string(static_cast<int>(load))});
      if (!ng.ok()) {
        std::fprintf(stderr, "stress-ng: %s\n", ng.error().message().c_str());
        return 1;
      }
      std::this_thread::sleep_for(o.settle);
      r.stress_ng = stress::testing::measure_cpu_percent(fs, c, 1.0, o.window).value();
      stop_stress_ng(*ng, fs, c);
      std::this_thread::sleep_for(500ms);
      std::printf(
          "%-28s %8.0f%% %11.1f%% %11.1f%%\n",
          (std::string(name) + (std::string(name) == "busy" ? " (workload ~30%)" : "")).c_str(),
          load, r.native, r.stress_ng);
      std::fflush(stdout);
      rows.push_back(r);
    }
  }
  double err_native = 0, err_ng = 0;
  for (const auto& r : rows) {
    err_native = std::max(err_native, std::fabs(r.native - r.requested));
    err_ng = std::max(err_ng, std::fabs(r.stress_ng - r.requested));
  }
  std::printf("largest error: nq-stressor %.1f points, stress-ng %.1f points\n\n", err_native,
              err_ng);

  // Memory: 256 MiB asked, increase of the cgroup's usage.
  auto pod = rt.get_pod(env.ns(), "idle");
  const auto& c = pod->containers.at(0);
  auto before = stress::testing::cgroup_memory_bytes(fs, c).value();
  auto d = (*backend)->apply("bench-mem",
                             {core::FaultKind::kMemoryStress, core::MemoryStress{256 * kMi, 0}},
                             *pod, pod->containers);
  if (!d.ok()) return 1;
  const double native_mem =
      static_cast<double>(stress::testing::cgroup_memory_bytes(fs, c).value() - before) / kMi;
  (void)(*backend)->revert("bench-mem");
  std::this_thread::sleep_for(500ms);
  before = stress::testing::cgroup_memory_bytes(fs, c).value();
  auto ng = start_stress_ng(o, fs, c, {"--vm", "1", "--vm-bytes", "256M", "--vm-keep"});
  double ng_mem = 0;
  if (ng.ok()) {
    std::this_thread::sleep_for(o.settle);
    ng_mem = (static_cast<double>(stress::testing::cgroup_memory_bytes(fs, c).value()) -
              static_cast<double>(before)) /
             kMi;
    stop_stress_ng(*ng, fs, c);
  }
  std::printf(
      "memory: 256 MiB requested; cgroup usage increase: nq-stressor %.1f MiB, "
      "stress-ng --vm-keep %.1f MiB\n\n",
      native_mem, ng_mem);

  // Apply/Revert time of the backend (in-process; the agent adds its RPC and
  // the journal's fdatasync, see docs/benchmarks.md).
  std::vector<double> cpu_apply, cpu_revert, mem_apply, mem_revert;
  for (int i = 0; i < o.runs; ++i) {
    auto t0 = Steady::now();
    if (!(*backend)
             ->apply("t-cpu", {core::FaultKind::kCpuStress, core::CpuStress{50, 0}}, *pod,
                     pod->containers)
             .ok())
      return 1;
    auto t1 = Steady::now();
    (void)(*backend)->revert("t-cpu");
    auto t2 = Steady::now();
    if (!(*backend)
             ->apply("t-mem", {core::FaultKind::kMemoryStress, core::MemoryStress{64 * kMi, 0}},
                     *pod, pod->containers)
             .ok())
      return 1;
    auto t3 = Steady::now();
    (void)(*backend)->revert("t-mem");
    auto t4 = Steady::now();
    auto ms = [](auto a, auto b) {
      return std::chrono::duration<double, std::milli>(b - a).count();
    };
    cpu_apply.push_back(ms(t0, t1));
    cpu_revert.push_back(ms(t1, t2));
    mem_apply.push_back(ms(t2, t3));
    mem_revert.push_back(ms(t3, t4));
  }
  std::printf("backend time, %d runs       %9s %9s\n", o.runs, "p50 ms", "p99 ms");
  for (auto& [name, v] : std::vector<std::pair<const char*, std::vector<double>*>>{
           {"cpu_stress apply", &cpu_apply},
           {"cpu_stress revert", &cpu_revert},
           {"memory_stress 64Mi apply", &mem_apply},
           {"memory_stress revert", &mem_revert}}) {
    auto s = traffic::summarize(*v);
    std::printf("%-28s %9.2f %9.2f\n", name, s.p50, s.p99);
  }
  return 0;
}

}  // namespace
}  // namespace nq::bench

int main(int argc, char** argv) {
  nq::bench::Options o;
  CLI::App app{
      "nq-bench-stress: achieved vs requested CPU/memory stress, nq-stressor vs stress-ng"};
  int settle_ms = 3000, window_ms = 10000;
  app.add_option("--stressor", o.stressor, "nq-stressor binary")->capture_default_str();
  app.add_option("--stress-ng", o.stress_ng, "stress-ng binary")->capture_default_str();
  app.add_option("--settle-ms", settle_ms, "Wait before measuring")->capture_default_str();
  app.add_option("--window-ms", window_ms, "Measurement window")->capture_default_str();
  app.add_option("--runs", o.runs, "Apply/Revert repetitions")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.settle = std::chrono::milliseconds(settle_ms);
  o.window = std::chrono::milliseconds(window_ms);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "nq-bench-stress: needs root (sandbox pods, cgroups)\n");
    return 1;
  }
  return nq::bench::run(o);
}

#include "agent/stress/stress_backend.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "common/file.h"

namespace nq::stress {
namespace {

namespace jr = nodequake::v1::journal;
using SteadyClock = std::chrono::steady_clock;

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", v);
  return buf;
}

std::string resource_key(const std::string& id, const std::string& container) {
  return id + "/" + container + "/stressor";
}

Result<std::string> read_in(const std::filesystem::path& dir, const char* file) {
  auto text = read_file(dir / file);
  if (!text.ok()) return std::move(text).error().wrapped("read " + (dir / file).string());
  return text;
}

}  // namespace

// One stressor in one container.
struct StressBackend::Target {
  std::string container;
  std::string key;  // ResourceOwned key
  ContainerCgroups cg;
  std::optional<ControlPage> control;
  std::optional<StressorProcess> proc;
  std::string limit_text;
  bool released = false;
  std::optional<std::string> lost;      // how the stressor ended, when it did on its own
  std::optional<ContainerWatch> watch;  // the container's main process
  // cpu
  double limit_cpus = 0;
  double target_cpus = 0;
  uint32_t workers = 0;
  double duty = 0;
  std::optional<UsageSample> last;
  std::optional<double> achieved_cpus;  // last window
  // memory
  uint64_t bytes = 0;
  uint64_t baseline_usage = 0;
};

struct StressBackend::Injection {
  core::FaultKind kind = core::FaultKind::kCpuStress;
  double requested_percent = 0;  // cpu
  std::vector<std::unique_ptr<Target>> targets;
};

// ------------------------------------------------------------ cgroups

Result<ContainerCgroups> locate_cgroups(const runtime::CgroupFs& fs,
                                        const runtime::ContainerInfo& c) {
  ContainerCgroups cg;
  const auto& m = fs.mounts();
  cg.v2 = !(m.v1("cpu") && runtime::find_cgroup_path(c.cgroups, "cpu"));
  if (cg.v2) {
    NQ_ASSIGN_OR_RETURN(cg.cpu_dir, fs.dir_for(c.cgroups, ""));
    cg.cpuacct_dir = cg.memory_dir = cg.cpu_dir;
  } else {
    NQ_ASSIGN_OR_RETURN(cg.cpu_dir, fs.dir_for(c.cgroups, "cpu"));
    NQ_ASSIGN_OR_RETURN(cg.cpuacct_dir, fs.dir_for(c.cgroups, "cpuacct"));
    NQ_ASSIGN_OR_RETURN(cg.memory_dir, fs.dir_for(c.cgroups, "memory"));
  }
  if (m.pure_v2()) {
    cg.v2_dir = cg.cpu_dir;
    return cg;
  }
  // v1 or hybrid: the stressor joins every hierarchy the container is in
  // (cpu, cpuacct, memory, pids, freezer, blkio, the unified tree, ...), so a
  // freeze or a pids limit of the pod applies to it as to the workload.
  for (const auto& mount : m.mounts) {
    auto it = c.cgroups.by_hierarchy.find(mount.key);
    if (it == c.cgroups.by_hierarchy.end()) continue;
    NQ_ASSIGN_OR_RETURN(auto dir, fs.dir(mount, it->second));
    cg.join_procs.push_back(dir / "cgroup.procs");
  }
  if (cg.join_procs.empty())
    return Error::failed_precondition("container " + c.name + " is in no mounted cgroup hierarchy");
  return cg;
}

Result<CpuLimit> read_cpu_limit(const ContainerCgroups& cg) {
  if (cg.v2) {
    auto text = read_file(cg.cpu_dir / "cpu.max");
    if (!text.ok() && text.error().sys_errno() == ENOENT)
      return Error::failed_precondition("cgroup v2 cpu controller not enabled for " +
                                        cg.cpu_dir.string() + " (no cpu.max)");
    if (!text.ok()) return std::move(text).error();
    return parse_cpu_max(*text);
  }
  NQ_ASSIGN_OR_RETURN(auto quota, read_in(cg.cpu_dir, "cpu.cfs_quota_us"));
  NQ_ASSIGN_OR_RETURN(auto period, read_in(cg.cpu_dir, "cpu.cfs_period_us"));
  return parse_cfs(quota, period);
}

Result<uint64_t> read_cpu_usage_ns(const ContainerCgroups& cg) {
  if (cg.v2) {
    NQ_ASSIGN_OR_RETURN(auto text, read_in(cg.cpuacct_dir, "cpu.stat"));
    NQ_ASSIGN_OR_RETURN(uint64_t usec, parse_cpu_stat_usage_usec(text));
    return usec * 1000;
  }
  NQ_ASSIGN_OR_RETURN(auto text, read_in(cg.cpuacct_dir, "cpuacct.usage"));
  return parse_u64(text, "cpuacct.usage");
}

Result<MemoryLimit> read_memory_limit(const ContainerCgroups& cg) {
  if (cg.v2) {
    auto text = read_file(cg.memory_dir / "memory.max");
    if (!text.ok() && text.error().sys_errno() == ENOENT)
      return Error::failed_precondition("cgroup v2 memory controller not enabled for " +
                                        cg.memory_dir.string() + " (no memory.max)");
    if (!text.ok()) return std::move(text).error();
    return parse_memory_limit(*text);
  }
  NQ_ASSIGN_OR_RETURN(auto text, read_in(cg.memory_dir, "memory.limit_in_bytes"));
  return parse_memory_limit(text);
}

Result<uint64_t> read_memory_usage(const ContainerCgroups& cg) {
  const char* file = cg.v2 ? "memory.current" : "memory.usage_in_bytes";
  NQ_ASSIGN_OR_RETURN(auto text, read_in(cg.memory_dir, file));
  return parse_u64(text, file);
}

// ------------------------------------------------------------ backend

Result<std::unique_ptr<StressBackend>> StressBackend::create(runtime::CgroupFs cgroups,
                                                             core::RecordSink sink,
                                                             StressOptions options) {
  if (::access(options.stressor.c_str(), X_OK) < 0)
    return Error::from_errno(errno, "stressor binary " + options.stressor.string());
  if (options.node_cpus == 0) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    options.node_cpus = n > 0 ? static_cast<unsigned>(n) : 1;
  }
  NQ_ASSIGN_OR_RETURN(std::string boot_id, read_boot_id());
  return std::unique_ptr<StressBackend>(new StressBackend(std::move(cgroups), std::move(sink),
                                                          std::move(options), std::move(boot_id)));
}

StressBackend::StressBackend(runtime::CgroupFs cgroups, core::RecordSink sink,
                             StressOptions options, std::string boot_id)
    : cgroups_(std::move(cgroups)),
      sink_(std::move(sink)),
      options_(std::move(options)),
      boot_id_(std::move(boot_id)) {
  thread_ = std::thread([this] { loop(); });
}

StressBackend::~StressBackend() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Remaining StressorProcess destructors SIGKILL and reap.
}

std::vector<core::FaultKind> StressBackend::kinds() const {
  return {core::FaultKind::kCpuStress, core::FaultKind::kMemoryStress};
}

Status StressBackend::launch(Target& t, const std::string& id, core::FaultKind kind,
                             std::vector<std::string> args) {
  NQ_ASSIGN_OR_RETURN(auto control, ControlPage::create());
  t.control.emplace(std::move(control));
  t.control->get().duty_ppm.store(static_cast<uint32_t>(std::lround(t.duty * kDutyScale)));
  SpawnRequest req{options_.stressor, std::move(args), t.cg.join_procs, t.cg.v2_dir};
  NQ_ASSIGN_OR_RETURN(auto proc, StressorProcess::spawn(req, *t.control));
  t.proc.emplace(std::move(proc));
  // The stressor exists but waits for "go": journal it first, so a crash from
  // here on is found by the next start (and the stressor, its lifeline
  // gone, has already left by then).
  jr::Record rec;
  auto* owned = rec.mutable_resource_owned();
  owned->set_key(t.key);
  owned->set_injection_id(id);
  owned->set_kind(std::string(core::kind_name(kind)));
  owned->mutable_process()->set_pid(t.proc->pid());
  owned->mutable_process()->set_start_time(t.proc->start_time());
  owned->mutable_process()->set_boot_id(boot_id_);
  NQ_TRY(sink_(rec));
  t.released = false;
  // Near the limit the cgroup's OOM killer must pick the stressor, not the
  // workload (see docs/stress.md).
  NQ_TRY(t.proc->set_oom_score_adj(1000));
  if (kind == core::FaultKind::kMemoryStress) {
    NQ_ASSIGN_OR_RETURN(t.baseline_usage, read_memory_usage(t.cg));
  } else {
    NQ_ASSIGN_OR_RETURN(uint64_t usage, read_cpu_usage_ns(t.cg));
    t.last = UsageSample{SteadyClock::now(), usage};
  }
  return t.proc->go();
}

Status StressBackend::stop_target(Target& t) {
  if (t.released) return ok();
  if (t.proc) {
    NQ_TRY(t.proc->kill_and_reap(options_.kill_timeout));
    if (!t.lost) t.lost = "reverted";
  }
  if (t.proc) {
    jr::Record rec;
    rec.mutable_resource_released()->set_key(t.key);
    NQ_TRY(sink_(rec));
  }
  t.released = true;
  return ok();
}

Result<std::unique_ptr<StressBackend::Target>> StressBackend::start_cpu(
    const std::string& id, const core::CpuStress& spec, const runtime::ContainerInfo& c) {
  auto t = std::make_unique<Target>();
  t->container = c.name;
  t->key = resource_key(id, c.name);
  NQ_ASSIGN_OR_RETURN(t->cg, locate_cgroups(cgroups_, c));
  NQ_ASSIGN_OR_RETURN(auto watch, ContainerWatch::open(c));
  t->watch.emplace(std::move(watch));
  NQ_ASSIGN_OR_RETURN(CpuLimit limit, read_cpu_limit(t->cg));
  t->limit_cpus = limit.cpus(options_.node_cpus);
  t->limit_text = limit.quota_us
                      ? format_cpus(t->limit_cpus) + " (quota " + std::to_string(*limit.quota_us) +
                            " us per " + std::to_string(limit.period_us) + " us)"
                      : "unlimited: " + std::to_string(options_.node_cpus) + " node CPUs";
  t->workers = spec.workers ? spec.workers : default_workers(t->limit_cpus);
  t->target_cpus = spec.load / 100.0 * t->limit_cpus;
  // Open-loop first guess (an idle workload); the loop corrects it.
  t->duty = std::clamp(t->target_cpus / t->workers, 0.0, 1.0);
  if (Status st = launch(*t, id, core::FaultKind::kCpuStress, {"cpu", std::to_string(t->workers)});
      !st.ok()) {
    (void)stop_target(*t);
    return std::move(st).error();
  }
  return t;
}

Result<std::unique_ptr<StressBackend::Target>> StressBackend::start_memory(
    const std::string& id, const core::MemoryStress& spec, const runtime::ContainerInfo& c) {
  auto t = std::make_unique<Target>();
  t->container = c.name;
  t->key = resource_key(id, c.name);
  NQ_ASSIGN_OR_RETURN(t->cg, locate_cgroups(cgroups_, c));
  NQ_ASSIGN_OR_RETURN(auto watch, ContainerWatch::open(c));
  t->watch.emplace(std::move(watch));
  NQ_ASSIGN_OR_RETURN(MemoryLimit limit, read_memory_limit(t->cg));
  const char* limit_file = t->cg.v2 ? "memory.max" : "memory.limit_in_bytes";
  t->limit_text = limit ? format_bytes(*limit) + " (" + limit_file + ")"
                        : std::string("unlimited (") + limit_file + ")";
  if (spec.bytes == 0) {
    if (!limit)
      return Error::failed_precondition(
          "spec.memory_stress.percent: container " + c.name + " has no memory limit (" +
          limit_file + " is unlimited), so a percentage of it means nothing; give bytes");
    t->bytes = static_cast<uint64_t>(std::llround(spec.percent / 100.0 * *limit));
  } else {
    t->bytes = spec.bytes;
    if (limit && t->bytes > *limit)
      return Error::invalid_argument("spec.memory_stress.bytes",
                                     std::to_string(t->bytes) + " exceeds container " + c.name +
                                         "'s memory limit of " + std::to_string(*limit) +
                                         " bytes (" + format_bytes(*limit) + ")");
  }
  const long page = ::sysconf(_SC_PAGESIZE);
  if (t->bytes < static_cast<uint64_t>(page))
    return Error::invalid_argument("spec.memory_stress", "less than one page");
  Status st = launch(*t, id, core::FaultKind::kMemoryStress, {"memory", std::to_string(t->bytes)});
  // Apply returns once the memory is held, so the caller sees the pressure
  // from the response on (touching 1 GiB takes a fraction of a second).
  const auto deadline = SteadyClock::now() + options_.ready_timeout;
  while (st.ok()) {
    const auto state = static_cast<StressorState>(t->control->get().state.load());
    if (state == StressorState::kRunning) break;
    if (auto gone = t->proc->poll_exit()) {
      t->lost = *gone;
      st = Error::status(Code::kResourceExhausted,
                         "nq-stressor " + *gone + " before it held " + format_bytes(t->bytes) +
                             " in container " + c.name + " (OOM-killed at the memory limit?)");
    } else if (state == StressorState::kFailed) {
      st = Error::from_errno(t->control->get().error.load(), "nq-stressor memory");
    } else if (SteadyClock::now() > deadline) {
      st = Error::status(Code::kDeadlineExceeded,
                         "nq-stressor did not touch " + format_bytes(t->bytes) + " in time");
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (!st.ok()) {
    (void)stop_target(*t);
    return std::move(st).error();
  }
  return t;
}

Result<core::Details> StressBackend::apply(const std::string& id, const core::WorkloadFault& fault,
                                           const runtime::PodInfo& pod,
                                           const std::vector<runtime::ContainerInfo>& containers) {
  {
    std::lock_guard lock(mu_);
    if (active_.count(id)) return Error::already_exists("stress injection " + id);
  }
  if (containers.empty())
    return Error::failed_precondition("pod " + pod.key() + " has no containers");
  Injection inj;
  inj.kind = fault.kind;
  for (const auto& c : containers) {
    if (c.pid == 0) {
      for (auto& t : inj.targets) (void)stop_target(*t);
      return Error::failed_precondition("container " + c.name + " of pod " + pod.key() +
                                        " is not running");
    }
    Result<std::unique_ptr<Target>> t = Error::internal("unreachable");
    if (const auto* cpu = std::get_if<core::CpuStress>(&fault.params)) {
      inj.requested_percent = cpu->load;
      t = start_cpu(id, *cpu, c);
    } else if (const auto* mem = std::get_if<core::MemoryStress>(&fault.params)) {
      t = start_memory(id, *mem, c);
    } else {
      return Error::invalid_argument("spec", "not a stress fault");
    }
    if (!t.ok()) {
      // All or nothing: the containers started before this one are undone.
      for (auto& done : inj.targets) (void)stop_target(*done);
      return std::move(t).error().wrapped("container " + c.name);
    }
    inj.targets.push_back(std::move(*t));
  }
  core::Details d;
  const bool many = inj.targets.size() > 1;
  for (const auto& t : inj.targets) {
    const std::string p = many ? t->container + "." : "";
    d[p + "limit"] = t->limit_text;
    d[p + "stressor_pid"] = std::to_string(t->proc->pid());
    if (inj.kind == core::FaultKind::kCpuStress) {
      d[p + "workers"] = std::to_string(t->workers);
      d[p + "requested"] = percent(inj.requested_percent);
    } else {
      d[p + "requested_bytes"] = std::to_string(t->bytes);
      d[p + "requested"] = format_bytes(t->bytes);
    }
  }
  std::lock_guard lock(mu_);
  active_.emplace(id, std::move(inj));
  return d;
}

Status StressBackend::revert(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return ok();
  for (auto& t : it->second.targets) NQ_TRY(stop_target(*t));
  active_.erase(it);
  return ok();
}

core::Details StressBackend::observe(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return {};
  const Injection& inj = it->second;
  core::Details d;
  const bool many = inj.targets.size() > 1;
  for (const auto& t : inj.targets) {
    const std::string p = many ? t->container + "." : "";
    d[p + "limit"] = t->limit_text;
    d[p + "stressor"] = t->lost ? "lost: " + *t->lost : "running";
    if (inj.kind == core::FaultKind::kCpuStress) {
      d[p + "requested"] = percent(inj.requested_percent);
      d[p + "achieved"] =
          t->achieved_cpus && !t->lost ? percent(*t->achieved_cpus / t->limit_cpus * 100) : "n/a";
      d[p + "duty"] = percent(t->duty * 100);
      d[p + "workers"] = std::to_string(t->workers);
    } else {
      d[p + "requested"] = format_bytes(t->bytes);
      d[p + "requested_bytes"] = std::to_string(t->bytes);
      if (!t->lost) {
        if (auto rss = t->proc->anon_rss_bytes(); rss.ok()) {
          d[p + "achieved"] = format_bytes(*rss);
          d[p + "achieved_rss_bytes"] = std::to_string(*rss);
        }
      }
      if (auto usage = read_memory_usage(t->cg); usage.ok()) {
        d[p + "cgroup_usage_bytes"] = std::to_string(*usage);
        d[p + "cgroup_usage_increase_bytes"] =
            std::to_string(static_cast<int64_t>(*usage) - static_cast<int64_t>(t->baseline_usage));
      }
    }
  }
  return d;
}

std::vector<StressLoad> StressBackend::loads(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return {};
  const Injection& inj = it->second;
  std::vector<StressLoad> out;
  for (const auto& t : inj.targets) {
    StressLoad& load = out.emplace_back();
    load.container = t->container;
    if (inj.kind == core::FaultKind::kCpuStress) {
      load.resource = StressLoad::Resource::kCpu;
      load.requested = inj.requested_percent / 100;
      if (!t->lost && t->achieved_cpus) load.achieved = *t->achieved_cpus / t->limit_cpus;
    } else {
      load.resource = StressLoad::Resource::kMemory;
      load.requested = static_cast<double>(t->bytes);
      if (!t->lost) {
        if (auto rss = t->proc->anon_rss_bytes(); rss.ok())
          load.achieved = static_cast<double>(*rss);
      }
    }
  }
  return out;
}

Status StressBackend::reconcile(const nodequake::v1::journal::ResourceOwned& resource) {
  if (!resource.has_process())
    return Error::invalid_argument("resource " + resource.key(), "not a stressor process");
  const auto& p = resource.process();
  return kill_recorded(p.pid(), p.start_time(), p.boot_id(), boot_id_, options_.kill_timeout);
}

void StressBackend::release_all() {
  std::lock_guard lock(mu_);
  for (auto& [id, inj] : active_) {
    for (auto& t : inj.targets) {
      if (Status st = stop_target(*t); !st.ok())
        spdlog::error("stress {}: {}", t->key, st.error().message());
    }
  }
  active_.clear();
}

void StressBackend::end_with_container(const std::string& id, Target& t) {
  // A restarted container is a new container with a new cgroup; the
  // stressor stays in the old one, which only it keeps alive now (the
  // runtime's rmdir fails while it is there). Stressing the new container
  // instead would act on a target nobody asked for -- often the restart is
  // the experiment's outcome (OOM kill, failed liveness probe) -- so the
  // stress ends here and says so; a new Apply stresses the new container.
  t.lost = "container restarted or stopped (its process " + std::to_string(t.watch->pid()) +
           " exited); the stressor was stopped and a new container is not stressed";
  spdlog::warn("stress {}: container {}: {}", id, t.container, *t.lost);
  if (Status st = stop_target(t); !st.ok())
    spdlog::error("stress {}: stopping nq-stressor {}: {}", id, t.proc->pid(),
                  st.error().message());
}

// ------------------------------------------------------------ the loop

void StressBackend::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.interval, [this] { return stopping_; });
    if (stopping_) break;
    tick();
  }
}

void StressBackend::tick() {
  for (auto& [id, inj] : active_) {
    for (auto& t : inj.targets) {
      if (t->lost || !t->proc) continue;
      // Before the stressor's own exit: where the pod shares one pid
      // namespace, the runtime kills the stressor with the container, and
      // "killed by signal 9" would hide why.
      if (t->watch && t->watch->exited()) {
        end_with_container(id, *t);
        continue;
      }
      if (auto gone = t->proc->poll_exit()) {
        t->lost = *gone;
        spdlog::warn("stress {}: nq-stressor {} {}", id, t->proc->pid(), *gone);
        continue;
      }
      if (inj.kind != core::FaultKind::kCpuStress) continue;
      auto usage = read_cpu_usage_ns(t->cg);
      if (!usage.ok()) {
        spdlog::warn("stress {}: {}", id, usage.error().message());
        continue;
      }
      const UsageSample now{SteadyClock::now(), *usage};
      if (t->last) {
        if (auto rate = usage_rate(*t->last, now)) {
          t->achieved_cpus = *rate;
          t->duty = next_duty(t->duty, t->target_cpus, *rate, t->workers, options_.gain);
          t->control->get().duty_ppm.store(
              static_cast<uint32_t>(std::lround(t->duty * kDutyScale)));
        }
      }
      t->last = now;
    }
  }
}

}  // namespace nq::stress

#include "agent/io/io_errno_faults.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>

#include "agent/io/io_plan.h"
#include "agent/io/ioerrno_bpf.h"

namespace nq::io {
namespace {

namespace jr = nodequake::v1::journal;

constexpr const char* kKind = "io_errno";
constexpr const char* kProgram = "ioerrno";

class BpfKernel : public IoErrnoKernel {
 public:
  Status attach() override {
    if (!program_) {
      NQ_ASSIGN_OR_RETURN(IoErrnoProgram p, IoErrnoProgram::load());
      program_.emplace(std::move(p));
    }
    return program_->attach();
  }
  void detach() override {
    if (program_) program_->detach();
  }
  void release() override { program_.reset(); }
  Status put(uint64_t cgroup_id, const nq_io_config& config) override {
    if (!program_) return Error::failed_precondition("ioerrno program is not loaded");
    return program_->put(cgroup_id, config);
  }
  Status erase(uint64_t cgroup_id) override {
    if (!program_) return ok();  // never loaded: nothing to erase
    return program_->erase(cgroup_id);
  }
  Result<std::optional<nq_io_config>> get(uint64_t cgroup_id) const override {
    if (!program_) return std::optional<nq_io_config>();
    return program_->get(cgroup_id);
  }

 private:
  std::optional<IoErrnoProgram> program_;
};

std::string percent_string(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

}  // namespace

std::unique_ptr<IoErrnoKernel> make_bpf_kernel() {
  return std::make_unique<BpfKernel>();
}

Result<uint64_t> cgroup_id_of(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Error::from_errno(errno, "stat " + dir.string());
  if (!S_ISDIR(st.st_mode))
    return Error::invalid_argument("cgroup", dir.string() + " is not a directory");
  return static_cast<uint64_t>(st.st_ino);
}

Result<std::vector<IoTarget>> plan_targets(const runtime::PodInfo& pod,
                                           const std::vector<runtime::ContainerInfo>& containers,
                                           const runtime::CgroupFs& cgroups,
                                           const std::string& agent_v2_path) {
  if (containers.empty())
    return Error::failed_precondition("pod " + pod.key() + " has no container to fault");
  std::vector<IoTarget> out;
  for (const auto& c : containers) {
    const std::string who = "container " + c.name + " of pod " + pod.key();
    if (c.pid == 0) return Error::failed_precondition(who + " is not running");
    const std::string* v2 = runtime::find_cgroup_path(c.cgroups, "");
    // The program scopes by bpf_get_current_cgroup_id(), the task's cgroup
    // in the v2 hierarchy; a container known only by v1 cgroups cannot be
    // told apart from its neighbours that way.
    if (v2 == nullptr || cgroups.mounts().unified() == nullptr)
      return Error::failed_precondition(
          "io_errno needs cgroup v2: " + who +
          " is in no cgroup v2 (unified) group, and the BPF LSM program tells containers "
          "apart by their cgroup v2 id");
    if (*v2 == "/" || *v2 == agent_v2_path)
      return Error::failed_precondition(
          "io_errno needs cgroup v2 group of the container's own: " + who + " is in " + *v2 +
          ", which it shares with the node or the agent");
    NQ_ASSIGN_OR_RETURN(auto dir, cgroups.dir_for(c.cgroups, ""));
    out.push_back({c.name, std::move(dir)});
  }
  return out;
}

IoErrnoOptions IoErrnoOptions::discover(const std::filesystem::path& host_root) {
  IoErrnoOptions out;
  if (auto fs = runtime::CgroupFs::discover(host_root); fs.ok()) {
    out.cgroups = std::move(*fs);
  } else {
    out.cgroups_problem = fs.error().message();
  }
  if (auto self = runtime::read_proc_cgroup(::getpid()); self.ok()) {
    if (const std::string* v2 = runtime::find_cgroup_path(*self, "")) out.agent_v2_path = *v2;
  }
  return out;
}

IoErrnoFaults::IoErrnoFaults(core::RecordSink sink, IoErrnoOptions options,
                             std::unique_ptr<IoErrnoKernel> kernel)
    : sink_(std::move(sink)), options_(std::move(options)), kernel_(std::move(kernel)) {}

IoErrnoFaults::~IoErrnoFaults() {
  // Links close with the object; the manager reverted every injection first
  // (or the process is going away, which detaches them too).
  kernel_->release();
}

std::vector<core::FaultKind> IoErrnoFaults::kinds() const {
  return {core::FaultKind::kIoErrno};
}

std::string IoErrnoFaults::resource_key(const std::string& id, const std::string& container) {
  return std::string(kKind) + "/" + id + "/" + container;
}

Result<core::Details> IoErrnoFaults::apply(const std::string& id, const core::WorkloadFault& fault,
                                           const runtime::PodInfo& pod,
                                           const std::vector<runtime::ContainerInfo>& containers) {
  const auto* spec = std::get_if<core::IoErrno>(&fault.params);
  if (fault.kind != core::FaultKind::kIoErrno || spec == nullptr)
    return Error::invalid_argument("spec", "not an io_errno fault");
  if (!options_.cgroups)
    return Error::failed_precondition(
        "io_errno needs cgroup v2, and no cgroup hierarchy was found: " + options_.cgroups_problem);
  NQ_ASSIGN_OR_RETURN(auto targets,
                      plan_targets(pod, containers, *options_.cgroups, options_.agent_v2_path));

  std::lock_guard lock(mu_);
  if (active_.count(id) != 0)
    return Error::already_exists("io_errno injection " + id + " is already applied");
  NQ_ASSIGN_OR_RETURN(nq_io_config config, build_config(*spec, next_generation_));
  std::vector<Entry> entries;
  for (const auto& t : targets) {
    NQ_ASSIGN_OR_RETURN(uint64_t cgid, cgroup_id_of(t.cgroup_dir));
    if (auto it = owner_.find(cgid); it != owner_.end())
      return Error::failed_precondition("container " + t.container + " of pod " + pod.key() +
                                        " already has io_errno injection " + it->second +
                                        "; one per container (revert it first)");
    for (const auto& e : entries) {
      if (e.cgroup_id == cgid)
        return Error::invalid_argument("target.containers", "containers " + e.container + " and " +
                                                                t.container + " share a cgroup");
    }
    entries.push_back({resource_key(id, t.container), t.container, cgid});
  }
  ++next_generation_;

  // Loaded and attached before any config exists: a load failure (no BPF
  // LSM, verifier) leaves nothing behind but the still-empty program.
  if (Status st = kernel_->attach(); !st.ok()) {
    if (owner_.empty()) kernel_->detach();
    return std::move(st).error();
  }
  std::vector<Entry> done;
  for (const auto& e : entries) {
    jr::Record rec;
    auto* owned = rec.mutable_resource_owned();
    owned->set_key(e.key);
    owned->set_injection_id(id);
    owned->set_kind(kKind);
    owned->mutable_bpf()->set_program(kProgram);
    owned->mutable_bpf()->set_pin_path("");
    owned->mutable_bpf()->set_cgroup_id(e.cgroup_id);
    Status st = sink_(rec);
    if (st.ok()) st = kernel_->put(e.cgroup_id, config);
    if (!st.ok()) {
      // The journaled-but-unset entry is released too: erase() of an absent
      // config counts as done.
      done.push_back(e);
      if (Status undo = undo_locked(done); !undo.ok())
        spdlog::warn("io_errno {}: rollback: {}", id, undo.error().message());
      if (owner_.empty()) kernel_->detach();
      return std::move(st).error().wrapped("container " + e.container);
    }
    done.push_back(e);
  }
  for (const auto& e : entries) owner_[e.cgroup_id] = id;
  active_[id] = entries;

  core::Details d;
  d["program"] = kProgram;
  d["attach"] = "BPF LSM links held by the agent (detached if it dies)";
  d["error"] = spec->error_name;
  d["operations"] = ops_names(config.ops);
  d["path"] = config.prefix_len == 0 ? "/" : std::string(config.prefix, config.prefix_len);
  d["percent"] = percent_string(spec->percent);
  std::string ids;
  for (const auto& e : entries) ids += (ids.empty() ? "" : ",") + std::to_string(e.cgroup_id);
  d["cgroup_ids"] = ids;
  spdlog::info("io_errno {}: {} on {} of {} under {} ({}%), cgroups {}", id, spec->error_name,
               d["operations"], pod.key(), d["path"], d["percent"], ids);
  return d;
}

Status IoErrnoFaults::undo_locked(const std::vector<Entry>& entries) {
  std::optional<Error> first;
  for (const auto& e : entries) {
    Status st = kernel_->erase(e.cgroup_id);
    if (st.ok()) {
      jr::Record rec;
      rec.mutable_resource_released()->set_key(e.key);
      st = sink_(rec);
    }
    if (!st.ok() && !first) first = std::move(st).error();
  }
  if (first) return std::move(*first);
  return ok();
}

Status IoErrnoFaults::revert(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return ok();
  NQ_TRY(undo_locked(it->second));
  for (const auto& e : it->second) owner_.erase(e.cgroup_id);
  active_.erase(it);
  // No injection left: the hooks go, so the node pays nothing for them.
  if (owner_.empty()) kernel_->detach();
  return ok();
}

core::Details IoErrnoFaults::observe(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = active_.find(id);
  if (it == active_.end()) return {};
  uint64_t matched = 0, failed = 0;
  for (const auto& e : it->second) {
    auto cfg = kernel_->get(e.cgroup_id);
    if (!cfg.ok() || !cfg->has_value()) continue;
    matched += (*cfg)->matched;
    failed += (*cfg)->failed;
  }
  core::Details d;
  d["calls_matched"] = std::to_string(matched);
  d["calls_failed"] = std::to_string(failed);
  if (matched > 0)
    d["failed_percent"] = percent_string(100.0 * static_cast<double>(failed) / matched);
  return d;
}

Status IoErrnoFaults::reconcile(const nodequake::v1::journal::ResourceOwned& resource) {
  if (resource.resource_case() != jr::ResourceOwned::kBpf)
    return Error::invalid_argument(
        "resource", "io_errno resource " + resource.key() + " is not a BPF attachment");
  // Never pinned (pin_path ""), so the links and maps were the dead agent's
  // alone and the kernel dropped them with its last fd.
  if (!resource.bpf().pin_path().empty())
    return Error::failed_precondition("io_errno resource " + resource.key() + " names pin " +
                                      resource.bpf().pin_path() +
                                      ", which this agent never creates; remove it by hand");
  spdlog::info("io_errno {}: program {} on cgroup {} ended with the earlier agent",
               resource.injection_id(), resource.bpf().program(), resource.bpf().cgroup_id());
  return ok();
}

void IoErrnoFaults::release_all() {
  std::lock_guard lock(mu_);
  for (const auto& [id, entries] : active_) {
    if (Status st = undo_locked(entries); !st.ok())
      spdlog::warn("io_errno {}: release: {}", id, st.error().message());
  }
  active_.clear();
  owner_.clear();
  kernel_->release();
}

}  // namespace nq::io

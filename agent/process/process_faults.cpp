#include "agent/process/process_faults.h"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace nq::process {

namespace jr = nodequake::v1::journal;
using core::FaultKind;

ProcessFaults::ProcessFaults(core::RecordSink sink, runtime::CgroupFs cgroups,
                             ProcessFaultsOptions options)
    : sink_(std::move(sink)), cgroups_(std::move(cgroups)), options_(options) {}

std::vector<FaultKind> ProcessFaults::kinds() const {
  return {FaultKind::kContainerKill, FaultKind::kPodKill, FaultKind::kPodFailure};
}

Status ProcessFaults::journal_frozen(const std::string& key, const std::string& id, FaultKind kind,
                                     const FreezerCgroup& cg) {
  jr::Record rec;
  jr::ResourceOwned* owned = rec.mutable_resource_owned();
  owned->set_key(key);
  owned->set_injection_id(id);
  owned->set_kind(std::string(core::kind_name(kind)));
  owned->mutable_frozen()->set_path(cg.dir.string());
  owned->mutable_frozen()->set_version(std::string(version_name(cg.version)));
  return sink_(rec);
}

Status ProcessFaults::journal_released(const std::string& key) {
  jr::Record rec;
  rec.mutable_resource_released()->set_key(key);
  return sink_(rec);
}

Result<core::Details> ProcessFaults::apply(const std::string& id, const core::WorkloadFault& fault,
                                           const runtime::PodInfo& pod,
                                           const std::vector<runtime::ContainerInfo>& containers) {
  switch (fault.kind) {
    case FaultKind::kContainerKill:
      return kill(id, fault.kind, containers);
    case FaultKind::kPodKill:
      // Every container of the pod, whatever the request named.
      return kill(id, fault.kind, pod.containers);
    case FaultKind::kPodFailure:
      return freeze_pod(id, containers);
    default:
      return Error::invalid_argument(
          "spec", "kind " + std::string(core::kind_name(fault.kind)) + " is not a process fault");
  }
}

Result<size_t> ProcessFaults::kill_container(const std::string& id, FaultKind kind,
                                             const runtime::ContainerInfo& c, std::string& method) {
  NQ_ASSIGN_OR_RETURN(FreezerCgroup cg, freezer_cgroup(cgroups_, c));
  if (cg.version == CgroupVersion::kV2 && std::filesystem::exists(cg.dir / "cgroup.kill")) {
    method = "cgroup.kill";
    NQ_ASSIGN_OR_RETURN(std::vector<pid_t> pids, kill_all(cg));
    NQ_TRY(wait_gone(cg, pids, options_.kill_timeout));
    return pids.size();
  }
  method = "freeze+kill";
  // Already frozen (a pod_failure on it): the processes die when it thaws, and
  // the thaw is not ours to do.
  NQ_ASSIGN_OR_RETURN(bool was_frozen, is_frozen(cg));
  const std::string key = std::string(core::kind_name(kind)) + "/" + id + "/" + c.name;
  if (!was_frozen) {
    NQ_TRY(journal_frozen(key, id, kind, cg));
    if (Status st = freeze(cg, options_.freeze_timeout); !st.ok()) {
      (void)thaw_all({{key, c.name, cg}});
      return std::move(st).error();
    }
  }
  auto pids = kill_all(cg);
  if (!was_frozen) NQ_TRY(thaw_all({{key, c.name, cg}}));
  if (!pids.ok()) return std::move(pids).error();
  if (!was_frozen) NQ_TRY(wait_gone(cg, *pids, options_.kill_timeout));
  return pids->size();
}

Result<core::Details> ProcessFaults::kill(const std::string& id, FaultKind kind,
                                          const std::vector<runtime::ContainerInfo>& containers) {
  size_t killed = 0;
  std::string names, method, skipped;
  for (const runtime::ContainerInfo& c : containers) {
    if (c.pid == 0) {  // not running (being restarted): nothing to kill
      skipped += (skipped.empty() ? "" : ",") + c.name;
      continue;
    }
    auto n = kill_container(id, kind, c, method);
    if (!n.ok()) return std::move(n).error().wrapped("container " + c.name);
    killed += *n;
    names += (names.empty() ? "" : ",") + c.name;
  }
  if (names.empty())
    return Error::failed_precondition("no target container is running" +
                                      (skipped.empty() ? "" : " (" + skipped + ")"));
  core::Details d{{"killed_processes", std::to_string(killed)},
                  {"containers", names},
                  {"signal", "SIGKILL"},
                  {"method", method}};
  if (!skipped.empty()) d["not_running"] = skipped;
  return d;
}

Result<core::Details> ProcessFaults::freeze_pod(
    const std::string& id, const std::vector<runtime::ContainerInfo>& containers) {
  {
    std::lock_guard lock(mu_);
    if (frozen_.count(id)) return Error::already_exists("injection " + id + " is already applied");
  }
  std::vector<Frozen> done;
  const auto rollback = [&](Error e) -> Error {
    if (Status st = thaw_all(done); !st.ok())
      spdlog::error("pod_failure {}: rollback: {}", id, st.error().message());
    return e;
  };
  std::string names;
  for (const runtime::ContainerInfo& c : containers) {
    auto cg = freezer_cgroup(cgroups_, c);
    if (!cg.ok()) return rollback(std::move(cg).error());
    auto frozen = is_frozen(*cg);
    if (!frozen.ok()) return rollback(std::move(frozen).error());
    // Someone else's freeze (or another pod_failure): thawing it on our revert
    // would undo theirs, so refuse rather than share it.
    if (*frozen)
      return rollback(Error::failed_precondition("cgroup of container " + c.name + " (" +
                                                 cg->dir.string() + ") is already frozen"));
    Frozen f{"pod_failure/" + id + "/" + c.name, c.name, *cg};
    if (Status st = journal_frozen(f.key, id, FaultKind::kPodFailure, f.cgroup); !st.ok())
      return rollback(std::move(st).error());
    done.push_back(f);
    if (Status st = freeze(f.cgroup, options_.freeze_timeout); !st.ok())
      return rollback(std::move(st).error().wrapped("container " + c.name));
    names += (names.empty() ? "" : ",") + c.name;
  }
  core::Details d{{"frozen_containers", names},
                  {"cgroup_version",
                   done.empty() ? "" : std::string(version_name(done.front().cgroup.version))}};
  std::lock_guard lock(mu_);
  frozen_[id] = std::move(done);
  return d;
}

Status ProcessFaults::thaw_all(const std::vector<Frozen>& frozen) {
  Status first;
  for (const Frozen& f : frozen) {
    Status st = thaw(f.cgroup);
    if (st.ok()) st = journal_released(f.key);
    if (!st.ok() && first.ok()) first = std::move(st).error().wrapped("thaw " + f.container);
  }
  return first;
}

Status ProcessFaults::revert(const std::string& id) {
  std::vector<Frozen> frozen;
  {
    std::lock_guard lock(mu_);
    auto it = frozen_.find(id);
    if (it == frozen_.end()) return ok();  // a kill: one-shot, nothing to undo
    frozen = it->second;
  }
  NQ_TRY(thaw_all(frozen));
  std::lock_guard lock(mu_);
  frozen_.erase(id);
  return ok();
}

core::Details ProcessFaults::observe(const std::string& id) const {
  std::vector<Frozen> frozen;
  {
    std::lock_guard lock(mu_);
    auto it = frozen_.find(id);
    if (it == frozen_.end()) return {};
    frozen = it->second;
  }
  size_t n = 0;
  for (const Frozen& f : frozen) {
    auto st = is_frozen(f.cgroup);
    if (st.ok() && *st) ++n;
  }
  return {{"frozen_now", std::to_string(n) + "/" + std::to_string(frozen.size())}};
}

Status ProcessFaults::reconcile(const jr::ResourceOwned& resource) {
  if (!resource.has_frozen())
    return Error::invalid_argument(
        "resource", "process fault resource " + resource.key() + " is not a frozen cgroup");
  NQ_ASSIGN_OR_RETURN(CgroupVersion v, parse_version(resource.frozen().version()));
  return thaw({resource.frozen().path(), v});
}

void ProcessFaults::release_all() {
  std::map<std::string, std::vector<Frozen>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(frozen_);
  }
  for (const auto& [id, frozen] : all) {
    if (Status st = thaw_all(frozen); !st.ok())
      spdlog::error("pod_failure {}: thaw at shutdown: {}", id, st.error().message());
  }
}

}  // namespace nq::process

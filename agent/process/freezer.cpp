#include "agent/process/freezer.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "common/file.h"

namespace nq::process {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPoll{10};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

}  // namespace

std::string_view version_name(CgroupVersion v) {
  return v == CgroupVersion::kV2 ? "v2" : "v1";
}

Result<CgroupVersion> parse_version(std::string_view name) {
  if (name == "v1") return CgroupVersion::kV1;
  if (name == "v2") return CgroupVersion::kV2;
  return Error::invalid_argument("version", "\"" + std::string(name) + "\" is not v1 or v2");
}

Result<FreezerCgroup> freezer_cgroup(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c) {
  // On a hybrid host the unified tree exists but carries no freezer we could
  // rely on for the container (its processes sit in the root there), so v1
  // wins whenever the v1 freezer is mounted.
  if (fs.mounts().v1("freezer") != nullptr) {
    auto dir = fs.dir_for(c.cgroups, "freezer");
    if (dir.ok()) return FreezerCgroup{std::move(*dir), CgroupVersion::kV1};
  }
  if (fs.mounts().pure_v2() || fs.mounts().v1("freezer") == nullptr) {
    auto dir = fs.dir_for(c.cgroups, "");
    if (dir.ok()) return FreezerCgroup{std::move(*dir), CgroupVersion::kV2};
  }
  return Error::not_found("container " + c.name + " has no freezer cgroup (v1 freezer or v2)");
}

Result<FreezerState> parse_freezer_state(std::string_view text) {
  const std::string_view s = trim(text);
  if (s == "THAWED") return FreezerState::kThawed;
  if (s == "FREEZING") return FreezerState::kFreezing;
  if (s == "FROZEN") return FreezerState::kFrozen;
  return Error::invalid_argument("freezer.state", "unexpected value \"" + std::string(s) + "\"");
}

Result<bool> parse_events_frozen(std::string_view text) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.rfind("frozen ", 0) == 0) {
      const std::string_view v = trim(line.substr(7));
      if (v == "1") return true;
      if (v == "0") return false;
      return Error::invalid_argument("cgroup.events",
                                     "unexpected frozen value \"" + std::string(v) + "\"");
    }
  }
  return Error::invalid_argument("cgroup.events", "has no \"frozen\" line (kernel before 5.2?)");
}

Result<bool> is_frozen(const FreezerCgroup& cg) {
  if (cg.version == CgroupVersion::kV2) {
    NQ_ASSIGN_OR_RETURN(std::string text, read_file(cg.dir / "cgroup.events"));
    return parse_events_frozen(text);
  }
  NQ_ASSIGN_OR_RETURN(std::string text, read_file(cg.dir / "freezer.state"));
  NQ_ASSIGN_OR_RETURN(FreezerState st, parse_freezer_state(text));
  return st == FreezerState::kFrozen;
}

Status freeze(const FreezerCgroup& cg, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const bool v2 = cg.version == CgroupVersion::kV2;
  const auto knob = cg.dir / (v2 ? "cgroup.freeze" : "freezer.state");
  NQ_TRY(write_knob(knob, v2 ? "1" : "FROZEN"));
  for (;;) {
    NQ_ASSIGN_OR_RETURN(bool frozen, is_frozen(cg));
    if (frozen) return ok();
    if (Clock::now() >= deadline)
      return Error::status(Code::kDeadlineExceeded, "cgroup " + cg.dir.string() +
                                                        " not frozen after " +
                                                        std::to_string(timeout.count()) + " ms");
    std::this_thread::sleep_for(kPoll);
    // v1 retries the freeze on each write of FROZEN; a task that was in an
    // uninterruptible sleep at the first write is caught by a later one.
    if (!v2) NQ_TRY(write_knob(knob, "FROZEN"));
  }
}

Status thaw(const FreezerCgroup& cg) {
  const bool v2 = cg.version == CgroupVersion::kV2;
  Status st = write_knob(cg.dir / (v2 ? "cgroup.freeze" : "freezer.state"), v2 ? "0" : "THAWED");
  if (!st.ok() && st.error().sys_errno() == ENOENT) return ok();  // the cgroup is gone
  return st;
}

Result<std::vector<pid_t>> kill_all(const FreezerCgroup& cg) {
  NQ_ASSIGN_OR_RETURN(std::vector<pid_t> pids, runtime::read_cgroup_procs(cg.dir));
  if (cg.version == CgroupVersion::kV2) {
    // cgroup.kill (5.14+) kills the whole subtree atomically, forks included.
    if (Status st = write_knob(cg.dir / "cgroup.kill", "1"); !st.ok()) {
      if (st.error().sys_errno() != ENOENT) return std::move(st).error();
      // No cgroup.kill (older kernel): the caller froze the cgroup, signal each.
    } else {
      return pids;
    }
  }
  std::vector<pid_t> killed;
  for (pid_t p : pids) {
    // The pid was listed in the (frozen) cgroup a moment ago and a frozen task
    // cannot exit and be reaped, so the pid cannot have been reused. ESRCH:
    // it was already exiting.
    if (::kill(p, SIGKILL) < 0) {
      if (errno == ESRCH) continue;
      return Error::from_errno(errno, "kill " + std::to_string(p) + " in " + cg.dir.string());
    }
    killed.push_back(p);
  }
  return killed;
}

Status wait_gone(const FreezerCgroup& cg, const std::vector<pid_t>& pids,
                 std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto now_in = runtime::read_cgroup_procs(cg.dir);
    if (!now_in.ok()) {
      if (now_in.error().sys_errno() == ENOENT) return ok();
      return std::move(now_in).error();
    }
    const bool any = std::any_of(pids.begin(), pids.end(), [&](pid_t p) {
      return std::find(now_in->begin(), now_in->end(), p) != now_in->end();
    });
    if (!any) return ok();
    if (Clock::now() >= deadline)
      return Error::status(Code::kDeadlineExceeded, "killed processes still in " + cg.dir.string() +
                                                        " after " +
                                                        std::to_string(timeout.count()) + " ms");
    std::this_thread::sleep_for(kPoll);
  }
}

}  // namespace nq::process

#include "agent/disk/disk_faults.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "agent/disk/container_fs.h"
#include "agent/disk/fill.h"
#include "agent/runtime/local/process.h"

namespace nq::disk {

namespace jr = nodequake::v1::journal;
using core::FaultKind;

std::string resource_key(std::string_view kind, const runtime::PodInfo& pod,
                         std::string_view container, std::string_view id) {
  return std::string(kind) + "/" + pod.namespace_name + "/" + pod.name + "/" +
         std::string(container) + "/" + std::string(id);
}

Result<KeyParts> parse_resource_key(std::string_view key) {
  KeyParts k;
  std::string* parts[] = {&k.kind, &k.namespace_name, &k.pod, &k.container};
  std::string_view rest = key;
  for (std::string* p : parts) {
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0)
      return Error::invalid_argument(
          "key", "\"" + std::string(key) + "\" is not kind/namespace/pod/container/id");
    *p = std::string(rest.substr(0, slash));
    rest.remove_prefix(slash + 1);
  }
  if (rest.empty()) return Error::invalid_argument("key", "\"" + std::string(key) + "\" has no id");
  k.id = std::string(rest);  // ids may contain '/'
  return k;
}

DiskFaults::DiskFaults(core::RecordSink sink, runtime::CgroupFs cgroups, runtime::Runtime* runtime)
    : sink_(std::move(sink)), cgroups_(std::move(cgroups)), runtime_(runtime) {}

std::vector<FaultKind> DiskFaults::kinds() const {
  return {FaultKind::kIoThrottle, FaultKind::kDiskFill};
}

Status DiskFaults::released(const std::string& key) {
  jr::Record rec;
  rec.mutable_resource_released()->set_key(key);
  return sink_(rec);
}

Result<core::Details> DiskFaults::apply(const std::string& id, const core::WorkloadFault& fault,
                                        const runtime::PodInfo& pod,
                                        const std::vector<runtime::ContainerInfo>& containers) {
  {
    std::lock_guard lock(mu_);
    if (active_.count(id)) return Error::already_exists("injection " + id + " is already applied");
  }
  if (fault.kind == FaultKind::kIoThrottle)
    return throttle(id, std::get<core::IoThrottle>(fault.params), pod, containers);
  if (fault.kind == FaultKind::kDiskFill)
    return fill(id, std::get<core::DiskFill>(fault.params), pod, containers);
  return Error::invalid_argument(
      "spec", "kind " + std::string(core::kind_name(fault.kind)) + " is not a disk fault");
}

// ------------------------------------------------------------ io_throttle

Result<std::pair<std::filesystem::path, CgroupVersion>> DiskFaults::io_cgroup(
    const runtime::ContainerInfo& c) const {
  // On a hybrid host the unified tree has no io controller for the container;
  // blkio (v1) is where its I/O is accounted.
  if (cgroups_.mounts().v1("blkio") != nullptr) {
    NQ_ASSIGN_OR_RETURN(auto dir, cgroups_.dir_for(c.cgroups, "blkio"));
    return std::pair{dir, CgroupVersion::kV1};
  }
  NQ_ASSIGN_OR_RETURN(auto dir, cgroups_.dir_for(c.cgroups, ""));
  std::error_code ec;
  if (!std::filesystem::exists(dir / "io.max", ec))
    return Error::failed_precondition("cgroup v2 io controller is not enabled for container " +
                                      c.name + " (" + dir.string() + " has no io.max)");
  return std::pair{dir, CgroupVersion::kV2};
}

Result<core::Details> DiskFaults::throttle(const std::string& id, const core::IoThrottle& spec,
                                           const runtime::PodInfo& pod,
                                           const std::vector<runtime::ContainerInfo>& containers) {
  const ThrottleLimits limits{spec.read_bps, spec.write_bps, spec.read_iops, spec.write_iops};
  Injection inj;
  const auto rollback = [&](Error e) -> Error {
    if (Status st = undo(inj); !st.ok())
      spdlog::error("io_throttle {}: rollback: {}", id, st.error().message());
    return e;
  };
  std::string names, device;
  for (const runtime::ContainerInfo& c : containers) {
    if (c.pid == 0) continue;
    // The device behind the path as the container sees it: a block device
    // node names itself (st_rdev), anything else its filesystem's (st_dev).
    auto root = open_root(c.pid);
    if (!root.ok()) return rollback(std::move(root).error());
    auto fd = open_in_root(root->get(), spec.path, O_PATH, "spec.io_throttle.path");
    if (!fd.ok()) return rollback(std::move(fd).error());
    struct stat st {};
    if (::fstat(fd->get(), &st) < 0)
      return rollback(Error::from_errno(errno, "fstat " + spec.path));
    const DevNum dev = from_dev_t(S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev);
    if (dev.major == 0)
      return rollback(Error::failed_precondition(
          "spec.io_throttle.path: " + spec.path + " is on a filesystem without a block device (" +
          dev.str() + ": overlay, tmpfs, ...); name a path on a disk-backed volume"));
    auto disk = whole_disk(dev);
    if (!disk.ok()) return rollback(std::move(disk).error());
    auto cg = io_cgroup(c);
    if (!cg.ok()) return rollback(std::move(cg).error());
    {
      std::lock_guard lock(mu_);
      for (const auto& [other, a] : active_)
        for (const Throttle& t : a.throttles)
          if (t.cgroup_dir == cg->first && t.dev == *disk)
            return rollback(
                Error::failed_precondition("device " + disk->str() + " of container " + c.name +
                                           " is already throttled by injection " + other));
    }
    auto prev = read_snapshot(cg->first, cg->second, *disk, limits);
    if (!prev.ok()) return rollback(std::move(prev).error());
    Throttle t{resource_key("io_throttle", pod, c.name, id), cg->first, cg->second, *disk, *prev};

    jr::Record rec;
    jr::ResourceOwned* owned = rec.mutable_resource_owned();
    owned->set_key(t.key);
    owned->set_injection_id(id);
    owned->set_kind("io_throttle");
    jr::IoThrottleSet* set = owned->mutable_throttle();
    set->set_cgroup_path(t.cgroup_dir.string());
    set->set_version(std::string(process::version_name(t.version)));
    set->set_major(t.dev.major);
    set->set_minor(t.dev.minor);
    set->mutable_previous()->insert(t.previous.begin(), t.previous.end());
    if (Status s = sink_(rec); !s.ok()) return rollback(std::move(s).error());
    inj.throttles.push_back(t);
    if (Status s = apply_writes(t.cgroup_dir, plan_throttle(t.version, t.dev, limits)); !s.ok())
      return rollback(std::move(s).error().wrapped("container " + c.name));
    names += (names.empty() ? "" : ",") + c.name;
    device = disk->str() + (disk->minor != dev.minor || disk->major != dev.major
                                ? " (whole disk of partition " + dev.str() + ")"
                                : "");
  }
  if (inj.throttles.empty()) return Error::failed_precondition("no target container is running");
  core::Details d{{"device", device},
                  {"containers", names},
                  {"cgroup_version", std::string(process::version_name(inj.throttles[0].version))}};
  for (const KnobWrite& w : plan_throttle(inj.throttles[0].version, inj.throttles[0].dev, limits))
    d[w.knob] = w.value;
  if (inj.throttles[0].version == CgroupVersion::kV1 && (spec.write_bps || spec.write_iops))
    d["note"] = "cgroup v1 throttles direct and synchronous I/O only; buffered writeback escapes";
  std::lock_guard lock(mu_);
  active_[id] = std::move(inj);
  return d;
}

Status DiskFaults::undo_throttle(const Throttle& t) {
  std::error_code ec;
  if (std::filesystem::exists(t.cgroup_dir, ec)) {
    NQ_TRY(apply_writes(t.cgroup_dir, plan_restore(t.version, t.dev, t.previous)));
  }  // a vanished cgroup took its limits with it
  return released(t.key);
}

// ------------------------------------------------------------ disk_fill

Result<core::Details> DiskFaults::fill(const std::string& id, const core::DiskFill& spec,
                                       const runtime::PodInfo& pod,
                                       const std::vector<runtime::ContainerInfo>& containers) {
  // The filesystem is filled once, through the first running target
  // container: containers sharing a volume would otherwise fill it twice.
  const runtime::ContainerInfo* c = nullptr;
  for (const auto& ci : containers)
    if (ci.pid != 0) {
      c = &ci;
      break;
    }
  if (c == nullptr) return Error::failed_precondition("no target container is running");

  NQ_ASSIGN_OR_RETURN(sandbox::ProcStat before, sandbox::read_proc_stat(c->pid));
  NQ_ASSIGN_OR_RETURN(UniqueFd root, open_root(c->pid));
  // The root must be the container's: had the pid been reused between the
  // runtime's answer and our open, the start time would differ.
  NQ_ASSIGN_OR_RETURN(sandbox::ProcStat after, sandbox::read_proc_stat(c->pid));
  if (before.start_time != after.start_time)
    return Error::unavailable("container " + c->name + " restarted while being resolved");
  NQ_ASSIGN_OR_RETURN(std::string boot_id, read_boot_id());

  auto dir = open_in_root(root.get(), spec.path, O_PATH | O_DIRECTORY, "spec.disk_fill.path");
  if (!dir.ok()) {
    if (dir.error().sys_errno() == ENOTDIR)
      return Error::invalid_argument("spec.disk_fill.path", spec.path + " is not a directory");
    return std::move(dir).error();
  }
  NQ_ASSIGN_OR_RETURN(FsSpace space, fs_space(dir->get()));
  NQ_ASSIGN_OR_RETURN(uint64_t size, fill_size(spec.bytes, spec.percent, space));

  Fill f;
  f.key = resource_key("disk_fill", pod, c->name, id);
  f.dir = std::make_shared<UniqueFd>(std::move(*dir));
  f.name = fill_file_name(id);
  f.container_path = (spec.path == "/" ? "" : spec.path) + "/" + f.name;
  f.bytes = size;

  jr::Record rec;
  jr::ResourceOwned* owned = rec.mutable_resource_owned();
  owned->set_key(f.key);
  owned->set_injection_id(id);
  owned->set_kind("disk_fill");
  jr::FillFile* ff = owned->mutable_fill();
  ff->set_host_path(join_under_root("/proc/" + std::to_string(c->pid) + "/root", f.container_path));
  ff->set_container_path(f.container_path);
  ff->mutable_root_process()->set_pid(c->pid);
  ff->mutable_root_process()->set_start_time(after.start_time);
  ff->mutable_root_process()->set_boot_id(boot_id);
  // Journaled before the file exists (ino 0: "ours by name"), then again with
  // its identity once created.
  NQ_TRY(sink_(rec));
  UniqueFd file(::openat(f.dir->get(), f.name.c_str(),
                         O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file) {
    const int err = errno;
    (void)released(f.key);
    return Error::from_errno(err, "spec.disk_fill.path: create " + f.container_path);
  }
  struct stat st {};
  Result<std::string> method = Error::internal("unset");
  if (::fstat(file.get(), &st) < 0) {
    method = Error::from_errno(errno, "fstat " + f.container_path);
  } else {
    f.dev = st.st_dev;
    f.ino = st.st_ino;
    ff->set_dev(st.st_dev);
    ff->set_ino(st.st_ino);
    if (Status s = sink_(rec); !s.ok())
      method = std::move(s).error();
    else
      method = allocate(file.get(), size);
  }
  if (!method.ok()) {
    ::unlinkat(f.dir->get(), f.name.c_str(), 0);
    (void)released(f.key);
    return std::move(method).error().wrapped("fill " + f.container_path);
  }
  core::Details d{{"file", f.container_path},
                  {"container", c->name},
                  {"bytes", std::to_string(size)},
                  {"allocation", *method},
                  {"available_before", std::to_string(space.available)}};
  std::lock_guard lock(mu_);
  active_[id].fills.push_back(std::move(f));
  return d;
}

Status DiskFaults::undo_fill(const Fill& f) {
  struct stat st {};
  if (::fstatat(f.dir->get(), f.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno != ENOENT) return Error::from_errno(errno, "stat " + f.container_path);
  } else if (st.st_dev == f.dev && st.st_ino == f.ino) {
    if (::unlinkat(f.dir->get(), f.name.c_str(), 0) < 0 && errno != ENOENT)
      return Error::from_errno(errno, "unlink " + f.container_path);
  } else {
    spdlog::warn("disk_fill: {} is no longer the file nodequake created; left alone",
                 f.container_path);
  }
  return released(f.key);
}

Status DiskFaults::undo(const Injection& inj) {
  Status first;
  for (const Throttle& t : inj.throttles)
    if (Status st = undo_throttle(t); !st.ok() && first.ok()) first = std::move(st);
  for (const Fill& f : inj.fills)
    if (Status st = undo_fill(f); !st.ok() && first.ok()) first = std::move(st);
  return first;
}

// ------------------------------------------------------------ revert, observe

Status DiskFaults::revert(const std::string& id) {
  Injection inj;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return ok();
    inj = it->second;
  }
  NQ_TRY(undo(inj));
  std::lock_guard lock(mu_);
  active_.erase(id);
  return ok();
}

core::Details DiskFaults::observe(const std::string& id) const {
  Injection inj;
  {
    std::lock_guard lock(mu_);
    auto it = active_.find(id);
    if (it == active_.end()) return {};
    inj = it->second;
  }
  core::Details d;
  for (const Fill& f : inj.fills) {
    struct stat st {};
    if (::fstatat(f.dir->get(), f.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      d["allocated_bytes"] = std::to_string(static_cast<uint64_t>(st.st_blocks) * 512);
    if (auto s = fs_space(f.dir->get()); s.ok()) d["available_now"] = std::to_string(s->available);
  }
  for (const Throttle& t : inj.throttles) {
    std::error_code ec;
    if (!std::filesystem::exists(t.cgroup_dir, ec)) d["cgroup_gone"] = t.cgroup_dir.string();
  }
  return d;
}

// ------------------------------------------------------------ reconcile

Status DiskFaults::reconcile(const jr::ResourceOwned& resource) {
  if (resource.has_throttle()) {
    const jr::IoThrottleSet& t = resource.throttle();
    NQ_ASSIGN_OR_RETURN(CgroupVersion v, process::parse_version(t.version()));
    std::map<std::string, std::string> prev(t.previous().begin(), t.previous().end());
    std::error_code ec;
    if (!std::filesystem::exists(t.cgroup_path(), ec)) return ok();
    return apply_writes(t.cgroup_path(), plan_restore(v, {t.major(), t.minor()}, prev));
  }
  if (resource.has_fill()) return reconcile_fill(resource);
  return Error::invalid_argument("resource", "disk fault resource " + resource.key() +
                                                 " is neither a throttle nor a fill file");
}

Status DiskFaults::reconcile_fill(const jr::ResourceOwned& resource) {
  const jr::FillFile& ff = resource.fill();
  std::vector<pid_t> roots;
  auto boot_id = read_boot_id();
  const jr::OwnedProcess& rp = ff.root_process();
  if (boot_id.ok() && *boot_id == rp.boot_id() && sandbox::process_alive(rp.pid(), rp.start_time()))
    roots.push_back(rp.pid());
  bool pod_gone = false;
  if (auto key = parse_resource_key(resource.key()); key.ok() && runtime_ != nullptr) {
    auto pod = runtime_->get_pod(key->namespace_name, key->pod);
    if (pod.ok()) {
      for (const auto& c : pod->containers)
        if (c.pid != 0 && c.name == key->container) roots.push_back(c.pid);
    } else if (pod.error().status_code() == Code::kNotFound) {
      pod_gone = true;
    }
  }
  const auto [parent, name] = split_parent(ff.container_path());
  for (pid_t pid : roots) {
    auto root = open_root(pid);
    if (!root.ok()) continue;  // exited meanwhile: try the next
    auto dir = open_in_root(root->get(), parent, O_PATH | O_DIRECTORY, "fill.container_path");
    if (!dir.ok()) {
      if (dir.error().status_code() == Code::kNotFound) return ok();  // the directory is gone
      return std::move(dir).error();
    }
    struct stat st {};
    if (::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return ok();
      return Error::from_errno(errno, "stat " + ff.container_path());
    }
    // ino 0: the crash came between journaling and creating; the name carries
    // the injection id, so a regular file of that name is ours.
    const bool ours =
        ff.ino() == 0 ? S_ISREG(st.st_mode) : (st.st_dev == ff.dev() && st.st_ino == ff.ino());
    if (!ours) {
      spdlog::warn("reconcile: {} is not the fill file nodequake created; left alone",
                   ff.container_path());
      return ok();
    }
    if (::unlinkat(dir->get(), name.c_str(), 0) < 0 && errno != ENOENT)
      return Error::from_errno(errno, "unlink " + ff.container_path());
    return ok();
  }
  if (pod_gone || runtime_ == nullptr) {
    // A vanished pod counts as reverted (its container filesystem went with
    // it; a fill on a persistent volume stays and is named in the log).
    spdlog::warn(
        "reconcile: no process of the container is left to reach {}; if it was on a "
        "persistent volume, delete it by hand",
        ff.container_path());
    return ok();
  }
  return Error::unavailable("no running process of the container to reach " + ff.container_path() +
                            " (kept for the next start)");
}

void DiskFaults::release_all() {
  std::map<std::string, Injection> all;
  {
    std::lock_guard lock(mu_);
    all.swap(active_);
  }
  for (const auto& [id, inj] : all)
    if (Status st = undo(inj); !st.ok())
      spdlog::error("disk fault {}: undo at shutdown: {}", id, st.error().message());
}

}  // namespace nq::disk

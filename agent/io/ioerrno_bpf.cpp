#include "agent/io/ioerrno_bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "agent/bpf/verifier_log.h"
#include "ioerrno.skel.h"

namespace nq::io {
namespace {

// Holds a whole failing verification (see VerifierLog).
constexpr size_t kVerifierLogSize = 4u << 20;

struct SkelDeleter {
  void operator()(ioerrno* skel) const noexcept { ioerrno__destroy(skel); }
};
using SkelPtr = std::unique_ptr<ioerrno, SkelDeleter>;

struct LinkDeleter {
  void operator()(bpf_link* link) const noexcept {
    // Destroying a link fd-only link detaches it; errors here are not
    // actionable (the link dies with the process anyway).
    bpf_link__destroy(link);
  }
};
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

}  // namespace

struct IoErrnoProgram::Impl {
  SkelPtr skel;
  LinkPtr links[3];

  bpf_program* program(int i) const {
    bpf_program* progs[] = {skel->progs.nq_io_open, skel->progs.nq_io_perm, skel->progs.nq_io_free};
    return progs[i];
  }
};

IoErrnoProgram::IoErrnoProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IoErrnoProgram::IoErrnoProgram(IoErrnoProgram&&) noexcept = default;
IoErrnoProgram& IoErrnoProgram::operator=(IoErrnoProgram&&) noexcept = default;
IoErrnoProgram::~IoErrnoProgram() = default;

Result<IoErrnoProgram> IoErrnoProgram::load() {
  bpf::VerifierLog log(kVerifierLogSize);  // needed only while loading
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  log.attach(opts);

  auto impl = std::make_unique<Impl>();
  impl->skel.reset(ioerrno__open_opts(&opts));
  if (!impl->skel) return Error::from_errno(errno, "open ioerrno BPF object");
  if (int rc = ioerrno__load(impl->skel.get()); rc != 0) {
    return log.annotate(Error::from_errno(-rc, "load ioerrno BPF object (BPF LSM programs)"));
  }
  return IoErrnoProgram(std::move(impl));
}

Status IoErrnoProgram::attach() {
  if (attached()) return ok();
  LinkPtr links[3];
  for (int i = 0; i < 3; ++i) {
    bpf_link* link = bpf_program__attach_lsm(impl_->program(i));
    if (link == nullptr) {
      // libbpf 1.1 returns NULL and sets errno; `links` closes what attached.
      return Error::from_errno(errno, std::string("attach BPF LSM program ") + kProgramNames[i]);
    }
    links[i].reset(link);
  }
  for (int i = 0; i < 3; ++i) impl_->links[i] = std::move(links[i]);
  return ok();
}

void IoErrnoProgram::detach() {
  for (auto& link : impl_->links) link.reset();
  // Marks are keyed by struct file addresses. With the programs detached,
  // nq_io_free no longer drops the marks of freed files, so a later attach
  // could find a stale mark at a reused address; generations make such a
  // mark inert, and clearing the map here frees the space.
  const int fd = bpf_map__fd(impl_->skel->maps.nq_io_files);
  uint64_t key = 0;
  // Bounded: the map cannot hold more; deleting while iterating from NULL
  // always yields the next remaining key.
  for (int n = 0; n <= NQ_IO_MAX_FILES; ++n) {
    if (bpf_map_get_next_key(fd, nullptr, &key) != 0) break;
    if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) break;
  }
}

bool IoErrnoProgram::attached() const noexcept {
  return impl_->links[0] != nullptr;
}

Status IoErrnoProgram::put(uint64_t cgroup_id, const nq_io_config& config) {
  const int fd = bpf_map__fd(impl_->skel->maps.nq_io_configs);
  if (bpf_map_update_elem(fd, &cgroup_id, &config, BPF_ANY) != 0)
    return Error::from_errno(errno, "set io_errno config of cgroup " + std::to_string(cgroup_id));
  return ok();
}

Status IoErrnoProgram::erase(uint64_t cgroup_id) {
  const int fd = bpf_map__fd(impl_->skel->maps.nq_io_configs);
  if (bpf_map_delete_elem(fd, &cgroup_id) != 0 && errno != ENOENT)
    return Error::from_errno(errno,
                             "remove io_errno config of cgroup " + std::to_string(cgroup_id));
  return ok();
}

Result<std::optional<nq_io_config>> IoErrnoProgram::get(uint64_t cgroup_id) const {
  const int fd = bpf_map__fd(impl_->skel->maps.nq_io_configs);
  nq_io_config cfg{};
  if (bpf_map_lookup_elem(fd, &cgroup_id, &cfg) != 0) {
    if (errno == ENOENT) return std::optional<nq_io_config>();
    return Error::from_errno(errno, "read io_errno config of cgroup " + std::to_string(cgroup_id));
  }
  return std::optional<nq_io_config>(cfg);
}

Result<size_t> IoErrnoProgram::marked_files() const {
  const int fd = bpf_map__fd(impl_->skel->maps.nq_io_files);
  size_t n = 0;
  uint64_t key = 0, next = 0;
  bool first = true;
  for (; n <= NQ_IO_MAX_FILES; ++n) {
    if (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) != 0) {
      if (errno == ENOENT) return n;
      return Error::from_errno(errno, "iterate io_errno file marks");
    }
    key = next;
    first = false;
  }
  return n;
}

}  // namespace nq::io

#include "tests/node/io/io_helpers.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "agent/caps/probe.h"
#include "common/file.h"

namespace nq::io::testing {
namespace {

struct Request {
  int op = 0;
  int count = 0;
  char path[512] = {};
};

Status write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Error::from_errno(errno, "write to worker pipe");
    c += w;
    n -= static_cast<size_t>(w);
  }
  return ok();
}

// 0 on EOF, 1 on a full read, -1 on an error.
int read_all(int fd, void* p, size_t n) {
  char* c = static_cast<char*>(p);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, c + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0 && got == 0 ? 0 : -1;
    got += static_cast<size_t>(r);
  }
  return 1;
}

// The child: only async-signal-safe calls (the test process has threads).
[[noreturn]] void serve(int in, int out) {
  Request req;
  char byte = 'x';
  while (read_all(in, &req, sizeof(req)) == 1) {
    CgroupWorker::Outcome o;
    if (req.op == static_cast<int>(CgroupWorker::Op::kOpen)) {
      for (int i = 0; i < req.count; ++i) {
        ++o.calls;
        int fd = ::open(req.path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          ++o.failures;
          o.last_errno = errno;
        } else {
          ::close(fd);
        }
      }
    } else {
      const bool write = req.op == static_cast<int>(CgroupWorker::Op::kWrite);
      int fd = ::open(req.path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
      if (fd < 0) {
        o.open_failed = true;
        o.last_errno = errno;
      } else {
        for (int i = 0; i < req.count; ++i) {
          ++o.calls;
          ssize_t n = write ? ::pwrite(fd, &byte, 1, 0) : ::pread(fd, &byte, 1, 0);
          if (n < 0) {
            ++o.failures;
            o.last_errno = errno;
          }
        }
        ::close(fd);
      }
    }
    if (write_all(out, &o, sizeof(o)).ok() == false) break;
  }
  ::_exit(0);
}

}  // namespace

std::string bpf_lsm_unavailable_reason() {
  for (const auto& c : probe_bpf()) {
    if (c.name == "bpf_lsm") return c.available ? "" : c.detail;
  }
  return "the capability probe reported no bpf_lsm";
}

Result<CgroupWorker> CgroupWorker::start(const std::filesystem::path& cgroup_dir) {
  int to[2], from[2];
  if (::pipe2(to, O_CLOEXEC) != 0) return Error::from_errno(errno, "pipe2");
  UniqueFd to_r(to[0]), to_w(to[1]);
  if (::pipe2(from, O_CLOEXEC) != 0) return Error::from_errno(errno, "pipe2");
  UniqueFd from_r(from[0]), from_w(from[1]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno(errno, "fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    serve(to_r.get(), from_w.get());
  }
  CgroupWorker w(pid, std::move(to_w), std::move(from_r));
  // Moved before its first request: every syscall it makes for the test is
  // made from inside the cgroup.
  NQ_TRY(write_knob(cgroup_dir / "cgroup.procs", std::to_string(pid)));
  return w;
}

CgroupWorker::CgroupWorker(CgroupWorker&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), to_(std::move(o.to_)), from_(std::move(o.from_)) {}

CgroupWorker::~CgroupWorker() {
  if (pid_ <= 0) return;
  to_.reset();  // EOF: the worker exits by itself
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

Result<CgroupWorker::Outcome> CgroupWorker::run(Op op, const std::string& path, int count) {
  Request req;
  req.op = static_cast<int>(op);
  req.count = count;
  if (path.size() >= sizeof(req.path)) return Error::invalid_argument("path", "too long");
  std::memcpy(req.path, path.c_str(), path.size() + 1);
  NQ_TRY(write_all(to_.get(), &req, sizeof(req)));
  Outcome o;
  if (read_all(from_.get(), &o, sizeof(o)) != 1)
    return Error::internal("worker " + std::to_string(pid_) + " did not answer");
  return o;
}

Result<std::vector<std::string>> linked_program_names() {
  std::vector<std::string> out;
  __u32 id = 0;
  while (true) {
    if (bpf_link_get_next_id(id, &id) != 0) {
      if (errno == ENOENT) break;
      return Error::from_errno(errno, "bpf_link_get_next_id");
    }
    UniqueFd link(bpf_link_get_fd_by_id(id));
    if (!link) continue;  // gone meanwhile
    bpf_link_info li{};
    __u32 len = sizeof(li);
    if (bpf_obj_get_info_by_fd(link.get(), &li, &len) != 0) continue;
    UniqueFd prog(bpf_prog_get_fd_by_id(li.prog_id));
    if (!prog) continue;
    bpf_prog_info pi{};
    len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(prog.get(), &pi, &len) != 0) continue;
    out.emplace_back(pi.name);
  }
  return out;
}

Result<int> ioerrno_links() {
  NQ_ASSIGN_OR_RETURN(auto names, linked_program_names());
  int n = 0;
  for (const auto& name : names) n += name.rfind("nq_io_", 0) == 0 ? 1 : 0;
  return n;
}

}  // namespace nq::io::testing

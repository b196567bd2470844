#include "agent/stress/stressor_process.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "agent/runtime/local/process.h"
#include "common/file.h"

// glibc 2.36 declares waitid's P_PIDFD only in <linux/wait.h>, which clashes
// with <sys/wait.h>; the value is the kernel's ABI (since 5.4).
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace nq::stress {
namespace {

// CLOSE_RANGE_CLOEXEC (kernel 5.11) is missing from the 6.1-era glibc headers' view.
constexpr unsigned kCloseRangeCloexec = 1u << 2;

// glibc 2.36's <sys/pidfd.h> lacks extern "C" (its symbols do not link from
// C++), so the two pidfd calls go through syscall(2).
int pidfd_open(pid_t pid, unsigned flags) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, flags));
}
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Moves `fd` to a number >= 10 (close-on-exec) so the child's dup2 onto 3 and
// 4 never finds its source already there (dup2 of an fd onto itself would
// keep close-on-exec set).
Result<UniqueFd> high_fd(int fd, std::string_view what) {
  const int hi = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (hi < 0) return Error::from_errno(errno, std::string("dup ") + std::string(what));
  return UniqueFd(hi);
}

// Waits until the pidfd reports the process exited (readable), up to `timeout`.
bool wait_exited(int pidfd, std::chrono::milliseconds timeout) {
  pollfd p{pidfd, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

// ------------------------------------------------------------ ControlPage

Result<ControlPage> ControlPage::create() {
  UniqueFd fd(::memfd_create("nq-stress-control", MFD_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "memfd_create");
  if (::ftruncate(fd.get(), sizeof(StressControl)) < 0)
    return Error::from_errno(errno, "ftruncate control page");
  void* p = ::mmap(nullptr, sizeof(StressControl), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return Error::from_errno(errno, "mmap control page");
  auto* page = new (p) StressControl{};
  page->magic = kControlMagic;
  page->version = kControlVersion;
  return ControlPage(std::move(fd), page);
}

ControlPage::ControlPage(ControlPage&& other) noexcept
    : fd_(std::move(other.fd_)), page_(std::exchange(other.page_, nullptr)) {}

ControlPage& ControlPage::operator=(ControlPage&& other) noexcept {
  if (this != &other) {
    if (page_) ::munmap(page_, sizeof(StressControl));
    fd_ = std::move(other.fd_);
    page_ = std::exchange(other.page_, nullptr);
  }
  return *this;
}

ControlPage::~ControlPage() {
  if (page_) ::munmap(page_, sizeof(StressControl));
}

// ------------------------------------------------------------ StressorProcess

Result<StressorProcess> StressorProcess::spawn(const SpawnRequest& request,
                                               const ControlPage& control) {
  // Everything the child needs is prepared here: between clone and exec it
  // may only make async-signal-safe calls (the agent is multi-threaded).
  std::vector<std::string> args_storage;
  args_storage.push_back(request.binary.filename().string());
  for (const auto& a : request.args) args_storage.push_back(a);
  std::vector<char*> argv;
  for (auto& a : args_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string binary = request.binary.string();
  char* envp[] = {nullptr};

  std::vector<UniqueFd> procs;
  std::vector<int> procs_raw;
  for (const auto& file : request.join_procs) {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return Error::from_errno(errno, "open " + file.string());
    procs_raw.push_back(fd.get());
    procs.push_back(std::move(fd));
  }
  UniqueFd cgroup_dir;
  if (!request.v2_dir.empty()) {
    cgroup_dir.reset(::open(request.v2_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup_dir) return Error::from_errno(errno, "open " + request.v2_dir.string());
  }
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return Error::from_errno(errno, "open /dev/null");
  // A socket pair rather than a pipe: writing "go" to a stressor that already
  // died must not raise SIGPIPE in the agent (send with MSG_NOSIGNAL).
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return Error::from_errno(errno, "socketpair lifeline");
  UniqueFd lifeline(sv[0]);
  UniqueFd child_end_low(sv[1]);
  NQ_ASSIGN_OR_RETURN(UniqueFd child_end, high_fd(child_end_low.get(), "lifeline"));
  child_end_low.reset();
  NQ_ASSIGN_OR_RETURN(UniqueFd control_fd, high_fd(control.fd(), "control page"));
  StressControl* page = &control.get();
  // Closed by exec (close-on-exec): the parent reads EOF once the child is
  // placed and exec'ed, or the child's errno when it failed first. spawn()
  // returns only after that, so the caller never sees a child half-way
  // through joining its cgroups.
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) < 0) return Error::from_errno(errno, "pipe2");
  UniqueFd exec_read(exec_pipe[0]);
  UniqueFd exec_write(exec_pipe[1]);

  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_PIDFD | (cgroup_dir ? CLONE_INTO_CGROUP : 0);
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  args.cgroup = cgroup_dir ? static_cast<uint64_t>(cgroup_dir.get()) : 0;
  // clone3 without CLONE_VM is a fork of this thread that also hands back a
  // pidfd (no pid-reuse window) and, on v2, starts the child in the cgroup.
  const long rc = ::syscall(SYS_clone3, &args, sizeof(args));
  if (rc < 0) return Error::from_errno(errno, "clone3 nq-stressor");
  if (rc == 0) {
    // The child. On failure it leaves the errno in the shared page.
    const int report_fd = exec_write.get();
    auto die = [page, report_fd](int err) {
      page->error.store(err);
      page->state.store(static_cast<uint32_t>(StressorState::kFailed));
      (void)!::write(report_fd, &err, sizeof(err));
      ::_exit(127);
    };
    sigset_t none;
    sigemptyset(&none);
    // The agent blocks SIGTERM/SIGINT in every thread; exec keeps the mask.
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) ::sigaction(s, &dfl, nullptr);
    for (int fd : procs_raw) {
      // v1: join each hierarchy before exec, so the exec'ed image and every
      // page the stressor touches are charged to the container.
      if (::write(fd, "0", 1) < 0) die(errno);
    }
    ::setsid();  // no terminal signals from the agent's session
    if (::dup2(devnull.get(), 0) < 0 || ::dup2(control_fd.get(), kControlFd) < 0 ||
        ::dup2(child_end.get(), kLifelineFd) < 0)
      die(errno);
    // Nothing else of the agent's leaks into the stressor, whatever flags
    // other code used for its fds (another stressor's lifeline above all).
    // Marked close-on-exec rather than closed, so the exec pipe still
    // reports a failing execve.
    ::syscall(SYS_close_range, kLifelineFd + 1, UINT_MAX, kCloseRangeCloexec);
    ::execve(binary.c_str(), argv.data(), envp);
    die(errno);
  }

  StressorProcess p;
  p.pidfd_.reset(pidfd);
  p.pid_ = static_cast<pid_t>(rc);
  p.lifeline_ = std::move(lifeline);
  exec_write.reset();
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(exec_read.get(), &child_errno, sizeof(child_errno))) < 0 && errno == EINTR) {
  }
  if (n == sizeof(child_errno)) {
    (void)p.kill_and_reap(std::chrono::seconds(5));
    return Error::from_errno(child_errno, "start " + binary + " in the container's cgroups");
  }
  // The child is ours and not yet reaped, so the pid cannot be reused here.
  auto stat = sandbox::read_proc_stat(p.pid_);
  if (!stat.ok()) return std::move(stat).error().wrapped("nq-stressor start time");
  p.start_time_ = stat->start_time;
  return p;
}

StressorProcess::~StressorProcess() {
  if (pidfd_ && !exit_) (void)kill_and_reap(std::chrono::seconds(5));
}

Status StressorProcess::set_oom_score_adj(int value) const {
  return write_knob("/proc/" + std::to_string(pid_) + "/oom_score_adj", std::to_string(value));
}

Status StressorProcess::go() const {
  if (::send(lifeline_.get(), "g", 1, MSG_NOSIGNAL) != 1)
    return Error::from_errno(errno, "release nq-stressor " + std::to_string(pid_));
  return ok();
}

std::optional<std::string> StressorProcess::poll_exit() {
  if (exit_) return exit_;
  if (!pidfd_) return std::string("not started");
  siginfo_t si{};
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &si,
               WEXITED | WNOHANG) < 0) {
    // ECHILD: someone else reaped it (SIGCHLD ignored); it is gone either way.
    if (errno == ECHILD) exit_ = "reaped elsewhere";
    return exit_;
  }
  if (si.si_pid == 0) return std::nullopt;
  exit_ = describe_exit(si.si_code, si.si_status);
  return exit_;
}

Status StressorProcess::kill_and_reap(std::chrono::milliseconds timeout) {
  if (exit_ || !pidfd_) return ok();
  if (pidfd_send_signal(pidfd_.get(), SIGKILL) < 0 && errno != ESRCH)
    return Error::from_errno(errno, "kill nq-stressor " + std::to_string(pid_));
  // Closing our end lets a stressor that is somehow not killable yet (it
  // cannot ignore SIGKILL, but may sit in uninterruptible reclaim) go on its own.
  lifeline_.reset();
  if (!wait_exited(pidfd_.get(), timeout))
    return Error::unavailable("nq-stressor " + std::to_string(pid_) + " did not exit within " +
                              std::to_string(timeout.count()) + " ms of SIGKILL");
  if (!poll_exit()) return Error::internal("nq-stressor exited but could not be reaped");
  return ok();
}

Result<uint64_t> StressorProcess::anon_rss_bytes() const {
  auto text = read_file("/proc/" + std::to_string(pid_) + "/status");
  if (!text.ok()) return std::move(text).error();
  constexpr std::string_view kField = "\nRssAnon:";
  const auto pos = text->find(kField);
  if (pos == std::string::npos) return Error::not_found("RssAnon of " + std::to_string(pid_));
  return std::strtoull(text->c_str() + pos + kField.size(), nullptr, 10) * 1024;
}

// ------------------------------------------------------------ free functions

Result<std::string> read_boot_id() {
  NQ_ASSIGN_OR_RETURN(std::string id, read_file("/proc/sys/kernel/random/boot_id"));
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

Status kill_recorded(pid_t pid, uint64_t start_time, const std::string& recorded_boot_id,
                     const std::string& current_boot_id, std::chrono::milliseconds timeout) {
  if (recorded_boot_id != current_boot_id || pid <= 0) return ok();  // rebooted: nothing left
  UniqueFd pidfd(pidfd_open(pid, 0));
  if (!pidfd) {
    if (errno == ESRCH) return ok();
    return Error::from_errno(errno, "pidfd_open " + std::to_string(pid));
  }
  // Checked after the pidfd is held: from here the pid cannot be reused
  // under us, so a matching start time means the signal hits our stressor.
  auto stat = sandbox::read_proc_stat(pid);
  if (!stat.ok()) {
    if (stat.error().status_code() == Code::kNotFound) return ok();
    return std::move(stat).error();
  }
  if (stat->start_time != start_time || stat->state == 'Z') return ok();
  if (pidfd_send_signal(pidfd.get(), SIGKILL) < 0 && errno != ESRCH)
    return Error::from_errno(errno, "kill nq-stressor " + std::to_string(pid));
  if (!wait_exited(pidfd.get(), timeout))
    return Error::unavailable("nq-stressor " + std::to_string(pid) + " still runs after SIGKILL");
  return ok();
}

std::string describe_exit(int code, int status) {
  switch (code) {
    case CLD_EXITED:
      return "exited with status " + std::to_string(status);
    case CLD_KILLED:
    case CLD_DUMPED:
      return "killed by signal " + std::to_string(status) + " (" + ::strsignal(status) + ")";
    default:
      return "ended (code " + std::to_string(code) + ")";
  }
}

}  // namespace nq::stress

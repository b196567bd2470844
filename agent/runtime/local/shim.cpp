#include "agent/runtime/local/shim.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "agent/runtime/local/pod_cgroups.h"
#include "agent/runtime/local/process.h"
#include "agent/runtime/local/registry.h"
#include "common/fd.h"

namespace nq::sandbox {

std::chrono::milliseconds restart_backoff(int failures) {
  std::chrono::milliseconds d{250};
  for (int i = 0; i < failures && d < std::chrono::seconds(10); ++i) d *= 2;
  return std::min<std::chrono::milliseconds>(d, std::chrono::seconds(10));
}

namespace {

using Clock = std::chrono::steady_clock;

// What a child reports through its close-on-exec pipe when it cannot exec.
struct ChildFailure {
  int stage;  // 1: join cgroups, 2: setns, 3: execve
  int err;
};

const char* stage_name(int stage) {
  switch (stage) {
    case 1:
      return "join cgroups";
    case 2:
      return "enter netns";
    default:
      return "exec";
  }
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "signal " + std::to_string(sig) + " (" + ::strsignal(sig) + ")";
  }
  return "status " + std::to_string(status);
}

// argv/envp as the char* arrays execve wants, built before fork().
struct Exec {
  std::vector<std::string> strings;
  std::vector<char*> ptrs;
  explicit Exec(std::vector<std::string> s) : strings(std::move(s)) {
    for (std::string& x : strings) ptrs.push_back(x.data());
    ptrs.push_back(nullptr);
  }
  Exec(const Exec&) = delete;
  Exec& operator=(const Exec&) = delete;
};

struct Container {
  size_t index = 0;  // into PodRecord::containers
  std::vector<UniqueFd> procs;
  std::vector<int> procs_raw;
  std::unique_ptr<Exec> argv, envp;
  pid_t pid = 0;
  Clock::time_point started{};
  std::optional<Clock::time_point> restart_at;
  int failures = 0;
};

class Shim {
 public:
  explicit Shim(const ShimArgs& args) : args_(args), registry_(args.state_dir) {}

  Status run() {
    NQ_ASSIGN_OR_RETURN(rec_, registry_.get(args_.namespace_name, args_.name));
    NQ_ASSIGN_OR_RETURN(ProcStat self, read_proc_stat(::getpid()));
    rec_.shim_pid = ::getpid();
    rec_.shim_start_time = self.start_time;
    NQ_TRY(registry_.put(rec_));
    NQ_TRY(setup());
    for (Container& c : containers_) {
      if (Status st = start(c); !st.ok()) {
        // A container that cannot even start once is a broken spec: report it to `up`.
        stop_all();
        return std::move(st).error().wrapped("container " + rec_.containers[c.index].name);
      }
    }
    NQ_TRY(save());
    report_ready("ok\n");
    spdlog::info("pod {} running ({} containers)", rec_.key(), containers_.size());
    return loop();
  }

  void report_ready(const std::string& line) {
    if (args_.ready_fd < 0) return;
    // EPIPE when `up` is gone: SIGPIPE is blocked, so the write just fails.
    [[maybe_unused]] ssize_t n = ::write(args_.ready_fd, line.data(), line.size());
    ::close(args_.ready_fd);
    args_.ready_fd = -1;
  }

 private:
  Status setup() {
    // Signals arrive through a signalfd in the event loop. SIGPIPE is blocked
    // so a write to a vanished reader fails with EPIPE instead of killing us.
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE}) sigaddset(&set, s);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0) return Error::from_errno(errno, "sigprocmask");
    sigdelset(&set, SIGPIPE);
    sigfd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sigfd_) return Error::from_errno(errno, "signalfd");
    // Orphans of a container (a daemonizing workload) are reparented to us and reaped.
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
      return Error::from_errno(errno, "prctl(PR_SET_CHILD_SUBREAPER)");
    devnull_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!devnull_) return Error::from_errno(errno, "open /dev/null");
    if (!rec_.host_network) {
      netns_.reset(::open(rec_.netns_path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!netns_) return Error::from_errno(errno, "open netns " + rec_.netns_path);
    }
    for (size_t i = 0; i < rec_.containers.size(); ++i) {
      const ContainerRecord& cr = rec_.containers[i];
      Container c;
      c.index = i;
      for (const std::string& dir : cr.cgroup_dirs) {
        const std::string file = dir + "/cgroup.procs";
        UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
        if (!fd) return Error::from_errno(errno, "open " + file);
        c.procs_raw.push_back(fd.get());
        c.procs.push_back(std::move(fd));
      }
      if (cr.argv.empty()) return Error::invalid_argument(cr.name + ".argv", "is empty");
      c.argv = std::make_unique<Exec>(cr.argv);
      c.envp = std::make_unique<Exec>(std::vector<std::string>{
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
          "NQ_POD_NAMESPACE=" + rec_.namespace_name, "NQ_POD_NAME=" + rec_.name,
          "NQ_POD_UID=" + rec_.uid, "NQ_CONTAINER_NAME=" + cr.name});
      containers_.push_back(std::move(c));
    }
    return ok();
  }

  // Between fork() and execve() only async-signal-safe calls: the container
  // joins its cgroups and the pod netns before the workload runs a single instruction.
  [[noreturn]] void child(const Container& c, int report_fd) noexcept {
    const auto fail = [&](int stage, int err) {
      const ChildFailure f{stage, err};
      [[maybe_unused]] ssize_t n = ::write(report_fd, &f, sizeof(f));
      ::_exit(127);
    };
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::setsid();  // its own process group, so a stop reaches its children too
    if (int err = join_cgroups_after_fork(c.procs_raw.data(), c.procs_raw.size())) fail(1, err);
    if (netns_ && ::setns(netns_.get(), CLONE_NEWNET) < 0) fail(2, errno);
    ::dup2(devnull_.get(), STDIN_FILENO);
    // Nothing of ours leaks into the workload; report_fd closes on a successful exec.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(c.argv->ptrs[0], c.argv->ptrs.data(), c.envp->ptrs.data());
    fail(3, errno);
    ::_exit(127);
  }

  Status start(Container& c) {
    ContainerRecord& cr = rec_.containers[c.index];
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return Error::from_errno(errno, "pipe2");
    UniqueFd rd(p[0]), wr(p[1]);
    const pid_t pid = ::fork();
    if (pid < 0) return Error::from_errno(errno, "fork");
    if (pid == 0) child(c, wr.get());
    wr.reset();
    ChildFailure f{};
    ssize_t n;
    do n = ::read(rd.get(), &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof(f))) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      return Error::from_errno(f.err, std::string(stage_name(f.stage)) + " " + cr.argv[0]);
    }
    c.pid = pid;
    c.started = Clock::now();
    c.restart_at.reset();
    cr.pid = pid;
    auto st = read_proc_stat(pid);
    cr.pid_start_time = st.ok() ? st->start_time : 0;
    spdlog::info("container {} started: pid {}", cr.name, pid);
    return ok();
  }

  Status save() { return registry_.put(rec_); }

  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      for (Container& c : containers_) {
        if (c.pid != pid) continue;
        ContainerRecord& cr = rec_.containers[c.index];
        const auto ran = Clock::now() - c.started;
        if (ran >= kBackoffReset) c.failures = 0;
        const auto delay = restart_backoff(c.failures++);
        c.pid = 0;
        c.restart_at = Clock::now() + delay;
        cr.pid = 0;
        cr.pid_start_time = 0;
        cr.last_exit = describe_exit(status);
        spdlog::warn("container {} (pid {}) exited: {}; restarting in {} ms", cr.name, pid,
                     cr.last_exit, delay.count());
        log_if_error(save());
      }
    }
  }

  void restart_due() {
    const auto now = Clock::now();
    for (Container& c : containers_) {
      if (!c.restart_at || *c.restart_at > now) continue;
      ContainerRecord& cr = rec_.containers[c.index];
      ++cr.restart_count;
      if (Status st = start(c); !st.ok()) {
        cr.last_exit = st.error().message();
        const auto delay = restart_backoff(c.failures++);
        c.restart_at = now + delay;
        spdlog::error("container {}: {}; retrying in {} ms", cr.name, cr.last_exit, delay.count());
      }
      log_if_error(save());
    }
  }

  static void log_if_error(const Status& st) {
    if (!st.ok()) spdlog::error("{}", st.error().message());
  }

  int poll_timeout_ms() const {
    std::optional<Clock::time_point> next;
    for (const Container& c : containers_)
      if (c.restart_at && (!next || *c.restart_at < *next)) next = c.restart_at;
    if (!next) return -1;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
    return static_cast<int>(std::max<int64_t>(ms, 0));
  }

  // Reads pending signals; true when asked to stop.
  Result<bool> drain_signals() {
    for (;;) {
      signalfd_siginfo si{};
      const ssize_t n = ::read(sigfd_.get(), &si, sizeof(si));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return false;
        return Error::from_errno(errno, "read signalfd");
      }
      if (si.ssi_signo == SIGCHLD) {
        reap();
      } else {
        spdlog::info("signal {}: stopping pod {}", si.ssi_signo, rec_.key());
        return true;
      }
      pollfd more{sigfd_.get(), POLLIN, 0};
      if (::poll(&more, 1, 0) <= 0) return false;
    }
  }

  Status loop() {
    for (;;) {
      pollfd pfd{sigfd_.get(), POLLIN, 0};
      const int n = ::poll(&pfd, 1, poll_timeout_ms());
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error::from_errno(errno, "poll");
      }
      if (n > 0) {
        NQ_ASSIGN_OR_RETURN(bool stop, drain_signals());
        if (stop) {
          stop_all();
          return ok();
        }
      }
      restart_due();
    }
  }

  void stop_all() {
    for (Container& c : containers_) {
      c.restart_at.reset();
      if (c.pid > 0) {
        ::kill(-c.pid, SIGTERM);
        ::kill(c.pid, SIGTERM);
      }
    }
    const auto deadline = Clock::now() + kStopGrace;
    const auto running = [&] {
      return std::any_of(containers_.begin(), containers_.end(),
                         [](const Container& c) { return c.pid > 0; });
    };
    while (running() && Clock::now() < deadline) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd pfd{sigfd_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left, 1))) > 0) {
        signalfd_siginfo si{};
        if (::read(sigfd_.get(), &si, sizeof(si)) > 0 && si.ssi_signo == SIGCHLD) reap();
      }
    }
    for (Container& c : containers_) {
      if (c.pid <= 0) continue;
      ::kill(-c.pid, SIGKILL);
      ::kill(c.pid, SIGKILL);
      int status = 0;
      ::waitpid(c.pid, &status, 0);
      c.pid = 0;
    }
    for (Container& c : containers_) {
      c.restart_at.reset();
      rec_.containers[c.index].pid = 0;
      rec_.containers[c.index].pid_start_time = 0;
    }
    log_if_error(save());
  }

  ShimArgs args_;
  Registry registry_;
  PodRecord rec_;
  UniqueFd sigfd_, devnull_, netns_;
  std::vector<Container> containers_;
};

// Moves `fd` to a number >= 10 so the dup2()s onto 0..3 in the child cannot
// clobber it.
Result<UniqueFd> high_fd(UniqueFd fd, const char* what) {
  if (fd.get() >= 10) return fd;
  UniqueFd high(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 10));
  if (!high) return Error::from_errno(errno, std::string("dup ") + what);
  return high;
}

// Reads from `fd` until `want` bytes, EOF, or the deadline; returns what arrived.
Result<std::string> read_until(int fd, size_t want, Clock::time_point deadline, bool line) {
  std::string out;
  while (out.size() < want && !(line && !out.empty() && out.back() == '\n')) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Error::status(Code::kDeadlineExceeded, "shim not ready in time");
    pollfd pfd{fd, POLLIN, 0};
    const int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "poll shim pipe");
    }
    if (n == 0) continue;
    char buf[256];
    const size_t room = line ? sizeof(buf) : std::min(sizeof(buf), want - out.size());
    const ssize_t r = ::read(fd, buf, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read shim pipe");
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

}  // namespace

Status run_shim(const ShimArgs& args) {
  Shim shim(args);
  Status st = shim.run();
  if (!st.ok()) {
    spdlog::error("shim {}/{}: {}", args.namespace_name, args.name, st.error().message());
    shim.report_ready("error: " + st.error().message() + "\n");
  }
  return st;
}

Result<pid_t> launch_shim(const ShimLaunch& l) {
  if (l.command.empty()) return Error::invalid_argument("shim.command", "is empty");
  std::vector<std::string> argv_s = l.command;
  for (std::string s : {std::string("--state-dir"), l.state_dir.string(), std::string("--ready-fd"),
                        std::string("3"), l.namespace_name + "/" + l.name})
    argv_s.push_back(std::move(s));
  Exec argv(std::move(argv_s));

  NQ_ASSIGN_OR_RETURN(
      UniqueFd log,
      high_fd(UniqueFd(::open(l.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)),
              "log"));
  if (!log) return Error::from_errno(errno, "open " + l.log_path.string());
  NQ_ASSIGN_OR_RETURN(UniqueFd devnull,
                      high_fd(UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)), "/dev/null"));
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) return Error::from_errno(errno, "pipe2");
  UniqueFd rd(p[0]);
  NQ_ASSIGN_OR_RETURN(UniqueFd wr, high_fd(UniqueFd(p[1]), "pipe"));

  // The caller may be multithreaded: the children only make async-signal-safe calls.
  const pid_t mid = ::fork();
  if (mid < 0) return Error::from_errno(errno, "fork");
  if (mid == 0) {
    ::dup2(devnull.get(), STDIN_FILENO);
    ::dup2(log.get(), STDOUT_FILENO);
    ::dup2(log.get(), STDERR_FILENO);
    ::dup2(wr.get(), 3);  // dup2 clears close-on-exec on fd 3
    ::setsid();
    const pid_t shim = ::fork();
    if (shim < 0) ::_exit(1);
    if (shim > 0) {
      // The intermediate tells the caller the daemon's pid, then exits so the
      // daemon is reparented to init (or the nearest subreaper).
      [[maybe_unused]] ssize_t n = ::write(3, &shim, sizeof(shim));
      ::_exit(0);
    }
    ::close_range(4, ~0U, 0);
    ::execv(argv.ptrs[0], argv.ptrs.data());
    ::_exit(127);
  }
  wr.reset();
  int status = 0;
  while (::waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  const auto deadline = Clock::now() + l.ready_timeout;
  NQ_ASSIGN_OR_RETURN(std::string pid_bytes, read_until(rd.get(), sizeof(pid_t), deadline, false));
  if (pid_bytes.size() != sizeof(pid_t))
    return Error::internal("shim launcher exited without a pid (" + describe_exit(status) + ")");
  pid_t pid = 0;
  std::memcpy(&pid, pid_bytes.data(), sizeof(pid));

  auto line = read_until(rd.get(), 4096, deadline, true);
  const auto fail = [&](Error e) -> Error {
    (void)stop_process(pid, 0, std::chrono::seconds(2));
    return std::move(e).wrapped("shim for " + l.namespace_name + "/" + l.name +
                                " (log: " + l.log_path.string() + ")");
  };
  if (!line.ok()) return fail(std::move(line).error());
  if (*line == "ok\n") return pid;
  if (line->starts_with("error: ")) {
    std::string msg = line->substr(7);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return fail(Error::failed_precondition(msg));
  }
  return fail(Error::internal("exited before it was ready"));
}

}  // namespace nq::sandbox

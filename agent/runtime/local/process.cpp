#include "agent/runtime/local/process.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>
#include <thread>

#include "common/fd.h"

namespace nq::sandbox {

Result<ProcStat> parse_proc_stat(std::string_view text) {
  const size_t paren = text.rfind(')');
  if (paren == std::string_view::npos || paren + 2 >= text.size())
    return Error::invalid_argument("/proc/PID/stat", "no \")\" after the command name");
  // After ") ": field 3 (state) is index 0, field 22 (starttime) is index 19.
  std::string_view rest = text.substr(paren + 2);
  ProcStat st;
  for (int index = 0; index <= 19; ++index) {
    const size_t sp = rest.find(' ');
    const std::string_view field = rest.substr(0, sp);
    if (index == 0) {
      if (field.size() != 1) return Error::invalid_argument("/proc/PID/stat", "bad state field");
      st.state = field[0];
    } else if (index == 19) {
      auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), st.start_time);
      if (ec != std::errc() || end != field.data() + field.size())
        return Error::invalid_argument("/proc/PID/stat", "bad starttime field");
      return st;
    }
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  return Error::invalid_argument("/proc/PID/stat", "fewer than 22 fields");
}

Result<ProcStat> read_proc_stat(pid_t pid, const std::filesystem::path& proc_root) {
  const std::string path = (proc_root / std::to_string(pid) / "stat").string();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT || err == ESRCH) return Error::not_found("process " + std::to_string(pid));
    return Error::from_errno(err, "open " + path);
  }
  char buf[1024];
  const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  if (n < 0) {
    const int err = errno;
    if (err == ESRCH) return Error::not_found("process " + std::to_string(pid));
    return Error::from_errno(err, "read " + path);
  }
  return parse_proc_stat(std::string_view(buf, static_cast<size_t>(n)));
}

bool process_alive(pid_t pid, uint64_t start_time, const std::filesystem::path& proc_root) {
  if (pid <= 0) return false;
  auto st = read_proc_stat(pid, proc_root);
  if (!st.ok() || st->state == 'Z' || st->state == 'X') return false;
  return start_time == 0 || st->start_time == start_time;
}

Status stop_process(pid_t pid, uint64_t start_time, std::chrono::milliseconds grace) {
  using Clock = std::chrono::steady_clock;
  if (!process_alive(pid, start_time)) return ok();
  if (::kill(pid, SIGTERM) < 0 && errno != ESRCH)
    return Error::from_errno(errno, "kill -TERM " + std::to_string(pid));
  const auto term_deadline = Clock::now() + grace;
  bool killed = false;
  // The process is not our child (shims are daemonized), so poll instead of waitpid.
  while (process_alive(pid, start_time)) {
    if (!killed && Clock::now() >= term_deadline) {
      if (::kill(pid, SIGKILL) < 0 && errno != ESRCH)
        return Error::from_errno(errno, "kill -KILL " + std::to_string(pid));
      killed = true;
    } else if (killed && Clock::now() >= term_deadline + grace) {
      return Error::unavailable("process " + std::to_string(pid) + " survived SIGKILL");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ok();
}

}  // namespace nq::sandbox

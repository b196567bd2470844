#include "bench/peer_exec.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fd.h"

extern char** environ;

namespace nq::bench {

Result<std::string> find_in_path(std::string_view name, std::string_view path_env) {
  if (name.find('/') != std::string_view::npos) {
    if (::access(std::string(name).c_str(), X_OK) == 0) return std::string(name);
    return Error::not_found(std::string(name) + " is not executable");
  }
  size_t pos = 0;
  while (pos <= path_env.size()) {
    size_t colon = path_env.find(':', pos);
    if (colon == std::string_view::npos) colon = path_env.size();
    std::string dir(path_env.substr(pos, colon - pos));
    pos = colon + 1;
    if (dir.empty()) continue;  // an empty entry would mean the cwd: not for root tools
    std::string candidate = dir + "/" + std::string(name);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return Error::not_found(std::string(name) + " not found in PATH (" + std::string(path_env) + ")");
}

Result<PeerTools> find_peer_tools(std::string_view path_env) {
  PeerTools t;
  struct Want {
    const char* name;
    const char* package;
    std::string* out;
  };
  for (const Want& w : {Want{"nsenter", "util-linux", &t.nsenter}, Want{"tc", "iproute2", &t.tc},
                        Want{"iptables", "iptables", &t.iptables}}) {
    auto path = find_in_path(w.name, path_env);
    if (!path.ok())
      return std::move(path).error().wrapped(std::string("the exec-path comparison needs ") +
                                             w.name + " (Debian package " + w.package +
                                             "; scripts/install-deps.sh bench installs it)");
    *w.out = std::move(*path);
  }
  return t;
}

std::vector<std::string> nsenter_argv(const PeerTools& tools, pid_t pid,
                                      std::vector<std::string> command) {
  std::vector<std::string> argv = {tools.nsenter, "--net=/proc/" + std::to_string(pid) + "/ns/net"};
  argv.insert(argv.end(), std::make_move_iterator(command.begin()),
              std::make_move_iterator(command.end()));
  return argv;
}

PeerCommands tc_bandwidth_commands(const PeerTools& tools, pid_t pid, const std::string& ifname,
                                   const std::string& rate) {
  return {nsenter_argv(tools, pid,
                       {tools.tc, "qdisc", "add", "dev", ifname, "root", "tbf", "rate", rate,
                        "burst", "32kbit", "latency", "400ms"}),
          nsenter_argv(tools, pid, {tools.tc, "qdisc", "del", "dev", ifname, "root"})};
}

PeerCommands iptables_partition_commands(const PeerTools& tools, pid_t pid,
                                         const std::string& remote_ip) {
  auto rule = [&](const char* op) {
    return nsenter_argv(tools, pid,
                        {tools.iptables, op, "OUTPUT", "-d", remote_ip + "/32", "-j", "DROP"});
  };
  return {rule("-A"), rule("-D")};
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

namespace {

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::string read_all(int fd) {
  std::string out;
  if (::lseek(fd, 0, SEEK_SET) < 0) return out;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 && out.size() < 64 * 1024)
    out.append(buf, static_cast<size_t>(n));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

Result<std::chrono::nanoseconds> run_timed(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error::invalid_argument("argv", "is empty");
  // Everything the child needs is prepared before the clock starts: the
  // timed part is spawn + the tool's own work + exit, as a peer tool sees it.
  // stderr goes to a memfd so a failing command's message can be shown
  // without a pipe that a chatty child could fill.
  UniqueFd err(::memfd_create("nq-bench-stderr", MFD_CLOEXEC));
  if (!err) return Error::from_errno(errno, "memfd_create");
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return Error::from_errno(errno, "open /dev/null");
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  SpawnSetup s;
  posix_spawn_file_actions_adddup2(&s.actions, devnull.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&s.actions, devnull.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&s.actions, err.get(), STDERR_FILENO);
  // The benchmark blocks its stop signals (it takes them synchronously);
  // the tools get the ordinary mask and dispositions.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&s.attr, &none);
  posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK);

  const auto start = std::chrono::steady_clock::now();
  pid_t pid = -1;
  if (int rc = posix_spawn(&pid, args[0], &s.actions, &s.attr, args.data(), environ); rc != 0)
    return Error::from_errno(rc, "posix_spawn " + argv[0]);
  int status = 0;
  pid_t r = 0;
  while ((r = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (r < 0) return Error::from_errno(errno, "waitpid " + argv[0]);

  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return elapsed;
  std::string why = WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                      : "killed by signal " + std::to_string(WTERMSIG(status));
  const std::string text = read_all(err.get());
  return Error::internal("`" + join_argv(argv) + "` failed (" + why + ")" +
                         (text.empty() ? "" : ": " + text));
}

}  // namespace nq::bench

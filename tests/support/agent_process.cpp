#include "tests/support/agent_process.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "agent/server/channel.h"
#include "common/fd.h"

extern char** environ;

namespace nq::testing {
namespace {

// Whether something accepts connections on the Unix socket `path`.
bool listening(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof(addr.sun_path)) return false;
  path.copy(addr.sun_path, path.size());
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

}  // namespace

Result<std::unique_ptr<AgentProcess>> AgentProcess::start(const AgentProcessOptions& opts,
                                                          std::chrono::milliseconds timeout) {
  std::vector<std::string> args = {opts.binary,      "--state-dir",       opts.state_dir,
                                   "--socket",       opts.socket,         "--sandbox-dir",
                                   opts.sandbox_dir, "--metrics-address", opts.metrics_address};
  args.insert(args.end(), opts.extra_args.begin(), opts.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // No O_CLOEXEC: glibc closes fd 2 first, so open() returns 2 itself and a
  // close-on-exec flag would leave the agent without stderr -- its next
  // open() (the journal lock) would then become fd 2 and receive the log.
  if (!opts.log_file.empty())
    posix_spawn_file_actions_addopen(&actions, 2, opts.log_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  // The agent blocks SIGTERM/SIGINT itself; start it with a clean mask.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, opts.binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::from_errno(rc, "spawn " + opts.binary);

  std::unique_ptr<AgentProcess> proc(new AgentProcess());
  proc->pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      proc->pid_ = -1;
      return Error::unavailable("agent exited during start-up (status " + std::to_string(status) +
                                "); see " + (opts.log_file.empty() ? "stderr" : opts.log_file));
    }
    // The channel is made only once the agent listens: a channel whose first
    // connect fails (no socket yet, or a dead one a killed agent left) waits
    // out gRPC's reconnect backoff, which added seconds to every start.
    if (!proc->stub_ && listening(opts.socket)) {
      NQ_ASSIGN_OR_RETURN(auto channel, make_channel({"unix://" + opts.socket, "", "", "", ""}));
      proc->stub_ = nodequake::v1::Agent::NewStub(channel);
    }
    if (proc->stub_) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      ctx.set_wait_for_ready(true);
      nodequake::v1::ProbeResponse resp;
      if (proc->stub_->Probe(&ctx, {}, &resp).ok()) return proc;
    }
    if (std::chrono::steady_clock::now() > deadline)
      return Error::status(Code::kDeadlineExceeded, "agent did not answer Probe in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<int> AgentProcess::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ < 0) return Error::failed_precondition("agent not running");
  if (::kill(pid_, sig) < 0) return Error::from_errno(errno, "kill agent");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (r < 0) return Error::from_errno(errno, "waitpid agent");
    if (std::chrono::steady_clock::now() > deadline)
      return Error::status(Code::kDeadlineExceeded, "agent did not exit after signal");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

}  // namespace nq::testing

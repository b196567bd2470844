#include "tests/e2e/e2e_env.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "agent/server/channel.h"

namespace nq::testing {

using namespace std::chrono_literals;
namespace v1 = nodequake::v1;

namespace {

// fork + exec with stdout/stderr to the given files; -1 on fork failure.
pid_t spawn(const std::vector<std::string>& argv, const std::string& out_file,
            const std::string& err_file, const std::map<std::string, std::string>& env) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err =
      err_file == out_file ? out : ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out >= 0) ::dup2(out, 1);
  if (err >= 0) ::dup2(err, 2);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::unique_ptr<v1::Controller::Stub> controller_stub(const std::string& socket) {
  auto channel = make_channel({"unix://" + socket, "", "", "", "", 60});
  if (!channel.ok()) return nullptr;
  return v1::Controller::NewStub(*channel);
}

grpc::Status get_experiment(v1::Controller::Stub& stub, const std::string& token,
                            const std::string& id, v1::ExperimentStatus* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::GetRequest req;
  req.set_id(id);
  v1::GetResponse resp;
  grpc::Status st = stub.Get(&ctx, req, &resp);
  if (st.ok() && out && resp.experiments_size() > 0) *out = resp.experiments(0);
  return st;
}

Result<std::unique_ptr<ControllerProcess>> ControllerProcess::start(
    const Options& options, std::chrono::milliseconds timeout) {
  std::unique_ptr<ControllerProcess> p(new ControllerProcess());
  p->log_file_ = options.log_file;
  std::vector<std::string> argv = {NQ_CONTROLLER_PATH};
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  p->pid_ = spawn(argv, options.log_file, options.log_file, {});
  if (p->pid_ < 0) return Error::from_errno(errno, "fork");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      return Error::unavailable("nodequake-controller exited early:\n" + p->log_tail());
    }
    if (::access(options.socket.c_str(), F_OK) == 0) {
      auto stub = controller_stub(options.socket);
      v1::ExperimentStatus ignored;
      // NOT_FOUND for the made-up id: the API answers and the token is accepted.
      if (stub && get_experiment(*stub, options.token, "probe", &ignored).error_code() ==
                      grpc::StatusCode::NOT_FOUND)
        return p;
    }
    std::this_thread::sleep_for(50ms);
  }
  return Error::status(Code::kDeadlineExceeded,
                       "nodequake-controller not ready:\n" + p->log_tail());
}

ControllerProcess::~ControllerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

Result<int> ControllerProcess::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return Error::failed_precondition("not running");
  if (::kill(pid_, sig) != 0) return Error::from_errno(errno, "kill");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(20ms);
  }
  return Error::status(Code::kDeadlineExceeded, "controller did not exit");
}

std::string ControllerProcess::log_tail(size_t bytes) const {
  const std::string all = slurp(log_file_);
  return all.size() <= bytes ? all : all.substr(all.size() - bytes);
}

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env) {
  CommandResult r;
  char out_tmpl[] = "/tmp/nq-e2e-out-XXXXXX";
  char err_tmpl[] = "/tmp/nq-e2e-err-XXXXXX";
  const int out_fd = ::mkstemp(out_tmpl);
  const int err_fd = ::mkstemp(err_tmpl);
  if (out_fd >= 0) ::close(out_fd);
  if (err_fd >= 0) ::close(err_fd);
  const pid_t pid = spawn(argv, out_tmpl, err_tmpl, env);
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, 0) == pid)
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_tmpl);
  r.err = slurp(err_tmpl);
  ::unlink(out_tmpl);
  ::unlink(err_tmpl);
  return r;
}

}  // namespace nq::testing

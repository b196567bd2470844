#include "tests/node/controller/prom_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "controller/prom/client.h"

namespace nq::testing {

using namespace std::chrono_literals;

std::string PromServer::unavailable_reason() {
  if (::access(kBinary, X_OK) != 0)
    return std::string(kBinary) + " is not installed (Debian package prometheus)";
  return "";
}

PromServer::PromServer() : dir_("prom"), registry_(std::make_shared<prometheus::Registry>()) {
  auto& lat = prometheus::BuildGauge()
                  .Name("nqtest_request_latency_seconds")
                  .Help("p95 latency of the pretend service")
                  .Register(*registry_);
  latency_ = &lat.Add({{"service", "gateway"}});
  auto& err = prometheus::BuildGauge()
                  .Name("nqtest_error_ratio")
                  .Help("error ratio of the pretend service")
                  .Register(*registry_);
  errors_ = &err.Add({{"service", "gateway"}});
}

PromServer::~PromServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  // dir_ (config, TSDB data, log) is removed by its own destructor.
}

std::string PromServer::log_tail() const {
  std::ifstream in(dir_.path() / "prometheus.log");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  return all.size() <= 3000 ? all : all.substr(all.size() - 3000);
}

Status PromServer::start(std::chrono::seconds timeout) {
  exposer_ = std::make_unique<prometheus::Exposer>("127.0.0.1:0");
  exposer_->RegisterCollectable(registry_);
  const auto ports = exposer_->GetListeningPorts();
  if (ports.empty()) return Error::internal("exposer has no port");
  NQ_ASSIGN_OR_RETURN(port_, free_local_port());

  const auto config = dir_.path() / "prometheus.yml";
  std::ofstream(config) << "global:\n"
                        << "  scrape_interval: 1s\n"
                        << "  evaluation_interval: 1s\n"
                        << "scrape_configs:\n"
                        << "  - job_name: nqtest\n"
                        << "    static_configs:\n"
                        << "      - targets: ['127.0.0.1:" << ports[0] << "']\n";
  const std::vector<std::string> args = {
      kBinary,
      "--config.file=" + config.string(),
      "--storage.tsdb.path=" + (dir_.path() / "data").string(),
      "--web.listen-address=127.0.0.1:" + std::to_string(port_),
      "--log.level=warn",
  };
  const std::string log = (dir_.path() / "prometheus.log").string();
  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno(errno, "fork");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kBinary, argv.data());
    ::_exit(127);
  }
  pid_ = pid;

  // Ready once a query sees the exposer's series (the first scrape happened).
  prom::PromClient client({url(), 1s, ""});
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Error::unavailable("prometheus exited early:\n" + log_tail());
    }
    auto r = client.query("nqtest_error_ratio");
    if (r.ok() && !r->samples.empty()) return ok();
    last = r.ok() ? "no series yet" : r.error().message();
    std::this_thread::sleep_for(200ms);
  }
  return Error::status(Code::kDeadlineExceeded,
                       "prometheus not ready (" + last + "):\n" + log_tail());
}

}  // namespace nq::testing

#include "tests/node/sandbox/sandbox_fixture.h"

#include <fstream>
#include <sstream>

#include "agent/net/links.h"
#include "agent/runtime/local/pod_network.h"
#include "common/netns.h"

namespace nq::sandbox::testing {

void SandboxTest::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (netns, veth, bridge, cgroups, processes)";
  auto fs = runtime::CgroupFs::discover();
  if (!fs.ok() || fs->mounts().mounts.empty())
    GTEST_SKIP() << "no cgroup hierarchy is mounted here";
  cgroups_ = std::make_unique<runtime::CgroupFs>(std::move(*fs));

  const std::string pid = std::to_string(::getpid());
  ns_ = "nqt-" + pid;
  suffix_ = "-" + pid;
  opts_.state_dir = std::filesystem::temp_directory_path() / ("nqt-sandbox-" + pid);
  opts_.bridge = "nqbrt" + pid;
  opts_.subnet = "10.214." + std::to_string(::getpid() % 250) + ".0/24";
  opts_.cgroup_parent = "nqtest" + pid;
  opts_.netns_prefix = "nqt" + pid + "-";
  opts_.nq_echo = NQ_ECHO_PATH;
  opts_.shim_command = {NQCTL_PATH, "sandbox", "shim"};
  opts_.stop_timeout = std::chrono::seconds(8);
}

void SandboxTest::TearDown() {
  if (!cgroups_) return;  // skipped
  auto down = sandbox_down_all(opts_);
  EXPECT_TRUE(down.ok()) << down.error().message();
  // Safety net for a test that failed half way (each call tolerates absence).
  for (pid_t p : processes_with(opts_.state_dir.string())) ::kill(p, SIGKILL);
  (void)remove_bridge(opts_.bridge);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(opts_.netns_dir, ec)) {
    if (entry.path().filename().string().starts_with(opts_.netns_prefix))
      (void)remove_named_netns(entry.path().string());
  }
  for (const runtime::CgroupMount& m : cgroups_->mounts().mounts) {
    auto dir = cgroups_->dir(m, m.root);
    if (dir.ok()) std::filesystem::remove(*dir / opts_.cgroup_parent, ec);
  }
  std::filesystem::remove_all(opts_.state_dir, ec);
}

PodSpec SandboxTest::pod(const std::string& name, std::vector<std::string> command,
                         bool host_network) const {
  PodSpec p;
  p.namespace_name = ns_;
  p.name = name;
  p.labels = {{"app", name}, {"chaos-ready", "true"}};
  p.host_network = host_network;
  p.where = "test.yaml:1";
  ContainerSpec c;
  c.name = "main";
  c.command = std::move(command);
  c.limits.cpu_millis = 500;
  c.limits.memory_bytes = 64LL << 20;
  c.where = "test.yaml:2";
  p.containers.push_back(std::move(c));
  return p;
}

PodRecord SandboxTest::record(const std::string& name) const {
  auto r = Registry(opts_.state_dir).get(ns_, name);
  EXPECT_TRUE(r.ok()) << r.error().message();
  return r.ok() ? *r : PodRecord{};
}

std::string SandboxTest::netns_path(const std::string& name) const {
  return (opts_.netns_dir / (opts_.netns_prefix + ns_ + "." + name)).string();
}

std::vector<pid_t> SandboxTest::processes_with(const std::string& needle) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_file(entry.path() / "cmdline");
    for (char& c : cmdline)
      if (c == '\0') c = ' ';
    if (cmdline.find(needle) != std::string::npos && std::stoi(name) != ::getpid())
      out.push_back(std::stoi(name));
  }
  return out;
}

bool SandboxTest::link_exists(const std::string& name) {
  auto sock = net::NlSocket::open_route();
  EXPECT_TRUE(sock.ok());
  if (!sock.ok()) return false;
  auto index = net::link_index(*sock, name);
  if (!index.ok()) {
    EXPECT_EQ(index.error().status_code(), Code::kNotFound);
  }
  return index.ok();
}

std::string SandboxTest::read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace nq::sandbox::testing

#include "tests/node/cri/cri_fixture.h"

#include <unistd.h>

#include <thread>

#include "common/file.h"
#include "common/netns.h"
#include "common/traffic.h"

namespace nq::testing {

std::unique_ptr<ContainerdEnv> CriSuite::env_;
std::string CriSuite::skip_reason_;
std::string CriSuite::fail_reason_;

void CriSuite::SetUpTestSuite() {
  skip_reason_.clear();
  fail_reason_.clear();
  if (::geteuid() != 0) {
    skip_reason_ = "needs root (containerd, runc, CNI)";
    return;
  }
  ContainerdOptions opts;
  opts.pause = NQ_PAUSE_PATH;
  auto env = ContainerdEnv::start(opts);
  if (!env.ok()) {
    if (env.error().status_code() == Code::kFailedPrecondition)
      skip_reason_ = env.error().message();
    else
      fail_reason_ = env.error().message();
    return;
  }
  env_ = std::move(*env);
}

void CriSuite::TearDownTestSuite() {
  env_.reset();
}

void CriSuite::SetUp() {
  if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
  ASSERT_TRUE(fail_reason_.empty()) << fail_reason_;
  ASSERT_NE(env_, nullptr);
}

void CriSuite::TearDown() {
  if (!env_) return;
  for (const auto& id : pods_) {
    if (Status st = env_->remove_pod(id); !st.ok())
      ADD_FAILURE() << "removing pod " << id << ": " << st.error().message();
  }
  pods_.clear();
}

PodHandle CriSuite::run(const PodSpec& spec) {
  auto pod = env_->run_pod(spec);
  if (!pod.ok()) {
    ADD_FAILURE() << pod.error().message() << "\ncontainerd log:\n" << env_->log_tail();
    return {};
  }
  pods_.push_back(pod->sandbox_id);
  return *pod;
}

void CriSuite::remove(const PodHandle& pod) {
  std::erase(pods_, pod.sandbox_id);
  Status st = env_->remove_pod(pod.sandbox_id);
  EXPECT_TRUE(st.ok()) << st.error().message();
}

std::string CriSuite::pod_name(const std::string& base) const {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string test = info ? info->name() : "t";
  for (char& c : test) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return base + "-" + test;
}

PodSpec labeled_pod(const std::string& ns, const std::string& name,
                    std::map<std::string, std::string> labels) {
  PodSpec spec;
  spec.namespace_name = ns;
  spec.name = name;
  spec.labels = std::move(labels);
  return spec;
}

Status connect_from(const std::string& netns_path, const std::string& ip, uint16_t port,
                    std::chrono::milliseconds timeout) {
  NQ_ASSIGN_OR_RETURN(Netns ns, Netns::open(netns_path));
  auto r = run_in_netns(ns, [&] { return traffic::tcp_connect(ip, port, timeout); });
  if (!r.ok()) return std::move(r).error();
  return ok();
}

namespace {

Result<uint64_t> usage_ns(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c) {
  if (auto dir = fs.dir_for(c.cgroups, "cpuacct"); dir.ok()) {
    NQ_ASSIGN_OR_RETURN(std::string text, read_file(*dir / "cpuacct.usage"));
    return std::stoull(text);
  }
  NQ_ASSIGN_OR_RETURN(auto dir, fs.dir_for(c.cgroups, ""));
  NQ_ASSIGN_OR_RETURN(std::string text, read_file(dir / "cpu.stat"));
  auto pos = text.find("usage_usec ");
  if (pos == std::string::npos) return Error::not_found("usage_usec in cpu.stat");
  return std::stoull(text.substr(pos + 11)) * 1000;
}

}  // namespace

Result<double> cpu_percent(const runtime::ContainerInfo& container,
                           std::chrono::milliseconds window) {
  NQ_ASSIGN_OR_RETURN(auto fs, runtime::CgroupFs::discover());
  NQ_ASSIGN_OR_RETURN(uint64_t before, usage_ns(fs, container));
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(window);
  NQ_ASSIGN_OR_RETURN(uint64_t after, usage_ns(fs, container));
  const double elapsed =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  return 100.0 * static_cast<double>(after - before) / elapsed;
}

Result<std::filesystem::path> cgroup_dir(const runtime::ContainerInfo& container) {
  NQ_ASSIGN_OR_RETURN(auto fs, runtime::CgroupFs::discover());
  auto dir = fs.dir_for(container.cgroups, "pids");
  if (!dir.ok()) dir = fs.dir_for(container.cgroups, "");
  return dir;
}

Result<std::vector<pid_t>> cgroup_pids(const runtime::ContainerInfo& container) {
  NQ_ASSIGN_OR_RETURN(auto dir, cgroup_dir(container));
  return runtime::read_cgroup_procs(dir);
}

}  // namespace nq::testing

// Sandbox pods on this machine's kernel: up, resolve, traffic, restart, down.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "agent/runtime/local/local_runtime.h"
#include "agent/runtime/local/pod_cgroups.h"
#include "agent/runtime/local/process.h"
#include "common/netns.h"
#include "common/traffic.h"
#include "tests/node/sandbox/sandbox_fixture.h"

namespace nq::sandbox::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

bool contains(const std::vector<pid_t>& v, pid_t p) {
  return std::find(v.begin(), v.end(), p) != v.end();
}

uint64_t ns_inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

// The HTTP body, read by hand: traffic::http_get reports only the status.
Result<std::string> http_body(const std::string& ip) {
  NQ_ASSIGN_OR_RETURN(auto connect, traffic::tcp_connect(ip, 8080, 2s));
  (void)connect;
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(8080);
  ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  timeval tv{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
    return Error::from_errno(errno, "connect");
  const std::string req = "GET / HTTP/1.0\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0)
    return Error::from_errno(errno, "send");
  std::string resp;
  char buf[512];
  ssize_t n;
  while ((n = ::recv(fd.get(), buf, sizeof(buf), 0)) > 0) resp.append(buf, static_cast<size_t>(n));
  const size_t body = resp.find("\r\n\r\n");
  if (body == std::string::npos) return Error::internal("no HTTP body in: " + resp);
  return resp.substr(body + 4);
}

TEST_F(SandboxTest, UpResolvesPodsThroughLocalRuntime) {
  const std::string a = "alpha" + suffix_, b = "beta" + suffix_, h = "host" + suffix_;
  auto up =
      sandbox_up({pod(a), pod(b), pod(h, {"/bin/sleep", "1000" + suffix_.substr(1)}, true)}, opts_);
  ASSERT_TRUE(up.ok()) << up.error().message();
  EXPECT_EQ(up->created.size(), 3u);

  LocalRuntime rt({opts_.state_dir});
  EXPECT_EQ(rt.name(), "local");
  auto pods = rt.list_pods();
  ASSERT_TRUE(pods.ok()) << pods.error().message();
  ASSERT_EQ(pods->size(), 3u);
  EXPECT_EQ(rt.get_pod(ns_, "nope").error().status_code(), Code::kNotFound);

  auto alpha = rt.get_pod(ns_, a);
  ASSERT_TRUE(alpha.ok()) << alpha.error().message();
  EXPECT_EQ(alpha->labels,
            (std::map<std::string, std::string>{{"app", a}, {"chaos-ready", "true"}}));
  EXPECT_FALSE(alpha->host_network);
  EXPECT_EQ(alpha->netns_path, netns_path(a));
  ASSERT_EQ(alpha->ips.size(), 1u);
  EXPECT_EQ(alpha->ips[0].rfind("10.214.", 0), 0u) << alpha->ips[0];
  ASSERT_EQ(alpha->containers.size(), 1u);
  const runtime::ContainerInfo& c = alpha->containers[0];
  ASSERT_GT(c.pid, 0);

  // The process really is in the pod's netns...
  auto netns = Netns::open(alpha->netns_path);
  ASSERT_TRUE(netns.ok()) << netns.error().message();
  EXPECT_EQ(ns_inode("/proc/" + std::to_string(c.pid) + "/ns/net"), netns->id().ino);
  // ...and in its cgroups, per the kernel (/proc/PID/cgroup and cgroup.procs).
  auto kernel_view = runtime::read_proc_cgroup(c.pid);
  ASSERT_TRUE(kernel_view.ok());
  EXPECT_EQ(c.cgroups, *kernel_view);
  const std::string want = "/" + opts_.cgroup_parent + "/pod" + alpha->uid + "/main";
  int checked = 0;
  for (std::string_view ctl : kV1Controllers) {
    if (!cgroups_->mounts().v1(ctl)) continue;
    ASSERT_NE(runtime::find_cgroup_path(c.cgroups, ctl), nullptr) << ctl;
    EXPECT_EQ(*runtime::find_cgroup_path(c.cgroups, ctl), want) << ctl;
    auto dir = cgroups_->dir_for(c.cgroups, ctl);
    ASSERT_TRUE(dir.ok()) << dir.error().message();
    auto procs = runtime::read_cgroup_procs(*dir);
    ASSERT_TRUE(procs.ok()) << procs.error().message();
    EXPECT_TRUE(contains(*procs, c.pid)) << *dir;
    ++checked;
  }
  if (cgroups_->mounts().unified()) {
    EXPECT_EQ(*runtime::find_cgroup_path(c.cgroups, ""), want);
    auto procs = runtime::read_cgroup_procs(*cgroups_->dir_for(c.cgroups, ""));
    ASSERT_TRUE(procs.ok());
    EXPECT_TRUE(contains(*procs, c.pid));
    ++checked;
  }
  EXPECT_GE(checked, 1);

  // The limits are written where the controllers live.
  if (cgroups_->mounts().v1("cpu")) {
    const auto dir = *cgroups_->dir_for(c.cgroups, "cpu");
    EXPECT_EQ(read_file(dir / "cpu.cfs_quota_us"), "50000\n");
    EXPECT_EQ(read_file(dir / "cpu.cfs_period_us"), "100000\n");
  } else {
    EXPECT_EQ(read_file(*cgroups_->dir_for(c.cgroups, "") / "cpu.max"), "50000 100000\n");
  }
  if (cgroups_->mounts().v1("memory")) {
    EXPECT_EQ(read_file(*cgroups_->dir_for(c.cgroups, "memory") / "memory.limit_in_bytes"),
              std::to_string(64 << 20) + "\n");
  } else {
    EXPECT_EQ(read_file(*cgroups_->dir_for(c.cgroups, "") / "memory.max"),
              std::to_string(64 << 20) + "\n");
  }

  // The shim runs outside the pod's cgroups.
  const PodRecord rec = record(a);
  auto shim_cg = runtime::read_proc_cgroup(rec.shim_pid);
  ASSERT_TRUE(shim_cg.ok());
  for (const auto& [k, path] : shim_cg->by_hierarchy)
    EXPECT_EQ(path.find(opts_.cgroup_parent), std::string::npos) << k << ":" << path;

  // hostNetwork: no netns of its own, the process shares ours.
  auto host = rt.get_pod(ns_, h);
  ASSERT_TRUE(host.ok()) << host.error().message();
  EXPECT_TRUE(host->host_network);
  EXPECT_TRUE(host->netns_path.empty());
  EXPECT_TRUE(host->ips.empty());
  ASSERT_GT(host->containers[0].pid, 0);
  EXPECT_EQ(ns_inode("/proc/" + std::to_string(host->containers[0].pid) + "/ns/net"),
            ns_inode("/proc/self/ns/net"));
}

TEST_F(SandboxTest, PodsReachEachOtherOverTheBridgeAndNothingElse) {
  const std::string a = "alpha" + suffix_, b = "beta" + suffix_;
  auto up = sandbox_up({pod(a), pod(b)}, opts_);
  ASSERT_TRUE(up.ok()) << up.error().message();
  const PodRecord ra = record(a), rb = record(b);
  auto from = Netns::open(ra.netns_path);
  ASSERT_TRUE(from.ok());

  auto rtt = run_in_netns(*from, [&] { return traffic::tcp_echo_rtt(rb.ips[0], 7, 20, 2s); });
  ASSERT_TRUE(rtt.ok()) << rtt.error().message();
  EXPECT_EQ(rtt->size(), 20u);
  auto status = run_in_netns(*from, [&] { return traffic::http_get(rb.ips[0], 8080, "/", 2s); });
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ(*status, 200);
  auto body = run_in_netns(*from, [&] { return http_body(rb.ips[0]); });
  ASSERT_TRUE(body.ok()) << body.error().message();
  EXPECT_EQ(*body, b + "\n");  // nq-echo answers with the pod's name

  auto back = Netns::open(rb.netns_path);
  ASSERT_TRUE(back.ok());
  auto reverse = run_in_netns(*back, [&] { return http_body(ra.ips[0]); });
  ASSERT_TRUE(reverse.ok()) << reverse.error().message();
  EXPECT_EQ(*reverse, a + "\n");

  // No default route: anything beyond the subnet is unreachable at once.
  const auto t0 = std::chrono::steady_clock::now();
  auto outside = run_in_netns(*from, [] { return traffic::tcp_connect("192.0.2.1", 80, 2s); });
  EXPECT_FALSE(outside.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "expected ENETUNREACH, not a timeout";
}

TEST_F(SandboxTest, KilledContainerIsRestartedByTheShim) {
  const std::string a = "alpha" + suffix_;
  ASSERT_TRUE(sandbox_up({pod(a)}, opts_).ok());
  const PodRecord before = record(a);
  const pid_t old_pid = before.containers[0].pid;
  ASSERT_GT(old_pid, 0);
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);

  PodRecord after;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  do {
    std::this_thread::sleep_for(50ms);
    after = record(a);
  } while (!(after.containers[0].pid > 0 && after.containers[0].pid != old_pid) &&
           std::chrono::steady_clock::now() < deadline);
  const ContainerRecord& c = after.containers[0];
  ASSERT_GT(c.pid, 0);
  ASSERT_NE(c.pid, old_pid) << "not restarted within 5s";
  EXPECT_EQ(c.restart_count, 1);
  EXPECT_THAT(c.last_exit, HasSubstr("signal 9"));
  EXPECT_TRUE(process_alive(c.pid, c.pid_start_time));

  // The agent resolves the new process, in the same cgroups.
  LocalRuntime rt({opts_.state_dir});
  auto p = rt.get_pod(ns_, a);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->containers[0].pid, c.pid);
  auto procs = runtime::read_cgroup_procs(c.cgroup_dirs[0]);
  ASSERT_TRUE(procs.ok());
  EXPECT_TRUE(contains(*procs, c.pid));
}

TEST_F(SandboxTest, DownRemovesEverything) {
  const std::string a = "alpha" + suffix_, b = "beta" + suffix_, h = "host" + suffix_;
  ASSERT_TRUE(
      sandbox_up({pod(a), pod(b), pod(h, {"/bin/sleep", "1000" + suffix_.substr(1)}, true)}, opts_)
          .ok());
  auto records = Registry(opts_.state_dir).list();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 3u);
  ASSERT_TRUE(link_exists(opts_.bridge));

  auto down = sandbox_down_all(opts_);
  ASSERT_TRUE(down.ok()) << down.error().message();
  EXPECT_EQ(down->removed.size(), 3u);

  for (const PodRecord& r : *records) {
    SCOPED_TRACE(r.key());
    EXPECT_FALSE(process_alive(r.shim_pid, r.shim_start_time)) << "shim " << r.shim_pid;
    for (const ContainerRecord& c : r.containers) {
      EXPECT_FALSE(process_alive(c.pid, c.pid_start_time)) << "container " << c.pid;
      for (const std::string& d : c.cgroup_dirs) EXPECT_FALSE(std::filesystem::exists(d)) << d;
    }
    for (const std::string& d : r.cgroup_dirs) {
      EXPECT_FALSE(std::filesystem::exists(d)) << d;
      EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(d).parent_path()))
          << "cgroup parent left: " << d;
    }
    if (!r.host_network) {
      EXPECT_FALSE(std::filesystem::exists(r.netns_path)) << r.netns_path;
      EXPECT_FALSE(link_exists(r.host_veth)) << r.host_veth;
    }
    EXPECT_FALSE(std::filesystem::exists(r.log_path));
  }
  EXPECT_FALSE(link_exists(opts_.bridge));
  EXPECT_TRUE(Registry(opts_.state_dir).list()->empty());
  EXPECT_TRUE(processes_with(opts_.state_dir.string()).empty());

  // Idempotent.
  auto again = sandbox_down({key(a), key(b)}, opts_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->absent.size(), 2u);
}

TEST_F(SandboxTest, DownCleansUpAfterAKilledShim) {
  const std::string a = "alpha" + suffix_;
  ASSERT_TRUE(sandbox_up({pod(a)}, opts_).ok());
  const PodRecord r = record(a);
  // Like a crashed containerd-shim: its container keeps running, orphaned.
  ASSERT_EQ(::kill(r.shim_pid, SIGKILL), 0);
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (process_alive(r.shim_pid, r.shim_start_time) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(process_alive(r.containers[0].pid, r.containers[0].pid_start_time));

  auto down = sandbox_down({key(a)}, opts_);
  ASSERT_TRUE(down.ok()) << down.error().message();
  EXPECT_FALSE(process_alive(r.containers[0].pid, r.containers[0].pid_start_time));
  for (const std::string& d : r.containers[0].cgroup_dirs) EXPECT_FALSE(std::filesystem::exists(d));
  EXPECT_FALSE(std::filesystem::exists(r.netns_path));
}

TEST_F(SandboxTest, UpRecreatesAPodWhoseShimDied) {
  const std::string a = "alpha" + suffix_;
  ASSERT_TRUE(sandbox_up({pod(a)}, opts_).ok());
  const PodRecord old = record(a);
  ASSERT_EQ(::kill(old.shim_pid, SIGKILL), 0);
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (process_alive(old.shim_pid, old.shim_start_time) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);

  auto up = sandbox_up({pod(a)}, opts_);
  ASSERT_TRUE(up.ok()) << up.error().message();
  EXPECT_EQ(up->created, std::vector<std::string>{key(a)});
  const PodRecord now = record(a);
  EXPECT_NE(now.uid, old.uid);
  EXPECT_FALSE(process_alive(old.containers[0].pid, old.containers[0].pid_start_time));
  EXPECT_TRUE(process_alive(now.containers[0].pid, now.containers[0].pid_start_time));
  for (const std::string& d : old.cgroup_dirs) EXPECT_FALSE(std::filesystem::exists(d)) << d;
  EXPECT_FALSE(link_exists(old.host_veth));
}

TEST_F(SandboxTest, VanishedNetnsIsNotALivePod) {
  const std::string a = "alpha" + suffix_;
  ASSERT_TRUE(sandbox_up({pod(a)}, opts_).ok());
  const PodRecord r = record(a);
  ASSERT_TRUE(remove_named_netns(r.netns_path).ok());
  LocalRuntime rt({opts_.state_dir});
  auto pods = rt.list_pods();
  ASSERT_TRUE(pods.ok()) << pods.error().message();
  EXPECT_TRUE(pods->empty());
  auto gone = rt.get_pod(ns_, a);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().status_code(), Code::kNotFound);
  EXPECT_THAT(gone.error().message(), HasSubstr("is gone"));
  // down copes with the partial state.
  auto down = sandbox_down({key(a)}, opts_);
  ASSERT_TRUE(down.ok()) << down.error().message();
  EXPECT_FALSE(process_alive(r.shim_pid, r.shim_start_time));
}

TEST_F(SandboxTest, UpIsIdempotentAndRefusesAChangedSpec) {
  const std::string a = "alpha" + suffix_;
  ASSERT_TRUE(sandbox_up({pod(a)}, opts_).ok());
  const PodRecord first = record(a);
  auto again = sandbox_up({pod(a)}, opts_);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_TRUE(again->created.empty());
  EXPECT_EQ(again->unchanged, std::vector<std::string>{key(a)});
  EXPECT_EQ(record(a).uid, first.uid);

  PodSpec changed = pod(a);
  changed.labels["tier"] = "backend";
  auto refused = sandbox_up({changed}, opts_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().status_code(), Code::kFailedPrecondition);
  EXPECT_EQ(record(a).uid, first.uid);
}

TEST_F(SandboxTest, CrashingContainerCrashLoopsLikeKubernetes) {
  const std::string a = "alpha" + suffix_;
  // /bin/false starts fine and exits 1: the pod is up, the container restarts with backoff.
  auto up = sandbox_up({pod(a, {"/bin/false"})}, opts_);
  ASSERT_TRUE(up.ok()) << up.error().message();
  PodRecord r;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  do {
    std::this_thread::sleep_for(100ms);
    r = record(a);
  } while (r.containers[0].restart_count < 2 && std::chrono::steady_clock::now() < deadline);
  EXPECT_GE(r.containers[0].restart_count, 2);
  EXPECT_EQ(r.containers[0].last_exit, "exit code 1");
}

TEST_F(SandboxTest, UnknownCommandIsRejectedBeforeAnythingIsCreated) {
  const std::string a = "alpha" + suffix_, b = "beta" + suffix_;
  auto up = sandbox_up({pod(a), pod(b, {"nq-no-such-program"})}, opts_);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().status_code(), Code::kInvalidArgument);
  EXPECT_THAT(up.error().message(), HasSubstr("test.yaml:2: spec.containers[0].command[0]"));
  EXPECT_TRUE(Registry(opts_.state_dir).list()->empty());
  EXPECT_FALSE(link_exists(opts_.bridge));
  EXPECT_FALSE(std::filesystem::exists(netns_path(a)));
  EXPECT_TRUE(processes_with(opts_.state_dir.string()).empty());
}

TEST_F(SandboxTest, PodThatNeverGetsReadyFailsUpAndIsUndone) {
  const std::string a = "alpha" + suffix_, b = "beta" + suffix_;
  PodSpec never = pod(b, {"/bin/sleep", "1000" + suffix_.substr(1)});
  never.containers[0].readiness_port = 1;  // sleep listens on nothing
  opts_.ready_timeout = 1s;
  auto up = sandbox_up({pod(a), never}, opts_);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().status_code(), Code::kDeadlineExceeded) << up.error().message();
  EXPECT_THAT(up.error().message(), HasSubstr(key(b) + " container main not ready: port 1"));
  EXPECT_TRUE(Registry(opts_.state_dir).list()->empty());
  EXPECT_FALSE(std::filesystem::exists(netns_path(a)));
  EXPECT_FALSE(std::filesystem::exists(netns_path(b)));
  EXPECT_FALSE(link_exists(opts_.bridge));
  EXPECT_TRUE(processes_with(opts_.state_dir.string()).empty()) << "a shim survived";
  EXPECT_TRUE(processes_with("1000" + suffix_.substr(1)).empty()) << "a container survived";
}

TEST_F(SandboxTest, UpFailingHalfWayLeavesNothingBehind) {
  const std::string a = "alpha" + suffix_, b = "beta" + suffix_;
  // Something foreign already holds beta's netns pin: alpha gets fully created
  // (shim and all), then beta fails, and up must undo alpha too.
  std::filesystem::create_directories(opts_.netns_dir);
  const std::string foreign = netns_path(b);
  { std::ofstream(foreign) << "not ours"; }
  auto up = sandbox_up({pod(a), pod(b)}, opts_);
  ASSERT_FALSE(up.ok());
  EXPECT_EQ(up.error().status_code(), Code::kAlreadyExists) << up.error().message();
  // It was beta that failed, so alpha had been created and was rolled back.
  EXPECT_THAT(up.error().message(), HasSubstr(key(b) + ": netns pin"));

  EXPECT_TRUE(Registry(opts_.state_dir).list()->empty());
  EXPECT_FALSE(std::filesystem::exists(netns_path(a)));
  EXPECT_FALSE(link_exists(opts_.bridge));
  EXPECT_TRUE(processes_with(opts_.state_dir.string()).empty()) << "a shim survived";
  EXPECT_TRUE(processes_with("--name " + a).empty()) << "a container survived";
  for (const runtime::CgroupMount& m : cgroups_->mounts().mounts) {
    auto dir = cgroups_->dir(m, m.root);
    ASSERT_TRUE(dir.ok());
    EXPECT_FALSE(std::filesystem::exists(*dir / opts_.cgroup_parent)) << *dir;
  }
  // What was not ours is left alone.
  EXPECT_EQ(read_file(foreign), "not ours");
  std::filesystem::remove(foreign);
}

}  // namespace
}  // namespace nq::sandbox::testing

// The nodequake-agent binary with --runtime cri against a real containerd:
// targets listed with the safety verdicts, a partition and a CPU stress
// injected into real pods and measured, reverted; and the lifecycle cases --
// the pod deleted, containerd restarted, the agent killed -9, each in the
// middle of an injection, each ending with nothing left behind.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "agent/runtime/cri/cri_runtime.h"
#include "common/file.h"
#include "common/netns.h"
#include "tests/node/core/agent_harness.h"
#include "tests/node/cri/cri_fixture.h"
#include "tests/support/agent_process.h"
#include "tests/support/kernel_state.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
constexpr uint16_t kPort = 8080;

class CriAgentTest : public CriSuite {
 protected:
  void SetUp() override {
    CriSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    state_ = std::make_unique<TempDir>("cri-agent");
    ASSERT_TRUE(start_agent().ok()) << log_tail();
  }
  void TearDown() override {
    if (agent_) {
      auto st = agent_->stop(SIGTERM);
      EXPECT_TRUE(st.ok() && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << log_tail();
      agent_.reset();
    }
    if (HasFailure() && state_) std::cerr << "agent log:\n" << log_tail(20000);
    CriSuite::TearDown();
    state_.reset();
  }

  Status start_agent() {
    AgentProcessOptions o;
    o.binary = NQ_AGENT_PATH;
    o.state_dir = (state_->path() / "state").string();
    o.socket = (state_->path() / "agent.sock").string();
    o.sandbox_dir = (state_->path() / "sandbox").string();  // unused with cri
    o.log_file = (state_->path() / "agent.log").string();
    o.extra_args = {"--runtime",   "cri",   "--cri-socket", env().socket().string(),
                    "--node-name", "nqcri", "--bpf-idle",   "0s"};
    NQ_ASSIGN_OR_RETURN(agent_, AgentProcess::start(o, 30s));
    return ok();
  }
  std::string log_tail(size_t bytes = 4000) const {
    auto text = read_file(state_->path() / "agent.log");
    if (!text.ok()) return "";
    return text->size() <= bytes ? *text : text->substr(text->size() - bytes);
  }
  v1::Agent::Stub& stub() { return agent_->stub(); }

  runtime::PodInfo resolve(const std::string& ns, const std::string& name) {
    cri::CriRuntime::Options o;
    o.socket = env().socket().string();
    auto rt = cri::CriRuntime::connect(o);
    EXPECT_TRUE(rt.ok());
    if (!rt.ok()) return {};
    auto pod = (*rt)->get_pod(ns, name);
    EXPECT_TRUE(pod.ok()) << pod.error().message();
    return pod.ok() ? *pod : runtime::PodInfo{};
  }

  grpc::Status apply(const std::string& id, const std::string& ns, const std::string& pod,
                     const v1::FaultSpec& spec, v1::ApplyResponse* resp = nullptr) {
    v1::ApplyResponse local;
    return rpc(stub(), &v1::Agent::Stub::Apply, apply_request(id, ns, pod, spec),
               resp ? resp : &local);
  }
  grpc::Status revert(const std::string& id, v1::RevertResponse* resp = nullptr) {
    v1::RevertRequest req;
    req.set_id(id);
    v1::RevertResponse local;
    return rpc(stub(), &v1::Agent::Stub::Revert, req, resp ? resp : &local);
  }
  int active() {
    v1::ListResponse resp;
    EXPECT_TRUE(rpc(stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &resp).ok());
    return resp.injections_size();
  }

  // A client pod and a server pod (busybox httpd on kPort); the client's
  // resolved info and the server's IP.
  struct Pair {
    runtime::PodInfo client;
    PodHandle client_handle;
    std::string server_ip;
  };
  Pair client_server(const std::string& ns) {
    PodSpec server = labeled_pod(ns, "server", {{"app", "server"}});
    server.containers = {ContainerSpec{"httpd", {"httpd", "-f", "-p", std::to_string(kPort)}}};
    PodHandle s = run(server);
    PodHandle c = run(labeled_pod(ns, "client", {{"app", "client"}, {"chaos-ready", "true"}}));
    Pair p;
    if (s.sandbox_id.empty() || c.sandbox_id.empty()) return p;
    p.client = resolve(ns, "client");
    p.client_handle = c;
    p.server_ip = env().pod_ip(s.sandbox_id).value();
    // httpd may take a moment to listen.
    for (int i = 0; i < 100; ++i) {
      if (connect_from(p.client.netns_path, p.server_ip, kPort).ok()) break;
      std::this_thread::sleep_for(50ms);
    }
    return p;
  }

  std::unique_ptr<TempDir> state_;
  std::unique_ptr<AgentProcess> agent_;
};

v1::FaultSpec cpu(double load) {
  v1::FaultSpec s;
  s.mutable_cpu_stress()->set_load(load);
  return s;
}

std::string ns_for(const char* base) {
  return std::string(base) + "-" + std::to_string(::getpid());
}

TEST_F(CriAgentTest, ProbeAndTargets) {
  const std::string ns = ns_for("targets");
  run(labeled_pod(ns, "ready", {{"app", "a"}, {"chaos-ready", "true"}}));
  run(labeled_pod(ns, "unlabeled", {{"app", "a"}}));
  PodSpec host = labeled_pod(ns, "host", {{"app", "a"}, {"chaos-ready", "true"}});
  host.host_network = true;
  run(host);
  ASSERT_FALSE(HasFailure());

  v1::ProbeResponse probe;
  ASSERT_TRUE(rpc(stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &probe).ok());
  EXPECT_EQ(probe.runtime().name(), "containerd");
  EXPECT_NE(probe.runtime().version(), "");

  v1::ListTargetsRequest req;
  req.mutable_selector()->add_namespaces(ns);
  (*req.mutable_selector()->mutable_match_labels())["app"] = "a";
  req.set_include_ineligible(true);
  v1::ListTargetsResponse resp;
  ASSERT_TRUE(rpc(stub(), &v1::Agent::Stub::ListTargets, req, &resp).ok());
  std::map<std::string, v1::Pod> by_name;
  for (const auto& p : resp.pods()) by_name[p.ref().name()] = p;
  ASSERT_EQ(by_name.size(), 3u);
  EXPECT_TRUE(by_name["ready"].eligible());
  EXPECT_FALSE(by_name["ready"].netns().empty());
  EXPECT_EQ(by_name["ready"].containers_size(), 1);
  EXPECT_GT(by_name["ready"].containers(0).pid(), 0);
  EXPECT_FALSE(by_name["unlabeled"].eligible());
  EXPECT_FALSE(by_name["host"].eligible());

  // Refused at Apply too, naming the rule.
  grpc::Status st = apply("refused", ns, "unlabeled", partition(v1::DIRECTION_BOTH));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  st = apply("refused-host", ns, "host", partition(v1::DIRECTION_BOTH));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_EQ(active(), 0);
}

TEST_F(CriAgentTest, PartitionMeasuredAndReverted) {
  const std::string ns = ns_for("part");
  Pair p = client_server(ns);
  ASSERT_FALSE(p.server_ip.empty());
  Status before_ok = connect_from(p.client.netns_path, p.server_ip, kPort);
  ASSERT_TRUE(before_ok.ok()) << before_ok.error().message();
  auto netns = Netns::open(p.client.netns_path);
  ASSERT_TRUE(netns.ok());
  auto before = capture_kernel_state(*netns);
  ASSERT_TRUE(before.ok());

  grpc::Status st =
      apply("part-1", ns, "client", partition(v1::DIRECTION_BOTH, {{p.server_ip + "/32"}, {}}));
  ASSERT_TRUE(st.ok()) << st.error_message();
  Status during = connect_from(p.client.netns_path, p.server_ip, kPort, 1s);
  EXPECT_FALSE(during.ok()) << "connect went through a partition";

  ASSERT_TRUE(revert("part-1").ok());
  Status after_ok = connect_from(p.client.netns_path, p.server_ip, kPort);
  EXPECT_TRUE(after_ok.ok()) << after_ok.error().message();
  auto after = capture_kernel_state(*netns);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(diff(*before, *after), "");
}

TEST_F(CriAgentTest, CpuStressMeasuredAndReverted) {
  const std::string ns = ns_for("cpu");
  PodSpec spec = labeled_pod(ns, "busy");
  spec.containers = {ContainerSpec{"app", {"sleep", "3600"}, 100000}};  // 1 CPU
  run(spec);
  ASSERT_FALSE(HasFailure());
  // The pods' parent group outweighs a parallel build on this 2-core box.
  ASSERT_TRUE(env().prioritize_cpu().ok());
  runtime::ContainerInfo c = resolve(ns, "busy").containers.at(0);

  auto idle = cpu_percent(c, 1s);
  ASSERT_TRUE(idle.ok()) << idle.error().message();
  EXPECT_LT(*idle, 5.0);

  ASSERT_TRUE(apply("cpu-1", ns, "busy", cpu(50)).ok()) << log_tail();
  std::this_thread::sleep_for(500ms);  // the stressor's loop settles
  auto busy = cpu_percent(c, 3s);
  ASSERT_TRUE(busy.ok());
  EXPECT_NEAR(*busy, 50.0, 15.0);
  auto pids = cgroup_pids(c);
  ASSERT_TRUE(pids.ok());
  EXPECT_GT(pids->size(), 1u) << "the stressor runs in the container's cgroup";

  ASSERT_TRUE(revert("cpu-1").ok());
  for (int i = 0; i < 100; ++i) {
    pids = cgroup_pids(c);
    if (pids.ok() && pids->size() == 1) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, std::vector<pid_t>{c.pid}) << "only the container's own process is left";
  auto after = cpu_percent(c, 1s);
  ASSERT_TRUE(after.ok());
  EXPECT_LT(*after, 5.0);
}

TEST_F(CriAgentTest, PodDeletedMidInjection) {
  const std::string ns = ns_for("del");
  PodSpec spec = labeled_pod(ns, "victim");
  spec.containers = {ContainerSpec{"app", {"sleep", "3600"}, 100000}};
  PodHandle h = run(spec);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(apply("del-net", ns, "victim", partition(v1::DIRECTION_BOTH)).ok()) << log_tail();
  ASSERT_TRUE(apply("del-cpu", ns, "victim", cpu(30)).ok()) << log_tail();

  remove(h);
  // Both count as reverted: nothing left to clean, no error.
  for (const char* id : {"del-net", "del-cpu"}) {
    v1::RevertResponse resp;
    grpc::Status st = revert(id, &resp);
    EXPECT_TRUE(st.ok()) << id << ": " << st.error_message();
  }
  EXPECT_EQ(active(), 0);
  // A new Apply to the gone pod is NotFound, not a retry loop.
  grpc::Status st = apply("del-again", ns, "victim", partition(v1::DIRECTION_BOTH));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  std::this_thread::sleep_for(1s);
  const std::string log = log_tail(100000);
  size_t errors = 0;
  for (size_t pos = 0; (pos = log.find("[error]", pos)) != std::string::npos; ++pos) ++errors;
  EXPECT_EQ(errors, 0u) << log;
}

TEST_F(CriAgentTest, ContainerdRestartMidInjection) {
  const std::string ns = ns_for("restart");
  Pair p = client_server(ns);
  ASSERT_FALSE(p.server_ip.empty());
  ASSERT_TRUE(
      apply("rs-net", ns, "client", partition(v1::DIRECTION_BOTH, {{p.server_ip + "/32"}, {}}))
          .ok());
  ASSERT_TRUE(env().stop_daemon().ok());
  // The fault lives in the kernel, not in containerd: it holds meanwhile,
  // and resolving fails cleanly instead of hanging.
  EXPECT_FALSE(connect_from(p.client.netns_path, p.server_ip, kPort, 1s).ok());
  v1::ListTargetsResponse targets;
  grpc::Status lt = rpc(stub(), &v1::Agent::Stub::ListTargets, v1::ListTargetsRequest{}, &targets);
  EXPECT_FALSE(lt.ok());
  Status up = env().start_daemon();
  ASSERT_TRUE(up.ok()) << up.error().message() << env().log_tail();

  // The same pod, found again through the restarted containerd.
  auto again = resolve(ns, "client");
  EXPECT_EQ(again.netns_path, p.client.netns_path);
  EXPECT_TRUE(revert("rs-net").ok());
  EXPECT_TRUE(connect_from(p.client.netns_path, p.server_ip, kPort).ok());
  // The agent's channel to containerd reconnects by itself, within its
  // (capped) backoff.
  grpc::Status relisted;
  for (int i = 0; i < 50; ++i) {
    relisted = rpc(stub(), &v1::Agent::Stub::ListTargets, v1::ListTargetsRequest{}, &targets);
    if (relisted.ok()) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(relisted.ok()) << relisted.error_message();
}

// The inode of a network namespace file (/proc/PID/ns/net, /var/run/netns/x).
ino_t netns_inode(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST_F(CriAgentTest, ContainerRestartKeepsTheNetworkFault) {
  const std::string ns = ns_for("crnet");
  Pair p = client_server(ns);
  ASSERT_FALSE(p.server_ip.empty());
  auto netns = Netns::open(p.client.netns_path);
  ASSERT_TRUE(netns.ok());
  auto before = capture_kernel_state(*netns);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(
      apply("cr-net", ns, "client", partition(v1::DIRECTION_BOTH, {{p.server_ip + "/32"}, {}}))
          .ok())
      << log_tail();
  EXPECT_FALSE(connect_from(p.client.netns_path, p.server_ip, kPort, 1s).ok());

  // The kubelet restarts the client's container: new container, new pid,
  // same sandbox and so the same network namespace.
  const pid_t old_pid = p.client.containers.at(0).pid;
  auto new_id =
      env().restart_container(p.client_handle.sandbox_id, p.client_handle.container_ids.at(0));
  ASSERT_TRUE(new_id.ok()) << new_id.error().message();
  runtime::PodInfo again = resolve(ns, "client");
  ASSERT_EQ(again.containers.size(), 1u);
  EXPECT_EQ(again.containers[0].id, *new_id);
  ASSERT_GT(again.containers[0].pid, 0);
  EXPECT_NE(again.containers[0].pid, old_pid);
  EXPECT_EQ(again.netns_path, p.client.netns_path);
  EXPECT_EQ(netns_inode("/proc/" + std::to_string(again.containers[0].pid) + "/ns/net"),
            netns_inode(p.client.netns_path))
      << "the new container joined the sandbox's netns";

  // The fault holds for the new container: still listed, still cutting.
  v1::ListResponse list;
  ASSERT_TRUE(rpc(stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  ASSERT_EQ(list.injections_size(), 1);
  EXPECT_EQ(list.injections(0).state(), v1::INJECTION_STATE_ACTIVE);
  EXPECT_FALSE(connect_from(again.netns_path, p.server_ip, kPort, 1s).ok())
      << "connect went through the partition after the restart";

  ASSERT_TRUE(revert("cr-net").ok());
  EXPECT_TRUE(connect_from(again.netns_path, p.server_ip, kPort).ok());
  auto after = capture_kernel_state(*netns);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(diff(*before, *after), "");
}

TEST_F(CriAgentTest, ContainerRestartReportsTheStressLost) {
  const std::string ns = ns_for("crcpu");
  PodSpec spec = labeled_pod(ns, "busy");
  spec.containers = {ContainerSpec{"app", {"sleep", "3600"}, 100000}};  // 1 CPU
  PodHandle h = run(spec);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(env().prioritize_cpu().ok());
  const runtime::ContainerInfo old = resolve(ns, "busy").containers.at(0);
  auto old_dir = cgroup_dir(old);
  ASSERT_TRUE(old_dir.ok()) << old_dir.error().message();

  ASSERT_TRUE(apply("cr-cpu", ns, "busy", cpu(50)).ok()) << log_tail();
  auto pids = cgroup_pids(old);
  ASSERT_TRUE(pids.ok());
  pid_t stressor = 0;
  for (pid_t p : *pids)
    if (p != old.pid) stressor = p;
  ASSERT_GT(stressor, 0) << "the stressor runs in the container's cgroup";

  auto new_id = env().restart_container(h.sandbox_id, h.container_ids.at(0));
  ASSERT_TRUE(new_id.ok()) << new_id.error().message();

  // Within a few of the backend's ticks: reported lost, stressor gone.
  std::string state;
  for (int i = 0; i < 100 && !state.starts_with("lost: "); ++i) {
    std::this_thread::sleep_for(50ms);
    v1::ListResponse list;
    ASSERT_TRUE(rpc(stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
    ASSERT_EQ(list.injections_size(), 1);
    auto it = list.injections(0).details().find("stressor");
    state = it == list.injections(0).details().end() ? "" : it->second;
  }
  EXPECT_TRUE(state.starts_with("lost: container restarted")) << state;
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(stressor)))
      << "nq-stressor " << stressor << " still runs";

  // The new container runs unstressed, alone in its new cgroup.
  const runtime::ContainerInfo now = resolve(ns, "busy").containers.at(0);
  EXPECT_EQ(now.id, *new_id);
  ASSERT_GT(now.pid, 0);
  EXPECT_NE(cgroup_dir(now).value(), *old_dir);
  pids = cgroup_pids(now);
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, std::vector<pid_t>{now.pid});
  auto usage = cpu_percent(now, 1s);
  ASSERT_TRUE(usage.ok());
  EXPECT_LT(*usage, 5.0);
  // With the stressor out, nothing holds the old container's cgroup.
  bool old_gone = false;
  for (int i = 0; i < 100 && !old_gone; ++i) {
    old_gone = !std::filesystem::exists(*old_dir);
    if (!old_gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(old_gone) << *old_dir << " is left behind";

  // Revert only confirms; nothing is listed after.
  ASSERT_TRUE(revert("cr-cpu").ok());
  EXPECT_EQ(active(), 0);
  const std::string log = log_tail(100000);
  EXPECT_EQ(log.find("[error]"), std::string::npos) << log;
}

TEST_F(CriAgentTest, AgentKilledMidInjection) {
  const std::string ns = ns_for("kill");
  Pair p = client_server(ns);
  ASSERT_FALSE(p.server_ip.empty());
  auto netns = Netns::open(p.client.netns_path);
  ASSERT_TRUE(netns.ok());
  auto before = capture_kernel_state(*netns);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(
      apply("k9-net", ns, "client", partition(v1::DIRECTION_BOTH, {{p.server_ip + "/32"}, {}}))
          .ok());
  ASSERT_TRUE(apply("k9-cpu", ns, "client", cpu(20)).ok()) << log_tail();

  ASSERT_TRUE(agent_->stop(SIGKILL).ok());
  agent_.reset();
  // The restart reconciles the journal: both injections are reverted.
  ASSERT_TRUE(start_agent().ok()) << log_tail();
  EXPECT_EQ(active(), 0);
  EXPECT_TRUE(connect_from(p.client.netns_path, p.server_ip, kPort).ok());
  runtime::ContainerInfo c = resolve(ns, "client").containers.at(0);
  std::vector<pid_t> left;
  for (int i = 0; i < 100; ++i) {
    auto pids = cgroup_pids(c);
    ASSERT_TRUE(pids.ok());
    left = *pids;
    if (left.size() == 1) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(left, std::vector<pid_t>{c.pid});
  auto after = capture_kernel_state(*netns);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(diff(*before, *after), "");
}

}  // namespace
}  // namespace nq::testing

// The cri runtime against a real containerd: pods made through CRI, resolved
// to labels, IPs, netns and per-container pid and cgroups, and checked
// against the kernel; selectors and the safety rules over them.
#include "agent/runtime/cri/cri_runtime.h"

#include <unistd.h>

#include "agent/runtime/selector.h"
#include "common/netns.h"
#include "tests/node/cri/cri_fixture.h"

namespace nq::testing {
namespace {

namespace fs = std::filesystem;

class CriRuntimeTest : public CriSuite {
 protected:
  std::unique_ptr<cri::CriRuntime> connect() {
    cri::CriRuntime::Options o;
    o.socket = env().socket().string();
    auto rt = cri::CriRuntime::connect(o);
    EXPECT_TRUE(rt.ok()) << rt.error().message();
    return rt.ok() ? std::move(*rt) : nullptr;
  }
};

TEST_F(CriRuntimeTest, VersionNamesContainerd) {
  auto rt = connect();
  ASSERT_NE(rt, nullptr);
  EXPECT_EQ(rt->name(), "containerd");
  EXPECT_NE(rt->version(), "");
}

TEST_F(CriRuntimeTest, ResolvesAPodToKernelObjects) {
  PodSpec spec = labeled_pod("shop", pod_name("web"), {{"app", "web"}, {"chaos-ready", "true"}});
  spec.containers = {ContainerSpec{"app", {"sleep", "3600"}},
                     ContainerSpec{"side", {"sleep", "3600"}}};
  PodHandle h = run(spec);
  ASSERT_FALSE(h.sandbox_id.empty());
  auto rt = connect();
  ASSERT_NE(rt, nullptr);

  auto pod = rt->get_pod("shop", spec.name);
  ASSERT_TRUE(pod.ok()) << pod.error().message();
  EXPECT_EQ(pod->labels, spec.labels);
  EXPECT_EQ(pod->uid, "shop-" + spec.name + "-" + std::to_string(::getpid()));
  EXPECT_FALSE(pod->host_network);
  ASSERT_EQ(pod->ips.size(), 1u);
  EXPECT_EQ(pod->ips[0], env().pod_ip(h.sandbox_id).value());
  EXPECT_TRUE(pod->ips[0].starts_with(env().subnet().substr(0, env().subnet().rfind('.'))))
      << pod->ips[0] << " not in " << env().subnet();

  // The netns path names the namespace the containers' processes are in.
  auto netns = Netns::open(pod->netns_path);
  ASSERT_TRUE(netns.ok()) << pod->netns_path << ": " << netns.error().message();
  ASSERT_EQ(pod->containers.size(), 2u);
  for (const auto& c : pod->containers) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(c.name == "app" || c.name == "side");
    EXPECT_TRUE(std::find(h.container_ids.begin(), h.container_ids.end(), c.id) !=
                h.container_ids.end());
    ASSERT_GT(c.pid, 0);
    auto proc_ns = Netns::open("/proc/" + std::to_string(c.pid) + "/ns/net");
    ASSERT_TRUE(proc_ns.ok());
    EXPECT_EQ(proc_ns->id(), netns->id());
    // cgroups: the process's own, under the pod's cgroup parent (cgroupfs
    // driver: <parent>/<container id>), in every v1 hierarchy.
    const std::string* mem = runtime::find_cgroup_path(c.cgroups, "memory");
    ASSERT_NE(mem, nullptr);
    EXPECT_EQ(*mem, env().cgroup_parent() + "/" + c.id);
    const std::string* cpu = runtime::find_cgroup_path(c.cgroups, "cpu");
    ASSERT_NE(cpu, nullptr);
    EXPECT_EQ(*cpu, *mem);
    auto pids = cgroup_pids(c);
    ASSERT_TRUE(pids.ok()) << pids.error().message();
    EXPECT_NE(std::find(pids->begin(), pids->end(), c.pid), pids->end());
  }
}

TEST_F(CriRuntimeTest, SelectorAndSafetyRules) {
  const std::string ns = "sel-" + std::to_string(::getpid());
  PodHandle ready = run(labeled_pod(ns, "ready", {{"app", "api"}, {"chaos-ready", "true"}}));
  PodHandle unlabeled = run(labeled_pod(ns, "unlabeled", {{"app", "api"}}));
  PodHandle protected_pod =
      run(labeled_pod("kube-system", pod_name("dns"), {{"app", "api"}, {"chaos-ready", "true"}}));
  PodSpec host = labeled_pod(ns, "host", {{"app", "api"}, {"chaos-ready", "true"}});
  host.host_network = true;
  PodHandle host_pod = run(host);
  PodHandle other = run(labeled_pod(ns, "other", {{"app", "db"}, {"chaos-ready", "true"}}));
  ASSERT_FALSE(HasFailure());

  auto rt = connect();
  ASSERT_NE(rt, nullptr);
  auto pods = rt->list_pods();
  ASSERT_TRUE(pods.ok()) << pods.error().message();

  runtime::Selector sel;
  sel.namespaces = {ns, "kube-system"};
  sel.match_labels = {{"app", "api"}};
  std::map<std::string, std::string> verdicts;  // pod -> "" (eligible) or the reason
  for (const auto& p : *pods) {
    if (!sel.matches(p)) continue;
    Status st = runtime::check_eligible(p, runtime::SafetyPolicy{});
    verdicts[p.key()] = st.ok() ? "" : st.error().message();
  }
  ASSERT_EQ(verdicts.size(), 4u) << "app=db and other namespaces' pods do not match";
  EXPECT_EQ(verdicts[ns + "/ready"], "");
  EXPECT_NE(verdicts[ns + "/unlabeled"].find("chaos-ready"), std::string::npos)
      << verdicts[ns + "/unlabeled"];
  EXPECT_NE(verdicts["kube-system/" + pod_name("dns")].find("kube-system"), std::string::npos)
      << verdicts["kube-system/" + pod_name("dns")];
  EXPECT_NE(verdicts[ns + "/host"].find("host"), std::string::npos) << verdicts[ns + "/host"];

  // The hostNetwork pod has no netns of its own and no pod IP.
  auto hp = rt->get_pod(ns, "host");
  ASSERT_TRUE(hp.ok());
  EXPECT_TRUE(hp->host_network);
  EXPECT_EQ(hp->netns_path, "");
  EXPECT_TRUE(hp->ips.empty());
}

TEST_F(CriRuntimeTest, RemovedPodIsNotFound) {
  PodHandle h = run(labeled_pod("shop", pod_name("gone")));
  auto rt = connect();
  ASSERT_NE(rt, nullptr);
  ASSERT_TRUE(rt->get_pod("shop", pod_name("gone")).ok());
  remove(h);
  auto pod = rt->get_pod("shop", pod_name("gone"));
  ASSERT_FALSE(pod.ok());
  EXPECT_EQ(pod.error().status_code(), Code::kNotFound) << pod.error().message();
  auto pods = rt->list_pods();
  ASSERT_TRUE(pods.ok());
  for (const auto& p : *pods) EXPECT_NE(p.name, pod_name("gone"));
}

TEST_F(CriRuntimeTest, StoppedContainerHasNoPid) {
  PodSpec spec = labeled_pod("shop", pod_name("exit"));
  spec.containers = {ContainerSpec{"once", {"true"}}};
  PodHandle h = run(spec);
  auto rt = connect();
  ASSERT_NE(rt, nullptr);
  // `true` exits at once; the runtime reports it exited, the pod stays.
  runtime::ContainerInfo c;
  for (int i = 0; i < 100; ++i) {
    auto pod = rt->get_pod("shop", spec.name);
    ASSERT_TRUE(pod.ok()) << pod.error().message();
    ASSERT_EQ(pod->containers.size(), 1u);
    c = pod->containers[0];
    if (c.pid == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(c.pid, 0);
  EXPECT_TRUE(c.cgroups.by_hierarchy.empty());
}

TEST_F(CriRuntimeTest, AutoDetectsTheSocketUnderAHostRoot) {
  // A host root whose /run/containerd/containerd.sock is our socket: what
  // the agent sees in a DaemonSet with the host's / at /host.
  const fs::path root = env().dir() / "hostroot";
  fs::create_directories(root / "run/containerd");
  fs::create_symlink(env().socket(), root / "run/containerd/containerd.sock");
  cri::CriRuntime::Options o;
  o.roots.host_root = root;
  auto rt = cri::CriRuntime::connect(o);
  ASSERT_TRUE(rt.ok()) << rt.error().message();
  EXPECT_EQ((*rt)->socket(), root / "run/containerd/containerd.sock");
  EXPECT_EQ((*rt)->name(), "containerd");

  cri::CriRuntime::Options none;
  none.roots.host_root = env().dir() / "empty-root";
  auto missing = cri::CriRuntime::connect(none);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status_code(), Code::kNotFound);
}

}  // namespace
}  // namespace nq::testing

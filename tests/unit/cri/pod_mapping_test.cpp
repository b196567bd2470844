#include "agent/runtime/cri/pod_mapping.h"

#include <gtest/gtest.h>

namespace nq::cri {
namespace {

// Shaped like containerd 1.6's verbose PodSandboxStatus "info" (trimmed: the
// real one also carries the image, snapshot key, runtime options and the
// whole sandbox config).
constexpr const char* kSandboxInfo = R"({
  "pid": 4242,
  "processStatus": "running",
  "netNamespaceClosed": false,
  "runtimeHandler": "",
  "runtimeType": "io.containerd.runc.v2",
  "config": {"metadata": {"name": "web-0", "uid": "u-1", "namespace": "shop"}},
  "runtimeSpec": {
    "ociVersion": "1.0.2-dev",
    "process": {"args": ["/pause"]},
    "linux": {
      "cgroupsPath": "/kubepods/besteffort/podu-1/0123abcd",
      "namespaces": [
        {"type": "pid"},
        {"type": "ipc"},
        {"type": "uts"},
        {"type": "mount"},
        {"type": "network", "path": "/var/run/netns/cni-7d1c2f0e-aaaa-bbbb-cccc-0123456789ab"}
      ]
    }
  }
})";

// containerd's verbose ContainerStatus "info": the container's own pid, and
// a spec that joins the sandbox's namespaces by /proc path.
constexpr const char* kContainerInfo = R"({
  "sandboxID": "0123abcd",
  "pid": 4300,
  "removing": false,
  "snapshotKey": "k",
  "snapshotter": "overlayfs",
  "runtimeSpec": {
    "linux": {
      "cgroupsPath": "kubepods-besteffort-podu_1.slice:cri-containerd:9f9f",
      "namespaces": [{"type": "network", "path": "/proc/4242/ns/net"}, {"type": "pid"}]
    }
  }
})";

TEST(VerboseInfo, ContainerdSandbox) {
  VerboseInfo info = parse_verbose_info(kSandboxInfo).value();
  EXPECT_EQ(info.pid, 4242);
  EXPECT_EQ(info.netns_path, "/var/run/netns/cni-7d1c2f0e-aaaa-bbbb-cccc-0123456789ab");
  EXPECT_EQ(info.cgroups_path, "/kubepods/besteffort/podu-1/0123abcd");
}

TEST(VerboseInfo, ContainerdContainer) {
  VerboseInfo info = parse_verbose_info(kContainerInfo).value();
  EXPECT_EQ(info.pid, 4300);
  EXPECT_EQ(info.netns_path, "/proc/4242/ns/net");
  EXPECT_EQ(info.cgroups_path, "kubepods-besteffort-podu_1.slice:cri-containerd:9f9f");
}

TEST(VerboseInfo, ToleratesMissingFields) {
  // No spec at all (a runtime that reports only the pid), a spec without
  // linux, a network namespace without a path, nulls, empty input.
  EXPECT_EQ(parse_verbose_info(R"({"pid": 7})").value().pid, 7);
  EXPECT_EQ(parse_verbose_info(R"({"pid": 7, "runtimeSpec": {}})").value().netns_path, "");
  VerboseInfo fresh =
      parse_verbose_info(R"({"runtimeSpec": {"linux": {"namespaces": [{"type": "network"}]}}})")
          .value();
  EXPECT_EQ(fresh.pid, 0);
  EXPECT_EQ(fresh.netns_path, "");
  EXPECT_EQ(parse_verbose_info(R"({"pid": null, "runtimeSpec": null})").value().pid, 0);
  EXPECT_EQ(parse_verbose_info("").value().pid, 0);
  EXPECT_EQ(parse_verbose_info("  \n").value().pid, 0);
  // Entries that are not objects are skipped, not fatal.
  EXPECT_EQ(
      parse_verbose_info(
          R"({"runtimeSpec": {"linux": {"namespaces": [1, {"type": "network", "path": "/n"}]}}})")
          .value()
          .netns_path,
      "/n");
}

TEST(VerboseInfo, ErrorsNameTheField) {
  auto not_json = parse_verbose_info("{pid: 1");
  ASSERT_FALSE(not_json.ok());
  EXPECT_EQ(not_json.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(not_json.error().message().find("info"), std::string::npos);

  EXPECT_FALSE(parse_verbose_info("[1,2]").ok());

  auto bad_pid = parse_verbose_info(R"({"pid": "4242"})");
  ASSERT_FALSE(bad_pid.ok());
  EXPECT_NE(bad_pid.error().message().find("info.pid"), std::string::npos);

  auto negative = parse_verbose_info(R"({"pid": -1})");
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.error().message().find("info.pid"), std::string::npos);

  auto bad_path = parse_verbose_info(
      R"({"runtimeSpec": {"linux": {"namespaces": [{"type": "ipc"}, {"type": "network", "path": 3}]}}})");
  ASSERT_FALSE(bad_path.ok());
  EXPECT_NE(bad_path.error().message().find("info.runtimeSpec.linux.namespaces[1].path"),
            std::string::npos)
      << bad_path.error().message();
}

TEST(InfoDocument, TakesTheInfoKey) {
  criv1::PodSandboxStatusResponse resp;
  EXPECT_EQ(info_document(resp.info()), "");
  (*resp.mutable_info())["other"] = "{}";
  (*resp.mutable_info())["info"] = R"({"pid": 1})";
  EXPECT_EQ(info_document(resp.info()), R"({"pid": 1})");
}

criv1::PodSandboxStatus sandbox_status() {
  criv1::PodSandboxStatus s;
  s.set_id("0123abcd");
  s.mutable_metadata()->set_name("web-0");
  s.mutable_metadata()->set_namespace_("shop");
  s.mutable_metadata()->set_uid("u-1");
  (*s.mutable_labels())["app"] = "web";
  (*s.mutable_labels())["chaos-ready"] = "true";
  s.mutable_network()->set_ip("10.234.0.5");
  s.mutable_network()->add_additional_ips()->set_ip("fd00::5");
  return s;
}

TEST(MapSandbox, IdentityLabelsIpsAndNetns) {
  VerboseInfo info = parse_verbose_info(kSandboxInfo).value();
  runtime::PodInfo pod = map_sandbox(sandbox_status(), info, {});
  EXPECT_EQ(pod.key(), "shop/web-0");
  EXPECT_EQ(pod.uid, "u-1");
  EXPECT_EQ(pod.labels,
            (std::map<std::string, std::string>{{"app", "web"}, {"chaos-ready", "true"}}));
  EXPECT_EQ(pod.ips, (std::vector<std::string>{"10.234.0.5", "fd00::5"}));
  EXPECT_FALSE(pod.host_network);
  EXPECT_EQ(pod.netns_path, "/var/run/netns/cni-7d1c2f0e-aaaa-bbbb-cccc-0123456789ab");
  EXPECT_TRUE(pod.containers.empty());
}

TEST(MapSandbox, HostRootPrefixesHostPaths) {
  VerboseInfo info = parse_verbose_info(kSandboxInfo).value();
  runtime::PodInfo pod = map_sandbox(sandbox_status(), info, {"/host", "/host/proc"});
  EXPECT_EQ(pod.netns_path, "/host/var/run/netns/cni-7d1c2f0e-aaaa-bbbb-cccc-0123456789ab");
}

TEST(MapSandbox, NetnsFromThePidWithoutASpecPath) {
  VerboseInfo info;
  info.pid = 4242;
  EXPECT_EQ(map_sandbox(sandbox_status(), info, {"/", "/host/proc"}).netns_path,
            "/host/proc/4242/ns/net");
  // Neither: nothing to enter, and check_eligible refuses it.
  EXPECT_EQ(map_sandbox(sandbox_status(), VerboseInfo{}, {}).netns_path, "");
}

TEST(MapSandbox, HostNetworkHasNoNetnsNorIps) {
  criv1::PodSandboxStatus s = sandbox_status();
  s.mutable_linux()->mutable_namespaces()->mutable_options()->set_network(criv1::NODE);
  s.mutable_network()->set_ip("192.168.1.10");  // the node's address
  VerboseInfo info = parse_verbose_info(kSandboxInfo).value();
  info.netns_path.clear();
  runtime::PodInfo pod = map_sandbox(s, info, {});
  EXPECT_TRUE(pod.host_network);
  EXPECT_EQ(pod.netns_path, "");
  EXPECT_TRUE(pod.ips.empty());
}

TEST(MapContainer, PidOnlyWhileRunning) {
  criv1::ContainerStatus st;
  st.set_id("9f9f");
  st.mutable_metadata()->set_name("app");
  st.set_state(criv1::CONTAINER_RUNNING);
  VerboseInfo info = parse_verbose_info(kContainerInfo).value();
  runtime::ContainerInfo c = map_container(st, info);
  EXPECT_EQ(c.name, "app");
  EXPECT_EQ(c.id, "9f9f");
  EXPECT_EQ(c.pid, 4300);

  st.set_state(criv1::CONTAINER_EXITED);
  EXPECT_EQ(map_container(st, info).pid, 0);
}

TEST(UnderRoot, JoinsAbsolutePaths) {
  EXPECT_EQ(under_root("/", "/run/x.sock"), "/run/x.sock");
  EXPECT_EQ(under_root("", "/run/x.sock"), "/run/x.sock");
  EXPECT_EQ(under_root("/host", "/run/x.sock"), "/host/run/x.sock");
}

}  // namespace
}  // namespace nq::cri

// The agent in a DaemonSet: which of the cgroup mounts it sees is the host's
// (--host-root), and the directories a pod's cgroup paths map to.
#include <gtest/gtest.h>

#include "agent/runtime/cgroup.h"

namespace nq::runtime {
namespace {

// An agent container's own mount table with the host's / at /host (rbind):
// runc's view of the agent's own cgroup first (roots are the agent's
// container directory), then the host's whole cgroupfs under /host.
constexpr const char* kDaemonSetHostRoot =
    "700 650 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs rw\n"
    "701 700 0:29 /kubepods/podA/agent /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n"
    "702 700 0:32 /kubepods/podA/agent /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
    "703 700 0:38 /kubepods/podA/agent /sys/fs/cgroup/unified ro - cgroup2 cgroup2 rw\n"
    "800 650 8:1 / /host rw - ext4 /dev/sda1 rw\n"
    "831 800 0:28 / /host/sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    "832 831 0:29 / /host/sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    "835 831 0:32 / /host/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "841 831 0:38 / /host/sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

// The chart's layout: the host's /sys/fs/cgroup mounted over the
// container's own (hostPath), so the host's mounts come later at the same
// paths and hide runc's.
constexpr const char* kDaemonSetOverSys =
    "701 700 0:29 /kubepods/podA/agent /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n"
    "702 700 0:32 /kubepods/podA/agent /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
    "900 650 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    "901 900 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    "902 900 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";

// The node test's layout: the host's own mounts and an rbind of them under
// a host root, all with root "/".
constexpr const char* kBothWhole =
    "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "932 931 0:29 / /tmp/nq/host/sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    "935 931 0:32 / /tmp/nq/host/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";

const CgroupPaths kPod = parse_proc_cgroup(
    "4:memory:/kubepods/podB/c1\n1:cpu:/kubepods/podB/c1\n"
    "0::/kubepods/podB/c1\n");

TEST(CgroupHostRoot, TheHostsWholeHierarchyWinsOverTheContainersOwnView) {
  for (const char* host_root : {"/host", "/"}) {
    auto m = parse_mountinfo(kDaemonSetHostRoot, host_root);
    ASSERT_TRUE(m.ok()) << m.error().message();
    ASSERT_EQ(m->mounts.size(), 3u) << "cpu, memory, v2";
    const CgroupFs fs(*m);
    // Whatever the host root, only the mounts with root "/" hold another
    // pod's cgroup: the agent's own view would refuse podB.
    EXPECT_EQ(*fs.dir_for(kPod, "memory"), "/host/sys/fs/cgroup/memory/kubepods/podB/c1")
        << host_root;
    EXPECT_EQ(*fs.dir_for(kPod, "cpu"), "/host/sys/fs/cgroup/cpu/kubepods/podB/c1");
    EXPECT_EQ(*fs.dir_for(kPod, ""), "/host/sys/fs/cgroup/unified/kubepods/podB/c1");
  }
}

TEST(CgroupHostRoot, ChartLayoutTakesTheMountsOnTop) {
  auto m = parse_mountinfo(kDaemonSetOverSys, "/host");
  ASSERT_TRUE(m.ok());
  const CgroupFs fs(*m);
  EXPECT_EQ(*fs.dir_for(kPod, "memory"), "/sys/fs/cgroup/memory/kubepods/podB/c1");
  EXPECT_EQ(m->v1("cpu")->root, "/");
}

TEST(CgroupHostRoot, TiesGoToTheHostRoot) {
  auto under = parse_mountinfo(kBothWhole, "/tmp/nq/host");
  ASSERT_TRUE(under.ok());
  EXPECT_EQ(*CgroupFs(*under).dir_for(kPod, "cpu"),
            "/tmp/nq/host/sys/fs/cgroup/cpu/kubepods/podB/c1");
  // Component-wise: /tmp/nq/hostX is not under /tmp/nq/host.
  auto trailing = parse_mountinfo(kBothWhole, "/tmp/nq/host/");
  ASSERT_TRUE(trailing.ok());
  EXPECT_EQ(trailing->v1("memory")->mount_point, "/tmp/nq/host/sys/fs/cgroup/memory");
  auto other = parse_mountinfo(kBothWhole, "/tmp/nq/hos");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->v1("memory")->mount_point, "/sys/fs/cgroup/memory");
  // Without a host root, the first (the agent runs on the host itself).
  auto plain = parse_mountinfo(kBothWhole);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->v1("cpu")->mount_point, "/sys/fs/cgroup/cpu");
}

TEST(CgroupHostRoot, APrefixMapsAnotherNamespacesTable) {
  // The host's own table (mount points are host paths), seen under /host.
  auto m = parse_mountinfo("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  ASSERT_TRUE(m.ok());
  const CgroupFs fs(*m, "/host");
  EXPECT_EQ(fs.prefix(), "/host");
  EXPECT_EQ(*fs.dir_for(kPod, "cpu"), "/host/sys/fs/cgroup/cpu/kubepods/podB/c1");
}

TEST(CgroupHostRoot, OnlyTheContainersViewRefusesOtherPodsNamingTheMount) {
  // No host cgroupfs mounted at all: the error says which part is mounted.
  auto m = parse_mountinfo(
      "702 700 0:32 /kubepods/podA/agent /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
      "/host");
  ASSERT_TRUE(m.ok());
  auto dir = CgroupFs(*m).dir_for(kPod, "memory");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(dir.error().message().find("/kubepods/podA/agent"), std::string::npos)
      << dir.error().message();
}

}  // namespace
}  // namespace nq::runtime

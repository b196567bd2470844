// /proc/PID/cgroup and mountinfo parsing, and the directories they resolve to.
#include "agent/runtime/cgroup.h"

#include <gtest/gtest.h>

namespace nq::runtime {
namespace {

// This machine's shape: v1 hybrid, cpu and cpuacct separate, an empty cgroup2.
constexpr const char* kHybridCgroup =
    "9:name=systemd:/\n8:pids:/nodequake/podu1/c\n7:blkio:/nodequake/podu1/c\n6:freezer:/\n"
    "5:devices:/\n4:memory:/nodequake/podu1/c\n3:cpuset:/\n2:cpuacct:/x\n1:cpu:/x\n"
    "0::/nodequake/podu1/c\n";

constexpr const char* kHybridMountinfo =
    "23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:7 - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup "
    "rw,xattr,release_agent=/lib/x,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
    // A bind mount of the memory hierarchy elsewhere is the same hierarchy.
    "90 31 0:32 /nodequake /mnt/mem\\040cg rw - cgroup cgroup rw,memory\n";

constexpr const char* kPureV2Mountinfo =
    "25 1 0:22 / /sys rw - sysfs sysfs rw\n"
    "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

// A Debian v1 layout with cpu and cpuacct co-mounted.
constexpr const char* kCoMountedMountinfo =
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";

TEST(ProcCgroup, ParsesV1HybridAndV2) {
  const CgroupPaths p = parse_proc_cgroup(kHybridCgroup);
  EXPECT_EQ(p.by_hierarchy.size(), 10u);
  EXPECT_EQ(p.by_hierarchy.at("memory"), "/nodequake/podu1/c");
  EXPECT_EQ(p.by_hierarchy.at("name=systemd"), "/");
  EXPECT_EQ(p.by_hierarchy.at(""), "/nodequake/podu1/c");

  const CgroupPaths v2 = parse_proc_cgroup("0::/kubepods.slice/pod:x/c1\n");
  EXPECT_EQ(v2.by_hierarchy,
            (std::map<std::string, std::string>{{"", "/kubepods.slice/pod:x/c1"}}));
  // Garbage lines are skipped rather than failing the whole read.
  EXPECT_EQ(parse_proc_cgroup("junk\n\n1:cpu:/a\n").by_hierarchy.size(), 1u);
}

TEST(ProcCgroup, FindsControllersInCoMountedKeys) {
  const CgroupPaths p = parse_proc_cgroup("4:cpu,cpuacct:/a\n3:memory:/b\n0::/c\n");
  ASSERT_NE(find_cgroup_path(p, "cpuacct"), nullptr);
  EXPECT_EQ(*find_cgroup_path(p, "cpuacct"), "/a");
  EXPECT_EQ(*find_cgroup_path(p, "cpu"), "/a");
  EXPECT_EQ(*find_cgroup_path(p, ""), "/c");
  EXPECT_EQ(find_cgroup_path(p, "pids"), nullptr);
  EXPECT_EQ(find_cgroup_path(p, "cpu,"), nullptr);
}

TEST(Mountinfo, HybridHost) {
  auto m = parse_mountinfo(kHybridMountinfo);
  ASSERT_TRUE(m.ok()) << m.error().message();
  ASSERT_EQ(m->mounts.size(), 6u);  // 5 v1 + cgroup2; the bind mount is dropped
  EXPECT_FALSE(m->pure_v2());
  ASSERT_NE(m->v1("memory"), nullptr);
  EXPECT_EQ(m->v1("memory")->mount_point, "/sys/fs/cgroup/memory");
  EXPECT_EQ(m->v1("name=systemd")->key, "name=systemd");
  EXPECT_EQ(m->v1("freezer"), nullptr);
  ASSERT_NE(m->unified(), nullptr);
  EXPECT_EQ(m->unified()->mount_point, "/sys/fs/cgroup/unified");
  EXPECT_TRUE(m->unified()->controllers.empty());
}

TEST(Mountinfo, PureV2AndCoMounted) {
  auto v2 = parse_mountinfo(kPureV2Mountinfo);
  ASSERT_TRUE(v2.ok());
  EXPECT_TRUE(v2->pure_v2());
  ASSERT_EQ(v2->mounts.size(), 1u);
  EXPECT_EQ(v2->unified()->key, "");

  auto co = parse_mountinfo(kCoMountedMountinfo);
  ASSERT_TRUE(co.ok());
  ASSERT_EQ(co->mounts.size(), 1u);
  EXPECT_EQ(co->mounts[0].key, "cpu,cpuacct");
  EXPECT_EQ(co->v1("cpuacct"), co->v1("cpu"));
  EXPECT_FALSE(co->pure_v2());
}

TEST(Mountinfo, UnescapesAndRejectsMalformedLines) {
  auto m = parse_mountinfo("90 31 0:32 /n /mnt/mem\\040cg rw - cgroup cgroup rw,memory\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->mounts[0].mount_point, "/mnt/mem cg");
  EXPECT_EQ(m->mounts[0].root, "/n");
  auto bad = parse_mountinfo("23 1 0:21 / /sys rw\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "mountinfo:1: expected \"ID PARENT DEV ROOT MOUNTPOINT OPTIONS "
            "... - FSTYPE SOURCE OPTIONS\"");
}

TEST(CgroupFs, ResolvesProcessDirectoriesUnderAHostRoot) {
  auto m = parse_mountinfo(kHybridMountinfo);
  ASSERT_TRUE(m.ok());
  const CgroupPaths p = parse_proc_cgroup(kHybridCgroup);
  const CgroupFs local(*m);
  EXPECT_EQ(*local.dir_for(p, "memory"), "/sys/fs/cgroup/memory/nodequake/podu1/c");
  EXPECT_EQ(*local.dir_for(p, ""), "/sys/fs/cgroup/unified/nodequake/podu1/c");
  EXPECT_EQ(local.dir_for(p, "cpuset").error().status_code(), Code::kNotFound)
      << "cpuset is not mounted in the sample";

  // The agent in a container sees the host's cgroupfs under /host.
  const CgroupFs host(*m, "/host");
  EXPECT_EQ(*host.dir_for(p, "pids"), "/host/sys/fs/cgroup/pids/nodequake/podu1/c");
  EXPECT_EQ(host.dir_for(p, "devices").error().status_code(), Code::kNotFound);
  EXPECT_EQ(host.dir_for(parse_proc_cgroup("4:memory:/a\n"), "pids").error().status_code(),
            Code::kNotFound);
}

TEST(CgroupFs, HonoursTheMountedRoot) {
  CgroupMount m;
  m.key = "memory";
  m.controllers = {"memory"};
  m.mount_point = "/sys/fs/cgroup/memory";
  m.root = "/kubepods";
  const CgroupFs fs(CgroupMounts{{m}});
  EXPECT_EQ(*fs.dir(m, "/kubepods/pod1"), "/sys/fs/cgroup/memory/pod1");
  EXPECT_EQ(*fs.dir(m, "/kubepods"), "/sys/fs/cgroup/memory");
  EXPECT_FALSE(fs.dir(m, "/kubepodsX/pod1").ok());
  EXPECT_FALSE(fs.dir(m, "/system.slice").ok());
}

}  // namespace
}  // namespace nq::runtime

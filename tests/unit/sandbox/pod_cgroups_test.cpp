// The cgroup plan of a pod on hybrid and pure v2 hosts.
#include "agent/runtime/local/pod_cgroups.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace nq::sandbox {
namespace {

runtime::CgroupFs fs_of(const char* mountinfo) {
  auto m = runtime::parse_mountinfo(mountinfo);
  EXPECT_TRUE(m.ok());
  return runtime::CgroupFs(*m);
}

constexpr const char* kHybrid =
    "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n"
    "38 31 0:35 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

constexpr const char* kPureV2 = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";

bool has_write(const PodCgroupPlan& p, const std::string& file, const std::string& value) {
  return std::find(p.writes.begin(), p.writes.end(), CgroupWrite{file, value}) != p.writes.end();
}

size_t index_of(const PodCgroupPlan& p, const std::string& file) {
  for (size_t i = 0; i < p.writes.size(); ++i)
    if (p.writes[i].file == file) return i;
  return SIZE_MAX;
}

TEST(PodCgroups, SelectsTheHierarchiesAPodNeeds) {
  auto hs = select_hierarchies(fs_of(kHybrid), {});
  ASSERT_TRUE(hs.ok()) << hs.error().message();
  std::vector<std::string> keys;
  for (const Hierarchy& h : *hs) keys.push_back(h.key);
  // cpuset and name=systemd are left alone; the empty unified tree is joined.
  EXPECT_EQ(keys,
            (std::vector<std::string>{"cpu", "cpuacct", "memory", "freezer", "blkio", "pids", ""}));
  EXPECT_EQ(hs->back().dir, "/sys/fs/cgroup/unified");
}

TEST(PodCgroups, HybridPlanWritesV1Limits) {
  auto hs = select_hierarchies(fs_of(kHybrid), {});
  ASSERT_TRUE(hs.ok());
  auto plan = plan_pod_cgroups(*hs, "nodequake", "u1",
                               {{"web", {500, 64LL << 20}}, {"side", {250, std::nullopt}}});
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->pod_dirs.size(), 7u);
  EXPECT_EQ(plan->pod_dirs.front(), "/sys/fs/cgroup/cpu/nodequake/podu1");
  // Parents before children.
  EXPECT_EQ(plan->mkdirs[0], "/sys/fs/cgroup/cpu/nodequake");
  EXPECT_EQ(plan->mkdirs[1], "/sys/fs/cgroup/cpu/nodequake/podu1");
  EXPECT_EQ(plan->mkdirs[2], "/sys/fs/cgroup/cpu/nodequake/podu1/web");
  ASSERT_EQ(plan->containers.size(), 2u);
  EXPECT_EQ(plan->containers[0].paths.by_hierarchy.at("memory"), "/nodequake/podu1/web");
  EXPECT_EQ(plan->containers[0].paths.by_hierarchy.at(""), "/nodequake/podu1/web");
  EXPECT_EQ(plan->containers[1].dirs.back(), "/sys/fs/cgroup/unified/nodequake/podu1/side");

  const std::string cpu = "/sys/fs/cgroup/cpu/nodequake/podu1";
  EXPECT_TRUE(has_write(*plan, cpu + "/web/cpu.cfs_quota_us", "50000"));
  EXPECT_TRUE(has_write(*plan, cpu + "/web/cpu.cfs_period_us", "100000"));
  EXPECT_TRUE(has_write(*plan, cpu + "/side/cpu.cfs_quota_us", "25000"));
  EXPECT_TRUE(has_write(*plan, "/sys/fs/cgroup/memory/nodequake/podu1/web/memory.limit_in_bytes",
                        std::to_string(64LL << 20)));
  // The pod quota is the containers' sum and comes first: v1 refuses a child
  // quota above its parent's. Memory: not every container has a limit, so none at pod level.
  EXPECT_TRUE(has_write(*plan, cpu + "/cpu.cfs_quota_us", "75000"));
  EXPECT_LT(index_of(*plan, cpu + "/cpu.cfs_quota_us"),
            index_of(*plan, cpu + "/web/cpu.cfs_quota_us"));
  EXPECT_EQ(index_of(*plan, "/sys/fs/cgroup/memory/nodequake/podu1/memory.limit_in_bytes"),
            SIZE_MAX);
  // Nothing is written in the controller-less unified tree.
  for (const CgroupWrite& w : plan->writes)
    EXPECT_EQ(w.file.string().find("/unified/"), std::string::npos) << w.file;
}

TEST(PodCgroups, PureV2EnablesControllersOnTheWayDown) {
  auto hs = select_hierarchies(fs_of(kPureV2), {"cpuset", "cpu", "io", "memory", "pids"});
  ASSERT_TRUE(hs.ok());
  ASSERT_EQ(hs->size(), 1u);
  auto plan = plan_pod_cgroups(*hs, "nodequake", "u2", {{"db", {1500, 256LL << 20}}});
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  const std::string enable = "+cpu +memory +pids +io";
  ASSERT_GE(plan->writes.size(), 3u);
  EXPECT_EQ(plan->writes[0], (CgroupWrite{"/sys/fs/cgroup/cgroup.subtree_control", enable}));
  EXPECT_EQ(plan->writes[1],
            (CgroupWrite{"/sys/fs/cgroup/nodequake/cgroup.subtree_control", enable}));
  EXPECT_EQ(plan->writes[2],
            (CgroupWrite{"/sys/fs/cgroup/nodequake/podu2/cgroup.subtree_control", enable}));
  EXPECT_TRUE(has_write(*plan, "/sys/fs/cgroup/nodequake/podu2/db/cpu.max", "150000 100000"));
  EXPECT_TRUE(has_write(*plan, "/sys/fs/cgroup/nodequake/podu2/db/memory.max",
                        std::to_string(256LL << 20)));
  EXPECT_TRUE(
      has_write(*plan, "/sys/fs/cgroup/nodequake/podu2/memory.max", std::to_string(256LL << 20)));
  EXPECT_EQ(plan->containers[0].paths.by_hierarchy,
            (std::map<std::string, std::string>{{"", "/nodequake/podu2/db"}}));
}

TEST(PodCgroups, RejectsEscapingParents) {
  auto hs = select_hierarchies(fs_of(kPureV2), {});
  ASSERT_TRUE(hs.ok());
  EXPECT_FALSE(plan_pod_cgroups(*hs, "/abs", "u", {}).ok());
  EXPECT_FALSE(plan_pod_cgroups(*hs, "a/../..", "u", {}).ok());
  EXPECT_TRUE(plan_pod_cgroups(*hs, "a/b", "u", {}).ok());
}

TEST(PodCgroups, RemovalIsLeafFirst) {
  EXPECT_EQ(removal_order({"/cpu/p", "/mem/p"}, {{"/cpu/p/a", "/mem/p/a"}, {"/cpu/p/b"}}),
            (std::vector<std::string>{"/cpu/p/a", "/mem/p/a", "/cpu/p/b", "/cpu/p", "/mem/p"}));
}

}  // namespace
}  // namespace nq::sandbox

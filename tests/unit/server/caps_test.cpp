#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/caps/probe.h"

namespace nq {
namespace {

using ::testing::HasSubstr;

// This build machine: v1 hybrid, an empty-ish cgroup2 at /sys/fs/cgroup/unified.
constexpr const char* kHybrid =
    "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "36 31 0:33 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// A systemd host with the unified hierarchy only.
constexpr const char* kUnified =
    "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

const Capability* find(const std::vector<Capability>& caps, const std::string& name) {
  for (const auto& c : caps)
    if (c.name == name) return &c;
  return nullptr;
}

TEST(CgroupMounts, CapabilitiesOfAHybridLayout) {
  const std::vector<Capability> caps =
      cgroup_capabilities(runtime::parse_mountinfo(kHybrid).value(), "hugetlb\n");
  for (const char* name : {"cgroup_v1.cpu", "cgroup_v1.cpuacct", "cgroup_v1.memory",
                           "cgroup_v1.cpuset", "cgroup_v2", "cgroup_v2.hugetlb"}) {
    const Capability* c = find(caps, name);
    ASSERT_NE(c, nullptr) << name;
    EXPECT_TRUE(c->available) << name;
    EXPECT_FALSE(c->detail.empty()) << name;
  }
  EXPECT_THAT(find(caps, "cgroup_v1.memory")->detail, HasSubstr("/sys/fs/cgroup/memory"));
  EXPECT_EQ(find(caps, "cgroup_v2.memory"), nullptr);
  EXPECT_EQ(find(caps, "cgroup_v1.systemd"), nullptr);
}

TEST(CgroupMounts, CapabilitiesOfAUnifiedLayout) {
  const std::vector<Capability> caps = cgroup_capabilities(
      runtime::parse_mountinfo(kUnified).value(), "cpuset cpu io memory pids\n");
  EXPECT_TRUE(find(caps, "cgroup_v2")->available);
  for (const char* c : {"cpuset", "cpu", "io", "memory", "pids"})
    EXPECT_TRUE(find(caps, std::string("cgroup_v2.") + c)) << c;
  for (const auto& c : caps) EXPECT_THAT(c.name, ::testing::Not(HasSubstr("cgroup_v1.")));
}

TEST(CgroupMounts, NoCgroup2IsReportedMissing) {
  const std::vector<Capability> caps = cgroup_capabilities(
      runtime::parse_mountinfo("35 31 0:32 / /c/memory rw - cgroup cgroup rw,memory\n").value(),
      "");
  const Capability* v2 = find(caps, "cgroup_v2");
  ASSERT_NE(v2, nullptr);
  EXPECT_FALSE(v2->available);
  EXPECT_THAT(v2->detail, HasSubstr("no cgroup2"));
}

TEST(Capabilities, HasAndRequire) {
  const Capabilities caps(
      {{"sch_tbf", true, "added"},
       {"sch_netem", false, "qdisc kind unknown to this kernel (ENOENT): kernel lacks sch_netem"}});
  EXPECT_TRUE(caps.has("sch_tbf"));
  EXPECT_FALSE(caps.has("sch_netem"));
  EXPECT_FALSE(caps.has("never_probed"));
  EXPECT_TRUE(caps.require("sch_tbf", "bandwidth").ok());

  Status st = caps.require("sch_netem", "netem delay");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().status_code(), Code::kFailedPrecondition);
  EXPECT_EQ(
      st.error().message(),
      "netem delay needs sch_netem, which this kernel lacks: qdisc kind unknown to this kernel "
      "(ENOENT): kernel lacks sch_netem");
  st = caps.require("bpf_lsm", "io errno injection");
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message(), HasSubstr("io errno injection needs bpf_lsm"));
  EXPECT_EQ(caps.all().size(), 2u);
}

}  // namespace
}  // namespace nq

#include "agent/process/freezer.h"

#include <gtest/gtest.h>

namespace nq::process {
namespace {

TEST(FreezerState, ParsesTheThreeStates) {
  EXPECT_EQ(*parse_freezer_state("THAWED\n"), FreezerState::kThawed);
  EXPECT_EQ(*parse_freezer_state("FREEZING\n"), FreezerState::kFreezing);
  EXPECT_EQ(*parse_freezer_state("FROZEN"), FreezerState::kFrozen);
  auto bad = parse_freezer_state("frozen\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("freezer.state"), std::string::npos);
}

TEST(CgroupEvents, ReadsTheFrozenLine) {
  EXPECT_TRUE(*parse_events_frozen("populated 1\nfrozen 1\n"));
  EXPECT_FALSE(*parse_events_frozen("populated 0\nfrozen 0\n"));
  EXPECT_FALSE(parse_events_frozen("populated 1\n").ok());
  EXPECT_FALSE(parse_events_frozen("frozen 2\n").ok());
}

TEST(CgroupVersionName, RoundTrips) {
  EXPECT_EQ(*parse_version(version_name(CgroupVersion::kV1)), CgroupVersion::kV1);
  EXPECT_EQ(*parse_version(version_name(CgroupVersion::kV2)), CgroupVersion::kV2);
  EXPECT_FALSE(parse_version("v3").ok());
}

runtime::CgroupMounts mounts_from(std::string_view mountinfo) {
  auto m = runtime::parse_mountinfo(mountinfo);
  EXPECT_TRUE(m.ok()) << m.error().message();
  return *m;
}

constexpr std::string_view kHybrid =
    "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:6 - cgroup2 cgroup2 rw\n"
    "31 25 0:27 / /sys/fs/cgroup/freezer rw,nosuid shared:7 - cgroup cgroup rw,freezer\n";
constexpr std::string_view kPureV2 =
    "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:6 - cgroup2 cgroup2 rw\n";

TEST(FreezerCgroupChoice, HybridUsesTheV1Freezer) {
  runtime::CgroupFs fs(mounts_from(kHybrid));
  runtime::ContainerInfo c;
  c.name = "main";
  c.cgroups.by_hierarchy = {{"freezer", "/nq/pod1/main"}, {"", "/nq/pod1/main"}};
  auto cg = freezer_cgroup(fs, c);
  ASSERT_TRUE(cg.ok()) << cg.error().message();
  EXPECT_EQ(cg->version, CgroupVersion::kV1);
  EXPECT_EQ(cg->dir, "/sys/fs/cgroup/freezer/nq/pod1/main");
}

TEST(FreezerCgroupChoice, PureV2UsesTheUnifiedTree) {
  runtime::CgroupFs fs(mounts_from(kPureV2));
  runtime::ContainerInfo c;
  c.name = "main";
  c.cgroups.by_hierarchy = {{"", "/nq/pod1/main"}};
  auto cg = freezer_cgroup(fs, c);
  ASSERT_TRUE(cg.ok()) << cg.error().message();
  EXPECT_EQ(cg->version, CgroupVersion::kV2);
  EXPECT_EQ(cg->dir, "/sys/fs/cgroup/nq/pod1/main");
}

TEST(FreezerCgroupChoice, NoFreezerIsNotFoundNamingTheContainer) {
  runtime::CgroupFs fs(mounts_from(kHybrid));
  runtime::ContainerInfo c;
  c.name = "side";
  auto cg = freezer_cgroup(fs, c);
  ASSERT_FALSE(cg.ok());
  EXPECT_EQ(cg.error().status_code(), Code::kNotFound);
  EXPECT_NE(cg.error().message().find("side"), std::string::npos);
}

}  // namespace
}  // namespace nq::process

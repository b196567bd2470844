#include "agent/disk/throttle.h"

#include <gtest/gtest.h>
#include <sys/sysmacros.h>

namespace nq::disk {
namespace {

TEST(DevNum, ParsesAndFormats) {
  auto d = parse_devnum("259:3\n");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->major, 259u);
  EXPECT_EQ(d->minor, 3u);
  EXPECT_EQ(d->str(), "259:3");
  EXPECT_FALSE(parse_devnum("8").ok());
  EXPECT_FALSE(parse_devnum("8:x").ok());
  EXPECT_EQ(from_dev_t(::makedev(7, 12)), (DevNum{7, 12}));
}

TEST(IoMax, ParsesLinesByDevice) {
  auto m = parse_io_max(
      "8:0 rbps=1048576 wbps=max riops=max wiops=120\n7:3 rbps=max wbps=10 "
      "riops=max wiops=max\n");
  ASSERT_TRUE(m.ok()) << m.error().message();
  ASSERT_EQ(m->size(), 2u);
  EXPECT_EQ(m->at("8:0"), "8:0 rbps=1048576 wbps=max riops=max wiops=120");
  EXPECT_TRUE(parse_io_max("").ok());
  EXPECT_FALSE(parse_io_max("garbage line\n").ok());
}

TEST(IoMax, FormatsOnlyTheLimitsThatAreSet) {
  EXPECT_EQ(format_io_max({7, 0}, {0, 1048576, 0, 0}), "7:0 wbps=1048576");
  EXPECT_EQ(format_io_max({8, 16}, {1, 2, 3, 4}), "8:16 rbps=1 wbps=2 riops=3 wiops=4");
}

TEST(BlkioThrottle, ParsesValuesAndNamesTheKnobOnError) {
  auto m = parse_blkio_throttle("7:0 1048576\n8:0 100\n", kV1WriteBps);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->at("7:0"), 1048576u);
  EXPECT_EQ(m->at("8:0"), 100u);
  auto bad = parse_blkio_throttle("7:0 lots\n", kV1WriteBps);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("blkio.throttle.write_bps_device"), std::string::npos);
  EXPECT_NE(bad.error().message().find("line 1"), std::string::npos);
}

TEST(ThrottlePlan, V1WritesOneKnobPerLimit) {
  const ThrottleLimits l{0, 1048576, 50, 0};
  EXPECT_EQ(knobs_for(CgroupVersion::kV1, l),
            (std::vector<std::string>{std::string(kV1WriteBps), std::string(kV1ReadIops)}));
  EXPECT_EQ(plan_throttle(CgroupVersion::kV1, {7, 0}, l),
            (std::vector<KnobWrite>{{std::string(kV1WriteBps), "7:0 1048576"},
                                    {std::string(kV1ReadIops), "7:0 50"}}));
}

TEST(ThrottlePlan, V1RestoresExactlyWhatWasThere) {
  const ThrottleLimits l{0, 1048576, 50, 0};
  // write_bps had an entry for another device only; read_iops had ours.
  auto prev = snapshot_from(
      CgroupVersion::kV1, {7, 0},
      {{std::string(kV1WriteBps), "8:0 5\n"}, {std::string(kV1ReadIops), "7:0 900\n8:0 1\n"}});
  ASSERT_TRUE(prev.ok()) << prev.error().message();
  EXPECT_EQ(prev->at(std::string(kV1WriteBps)), "");
  EXPECT_EQ(prev->at(std::string(kV1ReadIops)), "7:0 900");
  auto restore = plan_restore(CgroupVersion::kV1, {7, 0}, *prev);
  EXPECT_EQ(restore, (std::vector<KnobWrite>{{std::string(kV1ReadIops), "7:0 900"},
                                             {std::string(kV1WriteBps), "7:0 0"}}));
  (void)l;
}

TEST(ThrottlePlan, V2SnapshotsAndRestoresTheDeviceLine) {
  const ThrottleLimits l{0, 1048576, 0, 0};
  EXPECT_EQ(knobs_for(CgroupVersion::kV2, l), (std::vector<std::string>{"io.max"}));
  EXPECT_EQ(plan_throttle(CgroupVersion::kV2, {7, 0}, l),
            (std::vector<KnobWrite>{{"io.max", "7:0 wbps=1048576"}}));

  auto none = snapshot_from(CgroupVersion::kV2, {7, 0},
                            {{"io.max",
                              "8:0 rbps=1 wbps=max "
                              "riops=max wiops=max\n"}});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(plan_restore(CgroupVersion::kV2, {7, 0}, *none),
            (std::vector<KnobWrite>{{"io.max", "7:0 rbps=max wbps=max riops=max wiops=max"}}));

  auto some = snapshot_from(CgroupVersion::kV2, {7, 0},
                            {{"io.max", "7:0 rbps=2000 wbps=max riops=max wiops=max\n"}});
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(plan_restore(CgroupVersion::kV2, {7, 0}, *some),
            (std::vector<KnobWrite>{{"io.max", "7:0 rbps=2000 wbps=max riops=max wiops=max"}}));
}

}  // namespace
}  // namespace nq::disk

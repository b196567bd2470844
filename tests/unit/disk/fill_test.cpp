#include "agent/disk/fill.h"

#include <gtest/gtest.h>

#include "agent/disk/container_fs.h"
#include "agent/disk/disk_faults.h"

namespace nq::disk {
namespace {

TEST(FillSize, BytesAreTakenAsGivenUpToTheFreeSpace) {
  const FsSpace s{4096, 1000 * 4096, 900 * 4096};
  EXPECT_EQ(*fill_size(12345, 0, s), 12345u);
  // Root may use the reserved blocks: up to `free`, not just `available`.
  EXPECT_EQ(*fill_size(950 * 4096, 0, s), 950u * 4096);
  auto over = fill_size(1001 * 4096, 0, s);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(over.error().message().find("spec.disk_fill.bytes"), std::string::npos);
}

TEST(FillSize, PercentOfTheAvailableSpaceInWholeBlocks) {
  const FsSpace s{4096, 1000 * 4096, 900 * 4096};
  EXPECT_EQ(*fill_size(0, 50, s), 450u * 4096);
  EXPECT_EQ(*fill_size(0, 100, s), 900u * 4096);
  EXPECT_EQ(*fill_size(0, 33.3, s), 299u * 4096);  // 299.7 blocks, rounded down
  auto none = fill_size(0, 50, FsSpace{4096, 0, 0});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("spec.disk_fill.percent"), std::string::npos);
  EXPECT_FALSE(fill_size(0, 0, s).ok());
}

TEST(ContainerPaths, JoinUnderRoot) {
  EXPECT_EQ(join_under_root("/proc/12/root", "/data/x"), "/proc/12/root/data/x");
  EXPECT_EQ(join_under_root("/proc/12/root/", "/"), "/proc/12/root/");
  EXPECT_EQ(join_under_root("/proc/12/root", "data"), "/proc/12/root/data");
}

TEST(ContainerPaths, SplitParent) {
  EXPECT_EQ(split_parent("/data/f"), (std::pair<std::string, std::string>{"/data", "f"}));
  EXPECT_EQ(split_parent("/f"), (std::pair<std::string, std::string>{"/", "f"}));
  EXPECT_EQ(split_parent("/a/b/"), (std::pair<std::string, std::string>{"/a", "b"}));
}

TEST(ContainerPaths, FillFileNameHasNoSlash) {
  EXPECT_EQ(fill_file_name("exp/1:a"), ".nodequake-fill-exp_1:a");
}

TEST(ResourceKey, RoundTripsWithSlashesInTheId) {
  runtime::PodInfo pod;
  pod.namespace_name = "shop";
  pod.name = "cart-1";
  const std::string key = resource_key("disk_fill", pod, "main", "exp/run-1");
  EXPECT_EQ(key, "disk_fill/shop/cart-1/main/exp/run-1");
  auto k = parse_resource_key(key);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->namespace_name, "shop");
  EXPECT_EQ(k->pod, "cart-1");
  EXPECT_EQ(k->container, "main");
  EXPECT_EQ(k->id, "exp/run-1");
  EXPECT_FALSE(parse_resource_key("disk_fill/shop").ok());
}

}  // namespace
}  // namespace nq::disk

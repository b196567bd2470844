#include "agent/io/io_plan.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "ioerrno.h"

namespace nq::io {
namespace {

// The BPF program's match, run on a buffer like its per-CPU d_path buffer.
bool match(const std::string& path, const std::string& prefix) {
  static char buf[NQ_IO_PATH_MAX];
  std::memset(buf, 0x55, sizeof(buf));  // garbage after the NUL, as in the kernel
  std::memcpy(buf, path.c_str(), path.size() + 1);
  return nq_io_prefix_match(buf, sizeof(buf), prefix.data(), static_cast<__u32>(prefix.size())) !=
         0;
}

TEST(IoPrefixMatch, IsComponentWise) {
  EXPECT_TRUE(match("/data", "/data"));
  EXPECT_TRUE(match("/data/x", "/data"));
  EXPECT_TRUE(match("/data/x/y.db", "/data/x"));
  EXPECT_FALSE(match("/database", "/data"));
  EXPECT_FALSE(match("/dat", "/data"));
  EXPECT_FALSE(match("/other/data", "/data"));
  EXPECT_FALSE(match("/", "/data"));
}

TEST(IoPrefixMatch, EmptyPrefixIsRootAndMatchesEverything) {
  EXPECT_TRUE(match("/", ""));
  EXPECT_TRUE(match("/etc/passwd", ""));
}

TEST(IoPrefixMatch, DeletedFilesStillMatch) {
  // d_path appends " (deleted)" to an unlinked file's path.
  EXPECT_TRUE(match("/data/x (deleted)", "/data"));
}

TEST(IoPrefixMatch, RefusesPrefixesBeyondTheBuffers) {
  const std::string long_prefix(NQ_IO_PREFIX_MAX, 'a');
  EXPECT_FALSE(match("/" + long_prefix, long_prefix));
  char small[4] = {'/', 'a', 'b', '\0'};
  EXPECT_FALSE(nq_io_prefix_match(small, sizeof(small), "/abcd", 5));
}

TEST(IoNormalizePrefix, NormalizesAndDropsTheRoot) {
  EXPECT_EQ(*normalize_prefix("/data//x/"), "/data/x");
  EXPECT_EQ(*normalize_prefix("/data/./x"), "/data/x");
  EXPECT_EQ(*normalize_prefix("/"), "");
  EXPECT_EQ(*normalize_prefix("///"), "");
}

TEST(IoNormalizePrefix, RefusesBadPathsNamingTheField) {
  for (const char* bad : {"", "data", "/data/../etc"}) {
    auto r = normalize_prefix(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().status_code(), Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find("spec.io_errno.path"), std::string::npos)
        << r.error().message();
  }
}

TEST(IoNormalizePrefix, LengthLimitIsTheProgramsBuffer) {
  const std::string ok_path = "/" + std::string(NQ_IO_PREFIX_MAX - 2, 'a');  // 255 bytes
  ASSERT_TRUE(normalize_prefix(ok_path).ok());
  auto r = normalize_prefix(ok_path + "b");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("spec.io_errno.path"), std::string::npos);
  EXPECT_NE(r.error().message().find("255"), std::string::npos) << r.error().message();
}

TEST(IoPercentThreshold, MapsPercentOntoTheU32Scale) {
  EXPECT_EQ(*percent_threshold(100), NQ_IO_THRESHOLD_ALWAYS);
  EXPECT_EQ(*percent_threshold(50), 1ull << 31);
  EXPECT_EQ(*percent_threshold(25), 1ull << 30);
  EXPECT_LT(*percent_threshold(99.9999), NQ_IO_THRESHOLD_ALWAYS);
  // Tiny but positive never becomes "never".
  EXPECT_EQ(*percent_threshold(1e-12), 1u);
  EXPECT_FALSE(percent_threshold(0).ok());
  EXPECT_FALSE(percent_threshold(-1).ok());
}

TEST(IoOpsMask, KeepsTheApiBitsAndRefusesNone) {
  EXPECT_EQ(*ops_mask(core::kIoRead), NQ_IO_OP_READ);
  EXPECT_EQ(*ops_mask(core::kIoAllOperations), NQ_IO_OP_OPEN | NQ_IO_OP_READ | NQ_IO_OP_WRITE);
  EXPECT_FALSE(ops_mask(0).ok());
  EXPECT_FALSE(ops_mask(1u << 7).ok());
  EXPECT_EQ(ops_names(NQ_IO_OP_OPEN | NQ_IO_OP_WRITE), "open,write");
}

TEST(IoBuildConfig, FillsEveryField) {
  core::IoErrno spec;
  spec.path = "/var/lib/db/";
  spec.error = 28;  // ENOSPC
  spec.error_name = "ENOSPC";
  spec.percent = 50;
  spec.operations = core::kIoWrite;
  auto cfg = build_config(spec, 7);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message();
  EXPECT_EQ(cfg->error, 28u);
  EXPECT_EQ(cfg->ops, NQ_IO_OP_WRITE);
  EXPECT_EQ(cfg->generation, 7u);
  EXPECT_EQ(cfg->threshold, 1ull << 31);
  EXPECT_EQ(std::string(cfg->prefix, cfg->prefix_len), "/var/lib/db");
  EXPECT_EQ(cfg->matched, 0u);
  EXPECT_EQ(cfg->failed, 0u);
}

TEST(IoBuildConfig, RefusesANonErrno) {
  core::IoErrno spec;
  spec.path = "/data";
  spec.error = 0;
  auto cfg = build_config(spec, 1);
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.error().message().find("spec.io_errno.error"), std::string::npos);
}

}  // namespace
}  // namespace nq::io

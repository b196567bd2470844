#include "common/duration.h"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace nq {
namespace {

TEST(Duration, ParsesGoStyle) {
  EXPECT_EQ(parse_duration("500ms").value(), 500ms);
  EXPECT_EQ(parse_duration("1m30s").value(), 90s);
  EXPECT_EQ(parse_duration("1.5s").value(), 1500ms);
  EXPECT_EQ(parse_duration("2h").value(), 2h);
  EXPECT_EQ(parse_duration("250us").value(), 250us);
  EXPECT_EQ(parse_duration("0").value(), 0ns);
}

TEST(Duration, RejectsWithReason) {
  for (const char* bad : {"", "-1s", "10", "ms", "1x", "1..2s"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().status_code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(r.error().message().find("duration"), std::string::npos) << r.error().message();
  }
}

TEST(Duration, FormatsRoundTrip) {
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(500ms), "500ms");
  EXPECT_EQ(format_duration(0s), "0s");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  for (std::chrono::nanoseconds d :
       {std::chrono::nanoseconds(1ns), std::chrono::nanoseconds(999us),
        std::chrono::nanoseconds(3h + 2s), std::chrono::nanoseconds(61s)})
    EXPECT_EQ(parse_duration(format_duration(d)).value(), d);
}

}  // namespace
}  // namespace nq

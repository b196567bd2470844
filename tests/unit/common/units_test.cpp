#include "common/units.h"

#include <gtest/gtest.h>

namespace nq {
namespace {

TEST(Units, RatesFollowTcConventions) {
  EXPECT_EQ(parse_rate("1mbit").value(), 1000000u);
  EXPECT_EQ(parse_rate("500kbit").value(), 500000u);
  EXPECT_EQ(parse_rate("1Mbit/s").value(), 1000000u);
  EXPECT_EQ(parse_rate("1mbps").value(), 8000000u);  // tc: bytes per second
  EXPECT_EQ(parse_rate("1kibit").value(), 1024u);
  EXPECT_EQ(parse_rate("2.5gbit").value(), 2500000000u);
  EXPECT_EQ(parse_rate("9600").value(), 9600u);
}

TEST(Units, RateErrorsNameTheField) {
  for (const char* bad : {"", "fast", "1mbitz", "1qbit", "0bit", "-1mbit"}) {
    auto r = parse_rate(bad, "spec.bandwidth.rate");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message().rfind("spec.bandwidth.rate: ", 0), 0u) << r.error().message();
  }
}

TEST(Units, Bytes) {
  EXPECT_EQ(parse_bytes("1500").value(), 1500u);
  EXPECT_EQ(parse_bytes("32k").value(), 32000u);
  EXPECT_EQ(parse_bytes("10Mi").value(), 10u * 1024 * 1024);
  EXPECT_EQ(parse_bytes("1.5MB").value(), 1500000u);
  EXPECT_FALSE(parse_bytes("lots").ok());
  EXPECT_FALSE(parse_bytes("1Xi").ok());
}

TEST(Units, FormatsRates) {
  EXPECT_EQ(format_rate(1e6), "1.00 Mbit/s");
  EXPECT_EQ(format_rate(2.5e9), "2.50 Gbit/s");
  EXPECT_EQ(format_rate(800e3), "800.0 kbit/s");
}

}  // namespace
}  // namespace nq

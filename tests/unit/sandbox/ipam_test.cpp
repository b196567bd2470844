#include "agent/runtime/local/ipam.h"

#include <gtest/gtest.h>

namespace nq::sandbox {
namespace {

Cidr subnet(const char* s) {
  auto c = parse_cidr(s);
  EXPECT_TRUE(c.ok());
  return *c;
}

TEST(Ipam, GatewayIsTheFirstHost) {
  EXPECT_EQ(gateway_address(subnet("10.213.0.0/24"))->str(), "10.213.0.1/24");
  EXPECT_FALSE(gateway_address(subnet("10.213.0.0/31")).ok());
  EXPECT_FALSE(gateway_address(subnet("fd00::/64")).ok());
  EXPECT_FALSE(gateway_address(subnet("10.0.0.0/4")).ok());
}

TEST(Ipam, AllocatesTheLowestFreeAddress) {
  const Cidr s = subnet("10.213.0.0/24");
  EXPECT_EQ(allocate_ip(s, {})->str(), "10.213.0.2/24");
  EXPECT_EQ(allocate_ip(s, {"10.213.0.2", "10.213.0.3", "10.213.0.5"})->str(), "10.213.0.4/24");
  // Addresses outside the subnet do not matter.
  EXPECT_EQ(allocate_ip(s, {"10.214.0.2"})->str(), "10.213.0.2/24");
  EXPECT_EQ(host_part(*allocate_ip(s, {})), "10.213.0.2");
}

TEST(Ipam, ExhaustionIsAnError) {
  const Cidr s = subnet("10.214.7.0/29");  // .1 bridge, .2-.6 pods, .7 broadcast
  std::set<std::string> used;
  for (int i = 2; i <= 6; ++i) {
    auto a = allocate_ip(s, used);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(host_part(*a), "10.214.7." + std::to_string(i));
    used.insert(host_part(*a));
  }
  auto none = allocate_ip(s, used);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().status_code(), Code::kResourceExhausted);
  EXPECT_EQ(none.error().message(), "no free address left in sandbox subnet 10.214.7.0/29");
}

}  // namespace
}  // namespace nq::sandbox

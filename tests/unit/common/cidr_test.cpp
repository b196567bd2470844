#include "common/cidr.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

namespace nq {
namespace {

TEST(Cidr, ParsesAndNormalizes) {
  auto c = parse_cidr("10.1.2.3/8").value();
  EXPECT_EQ(c.family, AF_INET);
  EXPECT_EQ(c.prefix_len, 8);
  EXPECT_EQ(c.str(), "10.0.0.0/8");
  EXPECT_EQ(parse_cidr("192.168.1.7").value().str(), "192.168.1.7/32");
  EXPECT_EQ(parse_cidr("fd00:1::5/64").value().str(), "fd00:1::/64");
  EXPECT_EQ(parse_cidr("10.3.3.3/21").value().str(), "10.3.0.0/21");
}

TEST(Cidr, InterfaceAddressKeepsHostBits) {
  EXPECT_EQ(parse_interface_address("10.213.0.2/24").value().str(), "10.213.0.2/24");
}

TEST(Cidr, Contains) {
  auto net = parse_cidr("10.0.0.0/8").value();
  EXPECT_TRUE(net.contains(parse_cidr("10.9.0.0/16").value()));
  EXPECT_FALSE(net.contains(parse_cidr("11.0.0.0/16").value()));
  EXPECT_FALSE(parse_cidr("10.9.0.0/16").value().contains(net));
  EXPECT_FALSE(net.contains(parse_cidr("::/0").value()));
}

TEST(Cidr, ErrorsNameTheField) {
  for (const char* bad :
       {"10.0.0.0/33", "300.1.1.1", "fd00::/129", "10.0.0.0/", "abc", "10.0.0.0/x"}) {
    auto r = parse_cidr(bad, "spec.scope.remote_cidrs[0]");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().status_code(), Code::kInvalidArgument);
    EXPECT_EQ(r.error().message().rfind("spec.scope.remote_cidrs[0]: ", 0), 0u)
        << r.error().message();
  }
}

}  // namespace
}  // namespace nq

// The measuring tools themselves, across a real veth pair.
#include "common/traffic.h"

#include <gtest/gtest.h>

#include "tests/support/topology.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;

TEST(Traffic, MeasuresAcrossVethPair) {
  NQ_REQUIRE_ROOT();
  auto pair = NetnsPair::create();
  ASSERT_TRUE(pair.ok()) << pair.error().message();
  auto server = ServerThread::start((*pair)->b());
  ASSERT_TRUE(server.ok()) << server.error().message();
  const Netns& a = (*pair)->a();

  auto connect = run_in_netns(a, [] { return traffic::tcp_connect(NetnsPair::kIpB, 7, 2s); });
  ASSERT_TRUE(connect.ok()) << connect.error().message();
  EXPECT_LT(*connect, 100ms);

  auto rtt = run_in_netns(a, [] { return traffic::tcp_echo_rtt(NetnsPair::kIpB, 7, 50, 2s); });
  ASSERT_TRUE(rtt.ok()) << rtt.error().message();
  EXPECT_EQ(rtt->size(), 50u);
  EXPECT_LT(traffic::summarize(traffic::to_millis(*rtt)).p50, 10.0);

  auto udp =
      run_in_netns(a, [] { return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 200, 1ms, 200ms); });
  ASSERT_TRUE(udp.ok()) << udp.error().message();
  EXPECT_EQ(udp->sent, 200);
  EXPECT_EQ(udp->received, 200);
  EXPECT_EQ(udp->duplicates, 0);
  EXPECT_EQ(udp->corrupted, 0);

  auto down = run_in_netns(a, [] { return traffic::tcp_download(NetnsPair::kIpB, 19, 300ms); });
  ASSERT_TRUE(down.ok()) << down.error().message();
  EXPECT_GT(down->bits_per_second(), 50e6);  // an unshaped veth moves far more than this

  auto up = run_in_netns(a, [] { return traffic::tcp_upload(NetnsPair::kIpB, 9, 300ms); });
  ASSERT_TRUE(up.ok()) << up.error().message();
  EXPECT_GT(up->bits_per_second(), 50e6);

  auto http = run_in_netns(a, [] { return traffic::http_get(NetnsPair::kIpB, 8080, "/", 2s); });
  ASSERT_TRUE(http.ok()) << http.error().message();
  EXPECT_EQ(*http, 200);
}

TEST(Traffic, ConnectReportsRefusalAndTimeout) {
  NQ_REQUIRE_ROOT();
  auto pair = NetnsPair::create();
  ASSERT_TRUE(pair.ok()) << pair.error().message();
  // Nobody listens in b: refused.
  auto refused =
      run_in_netns((*pair)->a(), [] { return traffic::tcp_connect(NetnsPair::kIpB, 7, 1s); });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().status_code(), Code::kUnavailable);
  // An address on a's subnet that nobody has: ARP fails, the handshake times out
  // or the host is reported unreachable.
  auto nobody =
      run_in_netns((*pair)->a(), [] { return traffic::tcp_connect("10.77.0.99", 7, 300ms); });
  ASSERT_FALSE(nobody.ok());
  EXPECT_TRUE(nobody.error().status_code() == Code::kDeadlineExceeded ||
              nobody.error().status_code() == Code::kUnavailable)
      << nobody.error().message();
}

}  // namespace
}  // namespace nq::testing

#include "agent/metrics/metrics.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fd.h"

namespace nq {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string scrape(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

TEST(AgentMetrics, ExportsEveryFamilyWithLabelsAndValues) {
  auto registry = std::make_shared<prometheus::Registry>();
  AgentMetrics m(registry);
  m.observe_apply("netem", 0.002);
  m.observe_apply("netem", 0.004);
  m.observe_apply("bandwidth", 7.0);  // beyond the last bucket: +Inf only
  m.observe_revert("netem", "ttl", 0.0003);
  m.observe_revert("netem", "ttl", 0.02);
  m.observe_revert("partition", "revert-all", 0.5);
  m.count_error("Apply", "FAILED_PRECONDITION");
  m.count_error("Apply", "FAILED_PRECONDITION");
  m.set_active("netem", 3);
  m.set_active("netem", 2);
  m.set_capability("sch_netem", false);
  m.set_capability("sch_tbf", true);
  m.set_journal_entries(12);
  m.set_journal_bytes(4096);
  m.set_killswitch(true);

  const std::string text = scrape(*registry);
  EXPECT_THAT(text, HasSubstr("nodequake_agent_injections_active{kind=\"netem\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_apply_duration_seconds_count{kind=\"netem\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_apply_duration_seconds_sum{kind=\"netem\"} 0.006"));
  EXPECT_THAT(
      text,
      HasSubstr("nodequake_agent_apply_duration_seconds_bucket{kind=\"netem\",le=\"0.0005\"} 0\n"));
  EXPECT_THAT(
      text,
      HasSubstr("nodequake_agent_apply_duration_seconds_bucket{kind=\"netem\",le=\"0.0025\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("nodequake_agent_apply_duration_seconds_bucket{kind=\"bandwidth\",le=\"5\"} 0\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "nodequake_agent_apply_duration_seconds_bucket{kind=\"bandwidth\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "nodequake_agent_revert_duration_seconds_bucket{kind=\"netem\",le=\"0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_revert_duration_seconds_count{kind=\"netem\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_reverts_total{kind=\"netem\",reason=\"ttl\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr("nodequake_agent_reverts_total{kind=\"partition\",reason=\"revert-all\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("nodequake_agent_errors_total{code=\"FAILED_PRECONDITION\",rpc=\"Apply\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_capability{name=\"sch_netem\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_capability{name=\"sch_tbf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_journal_entries 12\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_journal_bytes 4096\n"));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_killswitch_engaged 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE nodequake_agent_apply_duration_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE nodequake_agent_reverts_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE nodequake_agent_injections_active gauge\n"));

  m.set_killswitch(false);
  EXPECT_THAT(scrape(*registry), HasSubstr("nodequake_agent_killswitch_engaged 0\n"));
}

TEST(AgentMetrics, UnsetLabelledFamiliesExportNoSamples) {
  auto registry = std::make_shared<prometheus::Registry>();
  AgentMetrics m(registry);
  const std::string text = scrape(*registry);
  EXPECT_THAT(text, Not(HasSubstr("nodequake_agent_injections_active{")));
  EXPECT_THAT(text, HasSubstr("nodequake_agent_killswitch_engaged 0\n"));
}

// A plain HTTP/1.0 GET over loopback; returns the whole response.
std::string http_get(uint16_t port, const std::string& path) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_TRUE(fd.valid()) << std::strerror(errno);
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  EXPECT_EQ(::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL), ssize_t(req.size()));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

TEST(MetricsEndpoint, ServesTheRegistryOverHttp) {
  auto registry = std::make_shared<prometheus::Registry>();
  AgentMetrics m(registry);
  m.set_capability("sch_htb", true);
  m.set_journal_bytes(123);

  Result<std::unique_ptr<MetricsEndpoint>> ep = MetricsEndpoint::start("127.0.0.1:0", registry);
  ASSERT_TRUE(ep.ok()) << ep.error().message();
  ASSERT_GT((*ep)->port(), 0);
  const std::string response = http_get((*ep)->port(), "/metrics");
  EXPECT_THAT(response, HasSubstr("200 OK"));
  EXPECT_THAT(response, HasSubstr("nodequake_agent_capability{name=\"sch_htb\"} 1\n"));
  EXPECT_THAT(response, HasSubstr("nodequake_agent_journal_bytes 123\n"));
}

// The stress gauges are read from their source at every scrape: a series
// appears with its injection, an achieved value only once measured, and
// nothing is left once the source no longer lists the injection.
TEST(MetricsEndpoint, ServesStressLoadsFromTheirSourceAtEachScrape) {
  auto registry = std::make_shared<prometheus::Registry>();
  Result<std::unique_ptr<MetricsEndpoint>> ep = MetricsEndpoint::start("127.0.0.1:0", registry);
  ASSERT_TRUE(ep.ok()) << ep.error().message();
  std::vector<StressLoad> loads;
  (*ep)->add(stress_load_collector([&loads] { return loads; }));

  StressLoad cpu{"cpu-1", "shop/web-0", "app", StressLoad::Resource::kCpu, 0.8, 0.7985};
  StressLoad mem{"mem-1", "shop/db-0", "db", StressLoad::Resource::kMemory, 268435456, {}};
  loads = {cpu, mem};
  std::string body = http_get((*ep)->port(), "/metrics");
  EXPECT_THAT(body, HasSubstr("nodequake_agent_stress_cpu_ratio{container=\"app\",id=\"cpu-1\","
                              "measure=\"requested\",pod=\"shop/web-0\"} 0.8\n"));
  EXPECT_THAT(body, HasSubstr("nodequake_agent_stress_cpu_ratio{container=\"app\",id=\"cpu-1\","
                              "measure=\"achieved\",pod=\"shop/web-0\"} 0.7985\n"));
  EXPECT_THAT(body, HasSubstr("nodequake_agent_stress_memory_bytes{container=\"db\",id=\"mem-1\","
                              "measure=\"requested\",pod=\"shop/db-0\"} 268435456\n"));
  // Not measured yet: no achieved series rather than a made-up zero.
  EXPECT_THAT(body, Not(HasSubstr("id=\"mem-1\",measure=\"achieved\"")));

  loads = {};
  body = http_get((*ep)->port(), "/metrics");
  EXPECT_THAT(body, HasSubstr("200 OK"));
  EXPECT_THAT(body, Not(HasSubstr("cpu-1")));
  EXPECT_THAT(body, Not(HasSubstr("mem-1")));
}

TEST(MetricsEndpoint, ABusyPortIsAnErrorNamingTheAddress) {
  auto registry = std::make_shared<prometheus::Registry>();
  Result<std::unique_ptr<MetricsEndpoint>> first = MetricsEndpoint::start("127.0.0.1:0", registry);
  ASSERT_TRUE(first.ok()) << first.error().message();
  const std::string address = "127.0.0.1:" + std::to_string((*first)->port());
  Result<std::unique_ptr<MetricsEndpoint>> second = MetricsEndpoint::start(address, registry);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().status_code(), Code::kUnavailable);
  EXPECT_THAT(second.error().message(), HasSubstr(address));
}

}  // namespace
}  // namespace nq

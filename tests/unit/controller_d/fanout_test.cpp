// Pure parts of the fan-out: injection ids and lease holders, agent discovery
// from a list and from a (scripted) headless Service.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "controller/fanout/discovery.h"
#include "controller/fanout/ids.h"

namespace nq::fanout {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

nodequake::v1::PodRef pod(const std::string& ns, const std::string& name) {
  nodequake::v1::PodRef p;
  p.set_namespace_(ns);
  p.set_name(name);
  return p;
}

bool agent_id_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
         c == '/' || c == '-';
}

TEST(Ids, DeterministicReadableAndDistinct) {
  auto a = injection_id("exp-42", pod("shop", "web-0"));
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(*a, "exp-42/shop/web-0");
  EXPECT_EQ(*injection_id("exp-42", pod("shop", "web-0")), *a);  // a retry hits the same id
  EXPECT_EQ(*injection_id("exp-42", pod("shop", "web-0"), "network"), "exp-42/shop/web-0/network");
  EXPECT_NE(*injection_id("exp-43", pod("shop", "web-0")), *a);
  EXPECT_NE(*injection_id("exp-42", pod("shop", "web-1")), *a);
  EXPECT_EQ(lease_holder("exp-42"), "controller/exp-42");
}

TEST(Ids, LongNamesAreHashedWithinTheAgentsLimit) {
  const std::string uid(64, 'u');
  const std::string ns(63, 'n');
  const std::string name(63, 'p');
  auto id = injection_id(uid, pod(ns, name));
  ASSERT_TRUE(id.ok());
  EXPECT_LE(id->size(), 128u);
  EXPECT_EQ(id->rfind(uid + "/h-", 0), 0u);
  EXPECT_EQ(id->size(), uid.size() + 3 + 32);
  for (char c : *id) EXPECT_TRUE(agent_id_char(c)) << *id;
  EXPECT_EQ(*injection_id(uid, pod(ns, name)), *id);
  EXPECT_NE(*injection_id(uid, pod(ns, name + "x")), *id);
  EXPECT_NE(*injection_id(uid, pod(ns, name), "s"), *id);
}

TEST(Ids, InvalidPartsAreRefusedByField) {
  auto bad_uid = injection_id("exp/1", pod("a", "b"));
  ASSERT_FALSE(bad_uid.ok());
  EXPECT_THAT(bad_uid.error().message(), HasSubstr("experiment.uid"));
  EXPECT_FALSE(injection_id(std::string(65, 'x'), pod("a", "b")).ok());
  auto bad_pod = injection_id("e", pod("a", ""));
  ASSERT_FALSE(bad_pod.ok());
  EXPECT_THAT(bad_pod.error().message(), HasSubstr("pod.name"));
  auto bad_step = injection_id("e", pod("a", "b"), "x/y");
  ASSERT_FALSE(bad_step.ok());
  EXPECT_THAT(bad_step.error().message(), HasSubstr("step"));
}

class MapResolver final : public Resolver {
 public:
  std::map<std::string, std::vector<std::string>> answers;
  mutable int calls = 0;
  Result<std::vector<std::string>> resolve(const std::string& host) const override {
    ++calls;
    auto it = answers.find(host);
    if (it == answers.end()) return Error::not_found("resolve " + host + ": no such host");
    return it->second;
  }
};

TEST(Discovery, StaticListAndServiceMergedSortedUnique) {
  MapResolver r;
  r.answers["nodequake-agent.nodequake-system.svc"] = {"10.0.0.9", "10.0.0.7", "fd00::7"};
  DiscoveryOptions o;
  o.agents = {"10.0.0.7:9443", "unix:/run/nodequake/agent.sock", "[fd00::8]:9443"};
  o.service = "nodequake-agent.nodequake-system.svc:9443";
  auto targets = discover(o, r);
  ASSERT_TRUE(targets.ok()) << targets.error().message();
  EXPECT_THAT(*targets, ElementsAre("10.0.0.7:9443", "10.0.0.9:9443", "[fd00::7]:9443",
                                    "[fd00::8]:9443", "unix:/run/nodequake/agent.sock"));
  // Re-resolved on every call: a new agent pod shows up at the next experiment.
  r.answers["nodequake-agent.nodequake-system.svc"].push_back("10.0.0.11");
  auto again = discover(o, r);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->size(), 6u);
  EXPECT_EQ(r.calls, 2);
}

TEST(Discovery, ErrorsNameTheOption) {
  MapResolver r;
  DiscoveryOptions o;
  o.agents = {"10.0.0.7"};
  auto no_port = discover(o, r);
  ASSERT_FALSE(no_port.ok());
  EXPECT_THAT(no_port.error().message(), HasSubstr("agents[0]"));

  o.agents = {"fd00::1:9443"};
  auto bare_v6 = discover(o, r);
  ASSERT_FALSE(bare_v6.ok());
  EXPECT_THAT(bare_v6.error().message(), HasSubstr("[address]:port"));

  o.agents = {"host:99999"};
  EXPECT_FALSE(discover(o, r).ok());

  o.agents = {};
  o.service = "missing.svc:9443";
  auto missing = discover(o, r);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message(), HasSubstr("service"));
  EXPECT_EQ(missing.error().status_code(), Code::kNotFound);

  r.answers["empty.svc"] = {};
  o.service = "empty.svc:9443";
  auto empty = discover(o, r);
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.error().message(), HasSubstr("no agent"));

  o.service = "";
  EXPECT_FALSE(discover(o, r).ok());
}

TEST(Discovery, SystemResolverNumericAndHostsFile) {
  SystemResolver r;
  auto local = r.resolve("127.0.0.1");
  ASSERT_TRUE(local.ok()) << local.error().message();
  EXPECT_THAT(*local, ElementsAre("127.0.0.1"));
  // /etc/hosts only: the test must not depend on (or wait for) a DNS server.
  auto hosts = r.resolve("localhost");
  ASSERT_TRUE(hosts.ok()) << hosts.error().message();
  EXPECT_FALSE(hosts->empty());
}

}  // namespace
}  // namespace nq::fanout

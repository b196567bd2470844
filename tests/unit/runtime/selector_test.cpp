#include "agent/runtime/selector.h"

#include <gtest/gtest.h>

#include "nodequake/v1/agent.pb.h"

namespace nq::runtime {
namespace {

PodInfo pod(std::string ns, std::string name, std::map<std::string, std::string> labels) {
  PodInfo p;
  p.namespace_name = std::move(ns);
  p.name = std::move(name);
  p.labels = std::move(labels);
  p.netns_path = "/run/netns/x";
  return p;
}

nodequake::v1::PodSelector proto_selector() {
  nodequake::v1::PodSelector s;
  s.add_namespaces("llm-marketplace");
  (*s.mutable_match_labels())["chaos-ready"] = "true";
  auto* e = s.add_match_expressions();
  e->set_key("app");
  e->set_operator_("In");
  e->add_values("graphql-gateway");
  e->add_values("postgres");
  auto* e2 = s.add_match_expressions();
  e2->set_key("canary");
  e2->set_operator_("DoesNotExist");
  return s;
}

TEST(Selector, KubernetesSemantics) {
  Selector sel = selector_from_proto(proto_selector()).value();
  EXPECT_TRUE(sel.matches(
      pod("llm-marketplace", "gw", {{"chaos-ready", "true"}, {"app", "graphql-gateway"}})));
  EXPECT_FALSE(
      sel.matches(pod("other", "gw", {{"chaos-ready", "true"}, {"app", "graphql-gateway"}})));
  EXPECT_FALSE(sel.matches(
      pod("llm-marketplace", "gw", {{"chaos-ready", "false"}, {"app", "graphql-gateway"}})));
  EXPECT_FALSE(
      sel.matches(pod("llm-marketplace", "r", {{"chaos-ready", "true"}, {"app", "redis"}})));
  EXPECT_FALSE(sel.matches(pod("llm-marketplace", "gw",
                               {{"chaos-ready", "true"}, {"app", "postgres"}, {"canary", "1"}})));
}

TEST(Selector, NotInMatchesMissingKey) {
  nodequake::v1::PodSelector s;
  auto* e = s.add_match_expressions();
  e->set_key("tier");
  e->set_operator_("NotIn");
  e->add_values("db");
  Selector sel = selector_from_proto(s).value();
  EXPECT_TRUE(sel.matches(pod("a", "b", {})));
  EXPECT_TRUE(sel.matches(pod("a", "b", {{"tier", "web"}})));
  EXPECT_FALSE(sel.matches(pod("a", "b", {{"tier", "db"}})));
}

TEST(Selector, RejectsBadOperators) {
  nodequake::v1::PodSelector s;
  auto* e = s.add_match_expressions();
  e->set_key("app");
  e->set_operator_("Like");
  auto r = selector_from_proto(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("selector.match_expressions[0].operator"), std::string::npos);

  e->set_operator_("In");
  r = selector_from_proto(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("selector.match_expressions[0].values"), std::string::npos);
}

TEST(Safety, RefusesWithReason) {
  SafetyPolicy policy;
  EXPECT_TRUE(check_eligible(pod("llm-marketplace", "gw", {{"chaos-ready", "true"}}), policy).ok());

  auto no_label = check_eligible(pod("llm-marketplace", "gw", {}), policy);
  ASSERT_FALSE(no_label.ok());
  EXPECT_EQ(no_label.error().status_code(), Code::kFailedPrecondition);
  EXPECT_NE(no_label.error().message().find("chaos-ready"), std::string::npos);

  auto protected_ns = check_eligible(pod("kube-system", "dns", {{"chaos-ready", "true"}}), policy);
  ASSERT_FALSE(protected_ns.ok());
  EXPECT_NE(protected_ns.error().message().find("protected namespace"), std::string::npos);

  PodInfo host = pod("llm-marketplace", "h", {{"chaos-ready", "true"}});
  host.host_network = true;
  auto hn = check_eligible(host, policy);
  ASSERT_FALSE(hn.ok());
  EXPECT_NE(hn.error().message().find("host network"), std::string::npos);
}

}  // namespace
}  // namespace nq::runtime

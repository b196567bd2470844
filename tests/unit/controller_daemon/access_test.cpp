// The controller API's access policy: the access file, token and certificate
// authentication, and the role order.
#include "controller/daemon/access.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "controller/daemon/manager.h"
#include "controller/daemon/run.h"
#include "controller/fanout/ids.h"

namespace nq::controller {
namespace {

using ::testing::HasSubstr;

AccessPolicy policy() {
  AccessPolicy p;
  p.tokens = {{"ci", Role::kOperator, "ci.token", "operator-token-0123456789"},
              {"board", Role::kViewer, "board.token", "viewer-token-0123456789"}};
  p.identities = {{"nqctl-alice", Role::kSre}};
  return p;
}

TEST(AccessFile, ParsesTokensAndIdentities) {
  auto p = parse_access_policy(
      "tokens:\n"
      "  - {name: ci, role: operator, tokenFile: tokens/ci}\n"
      "identities:\n"
      "  - {identity: nqctl-alice, role: sre}\n");
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->tokens.size(), 1u);
  EXPECT_EQ(p->tokens[0].name, "ci");
  EXPECT_EQ(p->tokens[0].role, Role::kOperator);
  EXPECT_EQ(p->tokens[0].token_file, "tokens/ci");
  ASSERT_EQ(p->identities.size(), 1u);
  EXPECT_EQ(p->identities[0].role, Role::kSre);
}

TEST(AccessFile, ErrorsNameTheField) {
  auto bad_role = parse_access_policy("tokens:\n  - {name: ci, role: admin, tokenFile: x}\n");
  ASSERT_FALSE(bad_role.ok());
  EXPECT_THAT(bad_role.error().message(), HasSubstr("tokens[0].role"));
  EXPECT_THAT(bad_role.error().message(), HasSubstr("unknown role"));
  auto unknown = parse_access_policy("tokens:\n  - {name: ci, role: sre, token: inline}\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.error().message(), HasSubstr("tokens[0].token: unknown field"));
  auto missing = parse_access_policy("identities:\n  - {role: sre}\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.error().message(), HasSubstr("identities[0].identity: is required"));
  auto twice = parse_access_policy(
      "tokens:\n  - {name: a, role: sre, tokenFile: x}\n  - {name: a, role: sre, tokenFile: y}\n");
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.error().message(), HasSubstr("tokens[1].name"));
}

TEST(Authenticate, TokenDecidesAndNamesTheCaller) {
  auto c = authenticate(policy(), "Bearer operator-token-0123456789", "local");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->identity, "token:ci");
  EXPECT_EQ(c->role, Role::kOperator);
  // A wrong token is refused even alongside a certificate that has a role.
  auto wrong = authenticate(policy(), "Bearer nope-nope-nope-nope", "nqctl-alice");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().status_code(), Code::kUnauthenticated);
}

TEST(Authenticate, CertificateIdentityWithoutToken) {
  auto c = authenticate(policy(), "", "nqctl-alice");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->identity, "cert:nqctl-alice");
  EXPECT_EQ(c->role, Role::kSre);
  auto stranger = authenticate(policy(), "", "intruder");
  ASSERT_FALSE(stranger.ok());
  EXPECT_THAT(stranger.error().message(), HasSubstr("\"intruder\" has no role"));
  // The Unix socket alone authenticates nobody.
  auto local = authenticate(policy(), "", "local");
  ASSERT_FALSE(local.ok());
  EXPECT_EQ(local.error().status_code(), Code::kUnauthenticated);
}

TEST(Authorize, RolesIncludeTheOnesBelow) {
  const Caller viewer{"token:board", Role::kViewer}, op{"token:ci", Role::kOperator},
      sre{"cert:alice", Role::kSre};
  EXPECT_TRUE(authorize(viewer, Role::kViewer, "Get").ok());
  auto denied = authorize(viewer, Role::kOperator, "Submit");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().status_code(), Code::kPermissionDenied);
  EXPECT_EQ(denied.error().message(), "Submit needs role operator; token:board has viewer");
  EXPECT_TRUE(authorize(op, Role::kOperator, "Abort").ok());
  EXPECT_FALSE(authorize(op, Role::kSre, "x").ok());
  EXPECT_TRUE(authorize(sre, Role::kOperator, "Submit").ok());
}

TEST(Run, AbortRulesNegatedAreTheRunsBounds) {
  std::vector<prom::AbortRule> rules = {{"errors", "q1", prom::Comparison::kGreater, 0.05, {}},
                                        {"", "q2", prom::Comparison::kLess, 0.9, {}}};
  auto checks = checks_from_rules(rules);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].name, "errors");
  EXPECT_EQ(checks[0].comparison, prom::Comparison::kLessEqual);
  EXPECT_EQ(checks[1].name, "q2");
  EXPECT_EQ(checks[1].comparison, prom::Comparison::kGreaterEqual);
}

TEST(Manager, ExperimentIdsAreValidUids) {
  for (const std::string& name : std::vector<std::string>{
           "network-latency", "with spaces/and:colons", std::string(100, 'x'), ""}) {
    const std::string id = new_experiment_id(name);
    EXPECT_TRUE(fanout::validate_experiment_uid(id).ok()) << id;
  }
  EXPECT_NE(new_experiment_id("a"), new_experiment_id("a"));
}

}  // namespace
}  // namespace nq::controller

// The kill switch without agents: the token check, the persisted state, and
// the HTTP endpoint (civetweb on loopback) in front of a recording backend.
// The node tier runs the same endpoint against real agents.
#include "controller/killswitch/killswitch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "controller/killswitch/http.h"
#include "controller/killswitch/token.h"
#include "tests/unit/controller_d/http_call.h"

namespace nq::killswitch {
namespace {

namespace fs = std::filesystem;
using nq::testing::http_call;
using ::testing::HasSubstr;

constexpr const char* kToken = "s3cr3t-kill-switch-token-0123456789";

TEST(Token, ConstantTimeCompare) {
  EXPECT_TRUE(token_matches(kToken, kToken));
  EXPECT_FALSE(token_matches("s3cr3t-kill-switch-token-012345678", kToken));  // prefix
  EXPECT_FALSE(token_matches(std::string(kToken) + "x", kToken));             // longer
  EXPECT_FALSE(token_matches("", kToken));
  EXPECT_FALSE(token_matches("", ""));  // an empty expected token never matches
  std::string flipped = kToken;
  flipped.back() ^= 1;
  EXPECT_FALSE(token_matches(flipped, kToken));
}

TEST(Token, BearerHeader) {
  EXPECT_EQ(bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  "), "abc");
  EXPECT_FALSE(bearer_token("Basic abc").has_value());
  EXPECT_FALSE(bearer_token("Bearer ").has_value());
  EXPECT_FALSE(bearer_token("").has_value());
}

class KillSwitchTest : public ::testing::Test {
 protected:
  // Records the calls and answers with one agent that reverted two injections.
  class RecordingBackend final : public Backend {
   public:
    std::vector<std::string> calls;
    std::vector<fanout::AgentOutcome> engage(const std::string& actor,
                                             const std::string& reason) override {
      calls.push_back("engage " + actor + " " + reason);
      std::vector<fanout::AgentOutcome> out(2);
      out[0].agent = "10.0.0.1:9443";
      out[0].count = 2;
      out[0].killswitch.set_engaged(true);
      out[1].agent = "10.0.0.2:9443";
      out[1].error = Error::status(Code::kDeadlineExceeded, "RevertAll on agent 10.0.0.2:9443");
      return out;
    }
    std::vector<fanout::AgentOutcome> release(const std::string& actor) override {
      calls.push_back("release " + actor);
      return std::vector<fanout::AgentOutcome>(1, fanout::AgentOutcome{"10.0.0.1:9443"});
    }
  };

  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nq-ks-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "token") << kToken << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<KillSwitch> open(audit::AuditLog* audit = nullptr) {
    auto ks = KillSwitch::open(dir_ / "killswitch.json", backend_, audit, clock_);
    EXPECT_TRUE(ks.ok()) << ks.error().message();
    return ks.ok() ? std::move(*ks) : nullptr;
  }

  fs::path dir_;
  RecordingBackend backend_;
  SystemClock clock_;
};

TEST_F(KillSwitchTest, EngagedStateSurvivesARestartAndIsAudited) {
  auto audit = audit::AuditLog::open(dir_ / "audit.log");
  ASSERT_TRUE(audit.ok());
  {
    auto ks = open(&*audit);
    ASSERT_TRUE(ks);
    EXPECT_FALSE(ks->engaged());
    auto r = ks->engage("sre:bob", "checkout is down");
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_TRUE(r->state.engaged);
    EXPECT_FALSE(r->complete());  // one agent did not answer
    const auto j = to_json(*r);
    EXPECT_EQ(j["agents"][0]["reverted"], 2);
    EXPECT_EQ(j["agents"][1]["ok"], false);
    EXPECT_THAT(j["agents"][1]["error"].get<std::string>(), HasSubstr("10.0.0.2"));
  }
  auto restarted = open();
  ASSERT_TRUE(restarted);
  EXPECT_TRUE(restarted->engaged());
  EXPECT_EQ(restarted->status().actor, "sre:bob");
  EXPECT_EQ(restarted->status().reason, "checkout is down");

  // Engaging again re-sends RevertAll but keeps who engaged it first.
  auto again = restarted->engage("sre:carol", "still down");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state.actor, "sre:bob");
  EXPECT_EQ(backend_.calls.size(), 2u);

  auto released = restarted->release("sre:carol");
  ASSERT_TRUE(released.ok());
  EXPECT_FALSE(released->state.engaged);
  EXPECT_FALSE(open()->engaged());

  auto events = audit::read_log(dir_ / "audit.log");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);  // only the first incarnation had the audit log
  EXPECT_EQ((*events)[0].action, audit::Action::kKillSwitchEngage);
  EXPECT_EQ((*events)[0].actor, "sre:bob");
  EXPECT_EQ((*events)[0].details["agents"].size(), 2u);
}

TEST_F(KillSwitchTest, CorruptStateFileIsAnError) {
  std::ofstream(dir_ / "killswitch.json") << "{\"engaged\": \"yes\"}";
  auto ks = KillSwitch::open(dir_ / "killswitch.json", backend_, nullptr, clock_);
  ASSERT_FALSE(ks.ok());
  EXPECT_THAT(ks.error().message(), HasSubstr("state.engaged"));
}

TEST_F(KillSwitchTest, HandlerAuthenticatesBeforeAnythingElse) {
  auto ks = open();
  HandlerConfig cfg{kToken, "killswitch-token"};
  EXPECT_EQ(handle({"POST", "/v1/killswitch", "", ""}, cfg, *ks).status, 401);
  EXPECT_EQ(
      handle({"POST", "/v1/killswitch", "Bearer wrong-token-wrong-token", ""}, cfg, *ks).status,
      401);
  EXPECT_EQ(handle({"GET", "/elsewhere", "", ""}, cfg, *ks).status, 401);
  EXPECT_TRUE(backend_.calls.empty());
  const std::string auth = std::string("Bearer ") + kToken;
  EXPECT_EQ(handle({"GET", "/elsewhere", auth, ""}, cfg, *ks).status, 404);
  EXPECT_EQ(handle({"PUT", "/v1/killswitch", auth, ""}, cfg, *ks).status, 405);
  EXPECT_EQ(handle({"POST", "/v1/killswitch", auth, "not json"}, cfg, *ks).status, 400);
  auto ok =
      handle({"POST", "/v1/killswitch", auth, R"({"reason":"drill","actor":"bob"})"}, cfg, *ks);
  EXPECT_EQ(ok.status, 200);
  ASSERT_EQ(backend_.calls.size(), 1u);
  EXPECT_EQ(backend_.calls[0], "engage killswitch-token:bob drill");
}

TEST_F(KillSwitchTest, HttpEndpointOnLoopback) {
  auto ks = open();
  HttpOptions o;
  o.listen = "127.0.0.1:0";
  o.token_file = (dir_ / "token").string();
  auto server = HttpServer::start(o, *ks);
  ASSERT_TRUE(server.ok()) << server.error().message();
  ASSERT_NE((*server)->port(), 0);
  const std::string url =
      "http://127.0.0.1:" + std::to_string((*server)->port()) + "/v1/killswitch";

  auto anon = http_call("POST", url);
  EXPECT_EQ(anon.status, 401) << anon.curl_error;
  EXPECT_EQ(http_call("POST", url, "not-the-token-at-all").status, 401);
  EXPECT_TRUE(backend_.calls.empty());

  auto engaged = http_call("POST", url, kToken, R"({"reason":"game day"})");
  ASSERT_EQ(engaged.status, 200) << engaged.body << engaged.curl_error;
  const auto j = nlohmann::json::parse(engaged.body);
  EXPECT_TRUE(j["engaged"].get<bool>());
  EXPECT_EQ(j["reason"], "game day");
  EXPECT_EQ(j["agents"].size(), 2u);

  auto status = http_call("GET", url, kToken);
  ASSERT_EQ(status.status, 200);
  EXPECT_TRUE(nlohmann::json::parse(status.body)["engaged"].get<bool>());

  auto released = http_call("DELETE", url, kToken);
  ASSERT_EQ(released.status, 200) << released.body;
  EXPECT_FALSE(nlohmann::json::parse(released.body)["engaged"].get<bool>());
}

TEST_F(KillSwitchTest, ServerRefusesAShortOrMissingToken) {
  auto ks = open();
  std::ofstream(dir_ / "short") << "abc\n";
  HttpOptions o;
  o.listen = "127.0.0.1:0";
  o.token_file = (dir_ / "short").string();
  auto server = HttpServer::start(o, *ks);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.error().message(), HasSubstr("token_file"));
  o.token_file = (dir_ / "missing").string();
  EXPECT_FALSE(HttpServer::start(o, *ks).ok());
}

}  // namespace
}  // namespace nq::killswitch

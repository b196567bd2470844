// The audit trail: lines written, fsync'ed and read back with filters; a torn
// last line is skipped, any other malformed line is an error naming it.
#include "controller/audit/audit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace nq::audit {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("nq-audit-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

Event event(Action a, std::string experiment, std::chrono::system_clock::time_point t) {
  Event e;
  e.time = t;
  e.actor = "operator:alice";
  e.action = a;
  e.experiment = std::move(experiment);
  return e;
}

TEST_F(AuditTest, RoundTripWithFilters) {
  const auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  auto log = AuditLog::open(dir_ / "audit.log");
  ASSERT_TRUE(log.ok()) << log.error().message();

  Event submit = event(Action::kSubmit, "exp-1", t0);
  submit.details = {{"file", "latency.yaml"}, {"kind", "NetworkChaos"}};
  Event selection = event(Action::kSelection, "exp-1", t0 + 1s);
  selection.details = {{"seed", 424242}, {"pods", {"shop/web-0", "shop/web-2"}}};
  Event other = event(Action::kInject, "exp-2", t0 + 2s);
  Event ks = event(Action::kKillSwitchEngage, "", t0 + 3s);
  ks.actor = "killswitch-token:bob";
  ks.details = {{"reason", "pager \"fired\"\nline two"}};  // quotes and a newline stay in one line
  for (const auto* e : {&submit, &selection, &other, &ks}) ASSERT_TRUE(log->append(*e).ok());

  auto all = read_log(dir_ / "audit.log");
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].action, Action::kSubmit);
  EXPECT_EQ((*all)[0].time, t0);
  EXPECT_EQ((*all)[0].actor, "operator:alice");
  EXPECT_EQ((*all)[0].details["file"], "latency.yaml");
  EXPECT_EQ((*all)[1].details["seed"], 424242);
  EXPECT_EQ((*all)[3].details["reason"], "pager \"fired\"\nline two");
  EXPECT_EQ((*all)[3].experiment, "");

  Filter by_exp;
  by_exp.experiment = "exp-1";
  auto exp1 = read_log(dir_ / "audit.log", by_exp);
  ASSERT_TRUE(exp1.ok());
  ASSERT_EQ(exp1->size(), 2u);
  EXPECT_EQ((*exp1)[1].action, Action::kSelection);

  Filter since;
  since.since = t0 + 2s;
  auto late = read_log(dir_ / "audit.log", since);
  ASSERT_TRUE(late.ok());
  ASSERT_EQ(late->size(), 2u);
  EXPECT_EQ((*late)[0].action, Action::kInject);
  EXPECT_EQ((*late)[1].action, Action::kKillSwitchEngage);

  // Reopening appends; nothing is truncated.
  {
    auto again = AuditLog::open(dir_ / "audit.log");
    ASSERT_TRUE(again.ok());
    ASSERT_TRUE(again->append(event(Action::kRevert, "exp-1", t0 + 4s)).ok());
  }
  auto after = read_log(dir_ / "audit.log", by_exp);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), 3u);
}

TEST_F(AuditTest, EveryLineIsOneJsonObjectWithTheCommonFields) {
  const std::string line =
      to_json_line(event(Action::kAbort, "exp-9", std::chrono::system_clock::time_point(1s)));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_THAT(line, HasSubstr("\"action\":\"abort\""));
  EXPECT_THAT(line, HasSubstr("\"time\":\"1970-01-01T00:00:01Z\""));
  EXPECT_THAT(line, HasSubstr("\"experiment\":\"exp-9\""));
}

TEST_F(AuditTest, ConcurrentAppendsNeverInterleave) {
  auto log = AuditLog::open(dir_ / "audit.log");
  ASSERT_TRUE(log.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        Event e =
            event(Action::kInject, "exp-" + std::to_string(t), std::chrono::system_clock::now());
        e.details = {{"i", i}, {"padding", std::string(300, 'x')}};
        ASSERT_TRUE(log->append(e).ok());
      }
    });
  for (auto& th : threads) th.join();
  auto all = read_log(dir_ / "audit.log");
  ASSERT_TRUE(all.ok()) << all.error().message();
  EXPECT_EQ(all->size(), 100u);
}

TEST(AuditParse, TornLastLineIsSkippedOtherGarbageIsAnError) {
  const std::string good =
      to_json_line(event(Action::kSubmit, "e", std::chrono::system_clock::now()));
  auto torn = parse_log(good + "\n" + good.substr(0, 20));
  ASSERT_TRUE(torn.ok()) << torn.error().message();
  EXPECT_EQ(torn->size(), 1u);

  auto bad = parse_log(good + "\n{\"time\": 3}\n" + good + "\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message(), HasSubstr("audit line 2"));
  EXPECT_THAT(bad.error().message(), HasSubstr("time"));

  auto unknown =
      parse_json_line(R"({"time":"2024-01-01T00:00:00Z","actor":"a","action":"explode"})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.error().message(), HasSubstr("action"));
}

TEST(AuditParse, MissingFileIsAnEmptyLog) {
  auto none = read_log("/nonexistent/nq-audit.log");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace nq::audit

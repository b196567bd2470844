// The fixture of the delay-line node tests: a namespace pair of the test's
// own (DelayEnv) and a line started on a's eth0 from a spec. Skips, with
// the reason, where the line cannot run.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "agent/delay/delay_line.h"
#include "common/cidr.h"
#include "tests/node/delay/delay_env.h"

namespace nq::testing {

inline Cidr cidr(const std::string& text) {
  auto c = parse_cidr(text);
  EXPECT_TRUE(c.ok()) << text;
  return *c;
}

class DelayLineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
    auto env = DelayEnv::create();
    ASSERT_TRUE(env.ok()) << env.error().message();
    env_ = std::move(*env);
  }

  // A line on a's eth0 scoped to `remote` (b's first address by default).
  std::unique_ptr<delay::DelayLine> start(delay::DelayLineSpec spec,
                                          const std::string& remote = "10.77.0.2/32") {
    spec.scope.remote = {cidr(remote)};
    auto plan = delay::plan_delay_line(spec, "spec");
    EXPECT_TRUE(plan.ok()) << plan.error().message();
    if (!plan.ok()) return nullptr;
    auto line = delay::DelayLine::start(env_->a(), *plan);
    EXPECT_TRUE(line.ok()) << line.error().message();
    return line.ok() ? std::move(*line) : nullptr;
  }

  std::unique_ptr<DelayEnv> env_;
};

}  // namespace nq::testing

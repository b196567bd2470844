#include "agent/delay/delay_queue.h"

#include <gtest/gtest.h>

namespace nq::delay {
namespace {

using namespace std::chrono_literals;

Frame frame(uint8_t tag) {
  return Frame{tag};
}

TEST(DelayQueue, ReleasesByDueTimeNotByArrival) {
  DelayQueue q(10, false);
  ASSERT_TRUE(q.push(30ms, frame(1)));
  ASSERT_TRUE(q.push(10ms, frame(2)));
  ASSERT_TRUE(q.push(20ms, frame(3)));
  EXPECT_EQ(q.next_due(), 10ms);
  EXPECT_FALSE(q.pop_due(9ms));
  EXPECT_EQ(q.pop_due(25ms), frame(2));
  EXPECT_EQ(q.pop_due(25ms), frame(3));
  EXPECT_FALSE(q.pop_due(25ms));
  EXPECT_EQ(q.pop_due(30ms), frame(1));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.next_due());
}

TEST(DelayQueue, EqualDueTimesLeaveInArrivalOrder) {
  DelayQueue q(100, false);
  for (uint8_t i = 0; i < 50; ++i) ASSERT_TRUE(q.push(5ms, frame(i)));
  for (uint8_t i = 0; i < 50; ++i) EXPECT_EQ(q.pop_due(5ms), frame(i));
}

TEST(DelayQueue, PreservingOrderRaisesEachDueTimeToItsPredecessors) {
  DelayQueue q(10, true);
  ASSERT_TRUE(q.push(30ms, frame(1)));
  ASSERT_TRUE(q.push(10ms, frame(2)));  // held until 30 ms, behind frame 1
  EXPECT_EQ(q.next_due(), 30ms);
  EXPECT_FALSE(q.pop_due(20ms));
  EXPECT_EQ(q.pop_due(30ms), frame(1));
  EXPECT_EQ(q.pop_due(30ms), frame(2));
}

TEST(DelayQueue, DropsBeyondTheLimit) {
  DelayQueue q(2, false);
  EXPECT_TRUE(q.push(1ms, frame(1)));
  EXPECT_TRUE(q.push(2ms, frame(2)));
  EXPECT_FALSE(q.push(0ms, frame(3)));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.pop(), frame(1));
  EXPECT_TRUE(q.push(0ms, frame(3)));
  EXPECT_EQ(q.pop(), frame(3));  // pop() ignores the clock, not the order
}

}  // namespace
}  // namespace nq::delay

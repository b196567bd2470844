// bounded_parallel_for: every index once, never more than `width` at a time.
#include "agent/runtime/cri/fan_out.h"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

namespace nq::cri {
namespace {

// Runs n items of `work` each and reports the most that ran at once.
size_t peak_concurrency(size_t n, size_t width, std::chrono::milliseconds work,
                        std::vector<int>& hits) {
  std::atomic<size_t> running{0}, peak{0};
  hits.assign(n, 0);
  bounded_parallel_for(n, width, [&](size_t i) {
    const size_t now = running.fetch_add(1) + 1;
    for (size_t p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
    }
    std::this_thread::sleep_for(work);
    ++hits[i];  // one slot per index: no two calls share it
    running.fetch_sub(1);
  });
  return peak.load();
}

TEST(BoundedParallelFor, EveryIndexOnceAndAtMostWidthAtATime) {
  std::vector<int> hits;
  const size_t peak = peak_concurrency(30, 8, std::chrono::milliseconds(5), hits);
  EXPECT_EQ(hits, std::vector<int>(30, 1));
  EXPECT_LE(peak, 8u);
  // Sleeping calls overlap even on a loaded 2-core machine.
  EXPECT_GE(peak, 2u);
}

TEST(BoundedParallelFor, WidthOneIsSequentialOnTheCallersThread) {
  std::set<std::thread::id> threads;
  std::mutex mu;
  std::vector<int> order;
  bounded_parallel_for(5, 1, [&](size_t i) {
    std::lock_guard lock(mu);
    threads.insert(std::this_thread::get_id());
    order.push_back(static_cast<int>(i));
  });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(BoundedParallelFor, NothingToDoAndWidthZero) {
  int calls = 0;
  bounded_parallel_for(0, 8, [&](size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  std::vector<int> hits;
  // Width 0 is taken as 1, not as "never run".
  EXPECT_EQ(peak_concurrency(3, 0, std::chrono::milliseconds(1), hits), 1u);
  EXPECT_EQ(hits, std::vector<int>(3, 1));
}

}  // namespace
}  // namespace nq::cri

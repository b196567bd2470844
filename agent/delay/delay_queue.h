// The frames a delay line holds, released by due time (earliest first).
//
// Releasing by due time rather than in arrival order is what netem does
// when it has jitter: strict FIFO would hold a frame behind an earlier one
// with a later due time, and with packets closer together than the jitter
// that skews the delay distribution towards the later samples. A spec that
// asks for order gets FIFO with each due time raised to its predecessor's.
// Pure: time is passed in.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace nq::delay {

using Frame = std::vector<uint8_t>;

class DelayQueue {
 public:
  DelayQueue(size_t limit, bool preserve_order) : limit_(limit), preserve_order_(preserve_order) {}

  // Holds `frame` until `due`; false (the frame is dropped) when `limit`
  // frames are held already, like netem over its limit.
  bool push(std::chrono::nanoseconds due, Frame frame);
  // The earliest due time held.
  std::optional<std::chrono::nanoseconds> next_due() const;
  // The earliest frame if it is due at `now`. Equal due times leave in
  // arrival order.
  std::optional<Frame> pop_due(std::chrono::nanoseconds now);
  // The earliest frame whatever its due time (draining).
  std::optional<Frame> pop();

  size_t size() const noexcept { return heap_.size(); }
  bool empty() const noexcept { return heap_.empty(); }

 private:
  struct Held {
    std::chrono::nanoseconds due;
    uint64_t seq;
    // mutable: std::priority_queue::top() is const, and moving the frame
    // out right before pop() does not change the ordering keys.
    mutable Frame frame;
  };
  struct Later {
    bool operator()(const Held& a, const Held& b) const {
      return a.due != b.due ? a.due > b.due : a.seq > b.seq;
    }
  };

  size_t limit_;
  bool preserve_order_;
  uint64_t seq_ = 0;
  std::chrono::nanoseconds last_due_{0};
  std::priority_queue<Held, std::vector<Held>, Later> heap_;
};

}  // namespace nq::delay

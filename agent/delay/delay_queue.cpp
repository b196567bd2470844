#include "agent/delay/delay_queue.h"

#include <algorithm>

namespace nq::delay {

bool DelayQueue::push(std::chrono::nanoseconds due, Frame frame) {
  if (heap_.size() >= limit_) return false;
  if (preserve_order_) {
    due = std::max(due, last_due_);
    last_due_ = due;
  }
  heap_.push(Held{due, seq_++, std::move(frame)});
  return true;
}

std::optional<std::chrono::nanoseconds> DelayQueue::next_due() const {
  if (heap_.empty()) return std::nullopt;
  return heap_.top().due;
}

std::optional<Frame> DelayQueue::pop_due(std::chrono::nanoseconds now) {
  if (heap_.empty() || heap_.top().due > now) return std::nullopt;
  return pop();
}

std::optional<Frame> DelayQueue::pop() {
  if (heap_.empty()) return std::nullopt;
  Frame f = std::move(heap_.top().frame);
  heap_.pop();
  return f;
}

}  // namespace nq::delay

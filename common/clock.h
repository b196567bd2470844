// Time as a dependency, so TTL and lease logic is tested without sleeping.
#pragma once

#include <chrono>

namespace nq {

class Clock {
 public:
  using time_point = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  // Wall time: deadlines are journaled and must mean the same after a restart.
  virtual time_point now() const = 0;
};

class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace nq

#include "agent/net/program_pool.h"

#include <spdlog/spdlog.h>

namespace nq::net {

ProgramPool::ProgramPool(NetfaultLoadOptions options, size_t spares)
    : options_(options), spares_(spares) {
  if (spares_ > 0) thread_ = std::thread([this] { run(); });
}

ProgramPool::~ProgramPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t ProgramPool::ready() const {
  std::lock_guard lock(mu_);
  return ready_.size();
}

Result<NetfaultProgram> ProgramPool::take() {
  {
    std::lock_guard lock(mu_);
    if (!ready_.empty()) {
      NetfaultProgram prog = std::move(ready_.front());
      ready_.pop_front();
      cv_.notify_all();  // time to load the next spare
      return prog;
    }
  }
  return NetfaultProgram::load(options_);
}

void ProgramPool::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || ready_.size() < spares_; });
    if (stop_) return;
    lock.unlock();
    auto prog = NetfaultProgram::load(options_);
    lock.lock();
    if (prog.ok()) {
      ready_.push_back(std::move(*prog));
      continue;
    }
    // A kernel that cannot load it now will not in a moment either; take()
    // loads on demand and reports the error to the caller. Retry slowly.
    spdlog::warn("netfault program pool: {}; retrying in 30 s", prog.error().message());
    cv_.wait_for(lock, std::chrono::seconds(30), [this] { return stop_; });
  }
}

}  // namespace nq::net

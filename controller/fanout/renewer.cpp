#include "controller/fanout/renewer.h"

#include <spdlog/spdlog.h>

#include "controller/fanout/ids.h"

namespace nq::fanout {

using SteadyClock = std::chrono::steady_clock;

LeaseRenewer::LeaseRenewer(FanOut& fanout, std::function<std::vector<std::string>()> agents)
    : fanout_(fanout), agents_(std::move(agents)) {}

LeaseRenewer::~LeaseRenewer() {
  stop();
}

void LeaseRenewer::add(const std::string& experiment_uid, std::chrono::nanoseconds lease) {
  {
    std::lock_guard lock(mu_);
    entries_[experiment_uid] = {lease, SteadyClock::now() + lease / 3};
  }
  cv_.notify_all();
}

void LeaseRenewer::remove(const std::string& experiment_uid) {
  std::lock_guard lock(mu_);
  entries_.erase(experiment_uid);
}

std::vector<std::string> LeaseRenewer::experiments() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [uid, e] : entries_) out.push_back(uid);
  return out;
}

std::map<std::string, std::vector<AgentOutcome>> LeaseRenewer::renew_due(bool force) {
  std::vector<std::string> due;
  {
    std::lock_guard lock(mu_);
    const auto now = SteadyClock::now();
    for (auto& [uid, e] : entries_) {
      if (!force && e.next > now) continue;
      due.push_back(uid);
      // Scheduled from the attempt, not its success: a failed round is
      // retried at the next third, not in a tight loop.
      e.next = now + e.lease / 3;
    }
  }
  std::map<std::string, std::vector<AgentOutcome>> out;
  if (due.empty()) return out;
  const std::vector<std::string> agents = agents_();
  for (const auto& uid : due) {
    // Zero duration: each injection keeps the lease length it was applied with.
    auto outcomes = fanout_.renew(agents, lease_holder(uid), std::chrono::nanoseconds(0));
    if (std::string failed = summarize_failures(outcomes); !failed.empty())
      spdlog::warn("lease renewal of experiment {}: {}", uid, failed);
    out.emplace(uid, std::move(outcomes));
  }
  return out;
}

void LeaseRenewer::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void LeaseRenewer::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LeaseRenewer::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto wake = SteadyClock::now() + std::chrono::seconds(1);
    for (const auto& [uid, e] : entries_) wake = std::min(wake, e.next);
    // No predicate: add() wakes us to recompute `wake` for a shorter lease.
    cv_.wait_until(lock, wake);
    if (stopping_) break;
    lock.unlock();
    (void)renew_due();
    lock.lock();
  }
}

}  // namespace nq::fanout

// The controller's side of the dead-man switch: while an experiment runs, the
// lease of its injections ("controller/<uid>") is renewed on every agent every
// lease/3, so two renewals may be lost before an agent reverts on its own.
// When the controller dies, renewals stop and every agent reverts within one
// lease.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/fanout/fanout.h"

namespace nq::fanout {

class LeaseRenewer {
 public:
  // `agents` is asked before each round (discovery may change the set).
  LeaseRenewer(FanOut& fanout, std::function<std::vector<std::string>()> agents);
  // Stops the thread; the leases then run out on the agents, by design.
  ~LeaseRenewer();
  LeaseRenewer(const LeaseRenewer&) = delete;
  LeaseRenewer& operator=(const LeaseRenewer&) = delete;

  // Starts renewing an experiment's lease (of length `lease`, as its Apply
  // carried) from now on, every lease/3.
  void add(const std::string& experiment_uid, std::chrono::nanoseconds lease);
  // Stops renewing (the experiment ended or was reverted).
  void remove(const std::string& experiment_uid);
  std::vector<std::string> experiments() const;

  // One renewal round for every experiment that is due at `now` (all with
  // `force`); returns the outcomes by experiment uid. The thread calls this.
  std::map<std::string, std::vector<AgentOutcome>> renew_due(bool force = false);

  // Runs renew_due() in a thread of its own until stop() or destruction.
  void start();
  void stop();

 private:
  struct Entry {
    std::chrono::nanoseconds lease;
    std::chrono::steady_clock::time_point next;
  };
  void run();

  FanOut& fanout_;
  std::function<std::vector<std::string>()> agents_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace nq::fanout

// The agent's injections: apply, revert, expiry (TTL and lease), the kill
// switch, and start-up reconcile. Every state change is journaled before the
// kernel is touched; the kernel work itself is the backends'.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/caps/probe.h"
#include "agent/core/backend.h"
#include "agent/core/spec.h"
#include "agent/journal/journal.h"
#include "agent/metrics/metrics.h"
#include "agent/runtime/runtime.h"
#include "agent/runtime/selector.h"
#include "common/clock.h"
#include "common/result.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::core {

struct ManagerOptions {
  std::string node_name;
  runtime::SafetyPolicy safety;
  Limits limits;
  // Recently reverted injections kept for idempotent Revert and for refusing
  // the reuse of an id.
  size_t history = 1024;
  // Compact the journal when it grows beyond this.
  uint64_t compact_bytes = 1 << 20;
};

class InjectionManager {
 public:
  // Everything passed by reference must outlive the manager.
  InjectionManager(ManagerOptions options, runtime::Runtime& runtime, Journal& journal,
                   NetworkBackend& network, const Capabilities& caps, AgentMetrics* metrics,
                   const Clock& clock);
  ~InjectionManager();
  InjectionManager(const InjectionManager&) = delete;
  InjectionManager& operator=(const InjectionManager&) = delete;

  // Registers the backend for its kinds(); before recover(). A kind without a
  // backend is refused with FAILED_PRECONDITION.
  void add_backend(WorkloadBackend& backend);

  // Start-up: reverts whatever the journal says an earlier incarnation left,
  // restores the kill switch, compacts the journal. Call once, before serving.
  Status recover();

  Result<nodequake::v1::ApplyResponse> apply(const nodequake::v1::ApplyRequest& request);
  Result<nodequake::v1::Injection> revert(const std::string& id);
  nodequake::v1::ListResponse list() const;
  Result<nodequake::v1::ListTargetsResponse> list_targets(
      const nodequake::v1::ListTargetsRequest& request);
  Result<uint32_t> renew_lease(const std::string& holder, std::chrono::nanoseconds duration);
  // The kill switch: engaged (and journaled) first, then everything reverted.
  Result<nodequake::v1::RevertAllResponse> revert_all(const std::string& actor,
                                                      const std::string& reason);
  Result<nodequake::v1::KillSwitchStatus> release(const std::string& actor);
  nodequake::v1::KillSwitchStatus killswitch() const;

  // Reverts every injection whose TTL or lease has run out; returns the next
  // deadline (time_point::max() when nothing is active).
  Clock::time_point expire_due();
  // Runs expire_due() on a thread of its own until stop_expiry().
  void start_expiry();
  void stop_expiry();
  // Graceful shutdown: reverts everything (reason "shutdown"). Idempotent.
  void revert_everything_for_shutdown();

  size_t active_count() const;
  // Every active stress fault's requested and achieved load (the metrics).
  std::vector<StressLoad> stress_loads() const;

  // The journal sink for backends: appends durably and keeps the manager's
  // view of the journal current. Backends call it only from inside the
  // manager's calls into them (the manager's lock is held).
  Status append_record(const nodequake::v1::journal::Record& record) { return append(record); }

 private:
  struct Active {
    nodequake::v1::Injection info;
    FaultKind kind = FaultKind::kPartition;
    Clock::time_point expires;
    Clock::time_point lease_expires;  // max() without a lease
    std::chrono::nanoseconds lease_duration{0};
  };

  Status append(const nodequake::v1::journal::Record& record);  // journal + mirror
  WorkloadBackend* backend_for(FaultKind kind) const;
  Status reconcile_resources_locked(size_t& failed);
  void release_all_locked();
  Result<nodequake::v1::Injection> revert_locked(const std::string& id, const std::string& reason);
  Status check_repeat(const Active& existing, const nodequake::v1::ApplyRequest& request) const;
  void update_gauges();
  void maybe_compact();
  void remember(nodequake::v1::Injection info);
  Clock::time_point next_deadline_locked() const;

  ManagerOptions options_;
  runtime::Runtime& runtime_;
  Journal& journal_;
  NetworkBackend& network_;
  std::map<FaultKind, WorkloadBackend*> workload_;
  const Capabilities& caps_;
  AgentMetrics* metrics_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::map<std::string, Active> active_;
  std::deque<nodequake::v1::Injection> history_;
  nodequake::v1::KillSwitchStatus killswitch_;
  JournalState mirror_;  // what the journal holds, for compaction

  std::condition_variable expiry_cv_;
  bool expiry_stop_ = false;
  std::thread expiry_thread_;
};

}  // namespace nq::core

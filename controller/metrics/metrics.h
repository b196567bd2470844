// The controller's Prometheus metrics, named for the seed's dashboards and
// alerts (docs/controller.md, "Metrics"):
//
//   nodequake_experiments_active{kind}        gauge: experiments running now
//   nodequake_injected_targets                gauge: injections applied, not yet reverted
//   nodequake_blast_radius_ratio{experiment}  gauge: chosen / eligible pods of a running experiment
//   nodequake_aborts_total{reason}            counter: experiments aborted (rule, slo-check,
//                                             operator, killswitch, shutdown)
//   nodequake_experiments_total{kind,outcome} counter: experiments finished, by outcome
//   nodequake_recovery_duration_seconds       histogram: revert until the SLOs were back
//   nodequake_killswitch_engaged              gauge: 1 while the kill switch is engaged
//
// The daemon serves them with the agent's MetricsEndpoint (agent/metrics).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace nq::controller {

// Every method may be called from any thread (prometheus-cpp locks its
// families; the children are atomics).
class ControllerMetrics {
 public:
  explicit ControllerMetrics(std::shared_ptr<prometheus::Registry> registry);

  // +1 / -1 on experiments_active{kind}.
  void experiment_started(std::string_view kind);
  void experiment_finished(std::string_view kind, std::string_view outcome);
  // An experiment an earlier incarnation left running (found at start):
  // experiments_total{kind, outcome="Interrupted"} without touching active.
  void experiment_interrupted(std::string_view kind);
  // Adds (or, negative, removes) applied injections.
  void add_injected(double delta);
  // Blast radius of a running experiment; remove it when the experiment ends.
  void set_blast_radius(const std::string& experiment, double ratio);
  void clear_blast_radius(const std::string& experiment);
  void count_abort(std::string_view reason);
  void observe_recovery(double seconds);
  void set_killswitch(bool engaged);

  const std::shared_ptr<prometheus::Registry>& registry() const noexcept { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>* active_;
  prometheus::Family<prometheus::Counter>* finished_;
  prometheus::Gauge* injected_;
  prometheus::Family<prometheus::Gauge>* blast_radius_;
  prometheus::Family<prometheus::Counter>* aborts_;
  prometheus::Histogram* recovery_;
  prometheus::Gauge* killswitch_;
};

}  // namespace nq::controller

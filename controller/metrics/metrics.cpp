#include "controller/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace nq::controller {

ControllerMetrics::ControllerMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)) {
  auto& r = *registry_;
  active_ = &prometheus::BuildGauge()
                 .Name("nodequake_experiments_active")
                 .Help("Experiments running now, by kind")
                 .Register(r);
  finished_ = &prometheus::BuildCounter()
                   .Name("nodequake_experiments_total")
                   .Help("Experiments finished, by kind and outcome")
                   .Register(r);
  injected_ = &prometheus::BuildGauge()
                   .Name("nodequake_injected_targets")
                   .Help("Injections applied by the controller and not yet reverted")
                   .Register(r)
                   .Add({});
  blast_radius_ = &prometheus::BuildGauge()
                       .Name("nodequake_blast_radius_ratio")
                       .Help("Chosen over eligible pods of each running experiment")
                       .Register(r);
  aborts_ =
      &prometheus::BuildCounter()
           .Name("nodequake_aborts_total")
           .Help("Experiments aborted, by reason (rule, slo-check, operator, killswitch, shutdown)")
           .Register(r);
  // Recovery takes seconds to minutes: buckets from 1 s to 10 min.
  recovery_ =
      &prometheus::BuildHistogram()
           .Name("nodequake_recovery_duration_seconds")
           .Help("Time from the revert until every SLO was back within bounds")
           .Register(r)
           .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 30, 60, 120, 300, 600});
  killswitch_ = &prometheus::BuildGauge()
                     .Name("nodequake_killswitch_engaged")
                     .Help("1 while the controller's kill switch is engaged")
                     .Register(r)
                     .Add({});
}

void ControllerMetrics::experiment_started(std::string_view kind) {
  active_->Add({{"kind", std::string(kind)}}).Increment();
}

void ControllerMetrics::experiment_finished(std::string_view kind, std::string_view outcome) {
  active_->Add({{"kind", std::string(kind)}}).Decrement();
  finished_->Add({{"kind", std::string(kind)}, {"outcome", std::string(outcome)}}).Increment();
}

void ControllerMetrics::experiment_interrupted(std::string_view kind) {
  finished_->Add({{"kind", std::string(kind)}, {"outcome", "Interrupted"}}).Increment();
}

void ControllerMetrics::add_injected(double delta) {
  injected_->Increment(delta);
}

void ControllerMetrics::set_blast_radius(const std::string& experiment, double ratio) {
  blast_radius_->Add({{"experiment", experiment}}).Set(ratio);
}

void ControllerMetrics::clear_blast_radius(const std::string& experiment) {
  auto& g = blast_radius_->Add({{"experiment", experiment}});
  blast_radius_->Remove(&g);
}

void ControllerMetrics::count_abort(std::string_view reason) {
  aborts_->Add({{"reason", std::string(reason)}}).Increment();
}

void ControllerMetrics::observe_recovery(double seconds) {
  recovery_->Observe(seconds);
}

void ControllerMetrics::set_killswitch(bool engaged) {
  killswitch_->Set(engaged ? 1 : 0);
}

}  // namespace nq::controller

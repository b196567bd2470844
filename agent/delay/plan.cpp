#include "agent/delay/plan.h"

namespace nq::delay {
namespace {

constexpr uint32_t kUnusedClassid = 0x4e510001;  // "NQ":1

Status percent(double v, const std::string& field) {
  if (!(v >= 0 && v <= 100))
    return Error::invalid_argument(field, std::to_string(v) + " is outside 0..100");
  return ok();
}

Status unsupported(bool used, const std::string& field, const std::string& what) {
  if (!used) return ok();
  return Error::failed_precondition(field + ": " + what +
                                    " needs sch_netem; the eBPF delay line does not do it");
}

}  // namespace

Result<DelayLinePlan> plan_delay_line(const DelayLineSpec& spec, const std::string& field) {
  const std::string f = field.empty() ? "" : field + ".";
  if (spec.ifname.empty() || spec.ifname.size() >= 16)
    return Error::invalid_argument(f + "interface", "'" + spec.ifname + "' is not a device name");
  if (spec.delay < 0ns || spec.delay > net::kMaxNetemDelay)
    return Error::invalid_argument(f + "delay", "must be within 0..60s");
  if (spec.jitter < 0ns || spec.jitter > net::kMaxNetemDelay)
    return Error::invalid_argument(f + "jitter", "must be within 0..60s");
  NQ_TRY(percent(spec.delay_correlation, f + "delay_correlation"));
  NQ_TRY(percent(spec.loss, f + "loss"));
  if (spec.limit == 0 || spec.limit > net::kMaxNetemLimit)
    return Error::invalid_argument(f + "limit",
                                   std::to_string(spec.limit) + " is outside 1..1000000");
  if (spec.stale_after < kMinStaleAfter || spec.stale_after > kMaxStaleAfter)
    return Error::invalid_argument(f + "stale_after", "must be within 20ms..10s");

  DelayLinePlan plan;
  plan.ifname = spec.ifname;
  net::RuleSlots slots;
  net::NetRule rule;
  rule.kind = net::NetRule::Kind::kShape;
  rule.dirs = net::kEgress;
  rule.scope = spec.scope;
  // The rule compiler wants an HTB class for a SHAPE rule; the delayline
  // program never reads it (nothing is classified), so any valid handle does.
  rule.egress_classid = kUnusedClassid;
  slots[0] = rule;
  auto rules = net::compile_rules(slots, 0);
  if (!rules.ok()) return std::move(rules).error().wrapped(f + "path.scope");
  plan.rules = std::move(*rules);
  plan.model.delay = spec.delay;
  plan.model.jitter = spec.jitter;
  plan.model.correlation = net::percent_to_probability(spec.delay_correlation);
  plan.model.distribution = spec.distribution;
  plan.loss = net::percent_to_probability(spec.loss);
  // Loss alone is done in BPF and needs no engine. A line with neither
  // delay nor loss still takes every frame through the engine: 0 ms, the
  // line's own cost (what the benchmark measures at 0 ms).
  plan.redirect = spec.delay > 0ns || spec.jitter > 0ns || spec.loss == 0;
  plan.limit = spec.limit;
  plan.preserve_order = spec.preserve_order;
  plan.stale_after = spec.stale_after;
  plan.heartbeat_period = spec.stale_after / 10;
  return plan;
}

Result<DelayLineSpec> spec_from_netem(const net::NetemParams& params, const net::Path& path,
                                      const std::string& field) {
  const std::string f = field.empty() ? "" : field + ".";
  if (path.dirs != net::kEgress)
    return Error::failed_precondition(
        f + "path.direction: the eBPF delay line delays egress (TO) only so far");
  NQ_TRY(unsupported(params.duplicate > 0, f + "duplicate", "duplication"));
  NQ_TRY(unsupported(params.corrupt > 0, f + "corrupt", "corruption"));
  NQ_TRY(unsupported(params.reorder > 0 || params.gap > 0, f + "reorder", "reordering"));
  NQ_TRY(unsupported(params.loss_correlation > 0, f + "loss_correlation", "correlated loss"));
  DelayLineSpec spec;
  spec.ifname = path.ifname;
  spec.scope = path.scope;
  spec.delay = params.delay;
  spec.jitter = params.jitter;
  spec.delay_correlation = params.delay_correlation;
  spec.distribution = params.distribution;
  spec.loss = params.loss;
  spec.limit = params.limit;
  return spec;
}

}  // namespace nq::delay

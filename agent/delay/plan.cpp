#include "agent/delay/plan.h"

#include <variant>

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
  const net::NetemParams& n = spec.netem;
  if (spec.ifname.empty() || spec.ifname.size() >= 16)
    return Error::invalid_argument(f + "interface", "'" + spec.ifname + "' is not a device name");
  if (n.delay < 0ns || n.delay > net::kMaxNetemDelay)
    return Error::invalid_argument(f + "delay", "must be within 0..60s");
  if (n.jitter < 0ns || n.jitter > net::kMaxNetemDelay)
    return Error::invalid_argument(f + "jitter", "must be within 0..60s");
  if (spec.dirs == 0 || (spec.dirs & ~net::kBoth) != 0)
    return Error::invalid_argument(
        f + "path.direction", "must be TO, FROM or BOTH (dirs " + std::to_string(spec.dirs) + ")");
  NQ_TRY(percent(n.delay_correlation, f + "delay_correlation"));
  NQ_TRY(percent(n.loss, f + "loss"));
  NQ_TRY(percent(n.loss_correlation, f + "loss_correlation"));
  NQ_TRY(percent(n.duplicate, f + "duplicate"));
  NQ_TRY(percent(n.duplicate_correlation, f + "duplicate_correlation"));
  NQ_TRY(percent(n.corrupt, f + "corrupt"));
  NQ_TRY(percent(n.corrupt_correlation, f + "corrupt_correlation"));
  // Release by due time already reorders like netem with jitter; netem's
  // reorder (send some packets at once, ahead of the held ones) is not done.
  NQ_TRY(unsupported(n.reorder > 0 || n.gap > 0, f + "reorder", "reordering"));
  if (n.limit == 0 || n.limit > net::kMaxNetemLimit)
    return Error::invalid_argument(f + "limit", std::to_string(n.limit) + " is outside 1..1000000");
  if (spec.stale_after < kMinStaleAfter || spec.stale_after > kMaxStaleAfter)
    return Error::invalid_argument(f + "stale_after", "must be within 20ms..10s");

  DelayLinePlan plan;
  plan.ifname = spec.ifname;
  plan.dirs = spec.dirs;
  net::RuleSlots slots;
  net::NetRule rule;
  rule.kind = net::NetRule::Kind::kShape;
  rule.dirs = spec.dirs;
  rule.scope = spec.scope;
  // The rule compiler wants an HTB class per direction of a SHAPE rule; the
  // delayline program never reads them (nothing is classified), so any
  // valid handle does.
  if (spec.dirs & net::kEgress) rule.egress_classid = kUnusedClassid;
  if (spec.dirs & net::kIngress) rule.ingress_classid = kUnusedClassid;
  slots[0] = rule;
  auto rules = net::compile_rules(slots, 0);
  if (!rules.ok()) return std::move(rules).error().wrapped(f + "path.scope");
  plan.rules = std::move(*rules);
  plan.model.delay = n.delay;
  plan.model.jitter = n.jitter;
  plan.model.correlation = net::percent_to_probability(n.delay_correlation);
  plan.model.distribution = n.distribution;
  DirectionConfig& r = plan.rolls;
  r.loss = net::percent_to_probability(n.loss);
  r.loss_correlation = net::percent_to_probability(n.loss_correlation);
  r.duplicate = net::percent_to_probability(n.duplicate);
  r.duplicate_correlation = net::percent_to_probability(n.duplicate_correlation);
  r.corrupt = net::percent_to_probability(n.corrupt);
  r.corrupt_correlation = net::percent_to_probability(n.corrupt_correlation);
  // Loss, duplication and corruption are done in BPF and need no engine. A
  // line with none of them and no delay still takes every frame through the
  // engine: 0 ms, the line's own cost (what the benchmark measures at 0 ms).
  const bool rolls_only = n.loss > 0 || n.duplicate > 0 || n.corrupt > 0;
  r.redirect = n.delay > 0ns || n.jitter > 0ns || !rolls_only;
  plan.limit = n.limit;
  plan.preserve_order = spec.preserve_order;
  plan.stale_after = spec.stale_after;
  plan.heartbeat_period = spec.stale_after / 10;
  return plan;
}

DelayLineSpec spec_from_netem(const net::NetemParams& params, const net::Path& path) {
  DelayLineSpec spec;
  spec.ifname = path.ifname;
  spec.dirs = path.dirs;
  spec.scope = path.scope;
  spec.netem = params;
  return spec;
}

Result<DelayLineSpec> spec_from_netem_leaves(const std::optional<net::LeafSpec>& egress,
                                             const std::optional<net::LeafSpec>& ingress,
                                             const net::Path& path, const std::string& field) {
  const std::optional<net::LeafSpec>& leaf = egress ? egress : ingress;
  if (!leaf || !std::holds_alternative<net::NetemParams>(*leaf))
    return Error::invalid_argument(field.empty() ? "netem" : field,
                                   "not a netem fault: no netem parameters for either direction");
  const auto& params = std::get<net::NetemParams>(*leaf);
  // plan_netem() gives both leaves the same (split) parameters; a caller
  // with different ones per direction needs two lines.
  if (egress && ingress &&
      (!std::holds_alternative<net::NetemParams>(*ingress) ||
       std::get<net::NetemParams>(*ingress) != params))
    return Error::invalid_argument(field.empty() ? "netem" : field,
                                   "the two directions' netem parameters differ");
  return spec_from_netem(params, path);
}

}  // namespace nq::delay

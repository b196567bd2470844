#include "controller/experiment/workflow_plan.h"

#include <algorithm>
#include <map>
#include <set>

namespace nq::experiment {
namespace {

class Planner {
 public:
  Planner(const Workflow& wf, Diagnostics& diag) : wf_(wf), diag_(diag) {
    for (size_t i = 0; i < wf.templates.size(); ++i) index_.emplace(wf.templates[i].name, i);
  }

  std::optional<Plan> run() {
    const size_t before = diag_.size();
    auto entry = index_.find(wf_.entry);
    if (entry == index_.end()) {
      diag_.add(wf_.entry_line ? wf_.entry_line : wf_.where.line, "spec.entry",
                "\"" + wf_.entry + "\" is not the name of a template");
      return std::nullopt;
    }
    // References and cycles first, so the flattening below may recurse freely.
    std::vector<int> state(wf_.templates.size(), 0);  // 0 new, 1 on the path, 2 done
    std::vector<std::string> path;
    const bool references_ok = visit(entry->second, state, path);
    for (size_t i = 0; i < wf_.templates.size(); ++i)
      if (state[i] == 0 && !wf_.templates[i].name.empty())
        diag_.add(wf_.templates[i].line, field(i),
                  "template \"" + wf_.templates[i].name + "\" is not reachable from the entry \"" +
                      wf_.entry + "\"");
    if (!references_ok) return std::nullopt;

    Plan plan;
    const Template& t = wf_.templates[entry->second];
    if (t.type == TemplateType::kSerial) {
      serial(entry->second, plan.phases);
    } else if (t.type == TemplateType::kParallel) {
      plan.phases.push_back(parallel(entry->second));
    } else {
      plan.phases.push_back(Phase{{Lane{{entry->second}}}});
    }
    if (diag_.size() != before) return std::nullopt;
    return plan;
  }

 private:
  std::string field(size_t i) const { return "spec.templates[" + std::to_string(i) + "]"; }

  bool visit(size_t i, std::vector<int>& state, std::vector<std::string>& path) {
    const Template& t = wf_.templates[i];
    state[i] = 1;
    path.push_back(t.name);
    bool good = true;
    for (size_t c = 0; c < t.children.size(); ++c) {
      const std::string where = field(i) + ".children[" + std::to_string(c) + "]";
      auto it = index_.find(t.children[c]);
      if (it == index_.end()) {
        diag_.add(t.line, where, "\"" + t.children[c] + "\" is not the name of a template");
        good = false;
      } else if (state[it->second] == 1) {
        // The edge back to a template on the current path closes a cycle.
        std::string cycle;
        for (const std::string& p : path) cycle += p + " -> ";
        diag_.add(t.line, where, "cycle: " + cycle + t.children[c]);
        good = false;
      } else if (state[it->second] == 0) {
        // Keep going after a problem so every bad reference is reported.
        if (!visit(it->second, state, path)) good = false;
      }
    }
    state[i] = 2;
    path.pop_back();
    return good;
  }

  size_t child(size_t parent, size_t c) const {
    return index_.at(wf_.templates[parent].children[c]);
  }

  void serial(size_t i, std::vector<Phase>& phases) {
    const Template& t = wf_.templates[i];
    for (size_t c = 0; c < t.children.size(); ++c) {
      const size_t k = child(i, c);
      const Template& ct = wf_.templates[k];
      if (ct.type == TemplateType::kSerial)
        serial(k, phases);
      else if (ct.type == TemplateType::kParallel)
        phases.push_back(parallel(k));
      else
        phases.push_back(Phase{{Lane{{k}}}});
    }
  }

  Phase parallel(size_t i) {
    Phase phase;
    const Template& t = wf_.templates[i];
    for (size_t c = 0; c < t.children.size(); ++c) {
      const size_t k = child(i, c);
      const Template& ct = wf_.templates[k];
      if (ct.type == TemplateType::kParallel) {
        Phase inner = parallel(k);
        for (Lane& l : inner.lanes) phase.lanes.push_back(std::move(l));
      } else if (ct.type == TemplateType::kSerial) {
        Lane lane;
        lane_of(k, i, lane);
        phase.lanes.push_back(std::move(lane));
      } else {
        phase.lanes.push_back(Lane{{k}});
      }
    }
    return phase;
  }

  // A Serial used as a lane: its leaves in order (nested Serials merge).
  void lane_of(size_t serial_index, size_t parallel_index, Lane& lane) {
    const Template& s = wf_.templates[serial_index];
    for (size_t c = 0; c < s.children.size(); ++c) {
      const size_t k = child(serial_index, c);
      const Template& ct = wf_.templates[k];
      if (ct.type == TemplateType::kSerial) {
        lane_of(k, parallel_index, lane);
      } else if (ct.type == TemplateType::kParallel) {
        diag_.add(s.line, field(serial_index) + ".children[" + std::to_string(c) + "]",
                  "Parallel \"" + ct.name + "\" inside Serial \"" + s.name +
                      "\" inside Parallel \"" + wf_.templates[parallel_index].name +
                      "\" is nested too deep for phases; split it into consecutive phases");
      } else {
        lane.steps.push_back(k);
      }
    }
  }

  const Workflow& wf_;
  Diagnostics& diag_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace

std::optional<Plan> plan_workflow(const Workflow& wf, Diagnostics& diag) {
  return Planner(wf, diag).run();
}

Result<Plan> plan_workflow(const Workflow& wf) {
  Diagnostics diag(wf.where.file);
  auto plan = plan_workflow(wf, diag);
  if (!plan) return diag.to_error();
  return std::move(*plan);
}

std::chrono::nanoseconds step_duration(const Template& t) {
  switch (t.type) {
    case TemplateType::kChaos:
    case TemplateType::kSuspend:
      return t.deadline.value_or(std::chrono::nanoseconds(0));
    case TemplateType::kSloCheck:
      return t.within;
    default:
      return std::chrono::nanoseconds(0);
  }
}

std::chrono::nanoseconds estimated_duration(const Workflow& wf, const Plan& plan) {
  std::chrono::nanoseconds total{0};
  for (const Phase& phase : plan.phases) {
    std::chrono::nanoseconds longest{0};
    for (const Lane& lane : phase.lanes) {
      std::chrono::nanoseconds sum{0};
      for (size_t s : lane.steps) sum += step_duration(wf.templates[s]);
      longest = std::max(longest, sum);
    }
    total += longest;
  }
  return total;
}

}  // namespace nq::experiment

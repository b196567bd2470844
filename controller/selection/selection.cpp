#include "controller/selection/selection.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <tuple>

namespace nq::selection {
namespace {

constexpr std::pair<std::string_view, Mode> kModes[] = {
    {"one", Mode::kOne},
    {"all", Mode::kAll},
    {"fixed", Mode::kFixed},
    {"fixed-percent", Mode::kFixedPercent},
    {"random-max-percent", Mode::kRandomMaxPercent},
};

std::string pod_key(const nodequake::v1::Pod& pod) {
  return pod.ref().namespace_() + "/" + pod.ref().name();
}

}  // namespace

std::string_view mode_name(Mode mode) noexcept {
  for (const auto& [name, m] : kModes)
    if (m == mode) return name;
  return "unknown";
}

Result<Mode> parse_mode(std::string_view text) {
  for (const auto& [name, m] : kModes)
    if (name == text) return m;
  return Error::invalid_argument(
      "mode", "\"" + std::string(text) +
                  "\" is not a mode (one of: one, all, fixed, fixed-percent, random-max-percent)");
}

std::string describe(const ModeSpec& spec) {
  std::string out(mode_name(spec.mode));
  switch (spec.mode) {
    case Mode::kFixed:
      out += " " + std::to_string(spec.value);
      break;
    case Mode::kFixedPercent:
    case Mode::kRandomMaxPercent:
      out += " " + std::to_string(spec.value) + "%";
      break;
    default:
      break;
  }
  return out;
}

Status validate(const ModeSpec& spec, std::string_view field) {
  switch (spec.mode) {
    case Mode::kFixed:
      if (spec.value < 1)
        return Error::invalid_argument(field, "mode fixed needs a pod count of at least 1");
      break;
    case Mode::kFixedPercent:
    case Mode::kRandomMaxPercent:
      if (spec.value < 1 || spec.value > 100)
        return Error::invalid_argument(
            field, "mode " + std::string(mode_name(spec.mode)) + " needs a percentage in 1..100");
      break;
    default:
      break;
  }
  return ok();
}

uint64_t Rng::below(uint64_t bound) {
  // Reject the top partial block of the 64-bit range so every residue is
  // equally likely; at most half the draws are rejected (bound > 2^63).
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = max - (max % bound + 1) % bound;
  uint64_t x;
  do {
    x = engine_();
  } while (x > limit);
  return x % bound;
}

Result<Selection> select(const std::vector<NodePods>& nodes, const ModeSpec& spec, uint64_t seed,
                         const BlastRadius& ceiling) {
  NQ_TRY(validate(spec));
  Selection out;
  out.seed = seed;

  std::vector<Candidate> candidates;
  std::map<std::string, std::string> seen;  // pod key -> node
  for (const NodePods& node : nodes) {
    for (const auto& pod : node.pods) {
      if (!pod.eligible()) continue;
      const std::string key = pod_key(pod);
      auto [it, inserted] = seen.emplace(key, node.node);
      if (!inserted)
        return Error::invalid_argument("pods", "pod " + key + " is reported by both node " +
                                                   it->second + " and node " + node.node +
                                                   " (two agents claim the same pod)");
      candidates.push_back({node.node, pod});
    }
  }
  if (candidates.empty()) return Error::failed_precondition("no eligible pod matches the selector");
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.pod.ref().namespace_(), a.pod.ref().name(), a.node) <
           std::tie(b.pod.ref().namespace_(), b.pod.ref().name(), b.node);
  });
  out.candidates = candidates.size();

  Rng rng(seed);
  // The count is drawn first and the pods after, always from the same stream,
  // so one seed fixes both.
  const size_t k = chosen_count(spec, candidates.size(), [&](uint64_t b) { return rng.below(b); });

  const double percent = 100.0 * static_cast<double>(k) / static_cast<double>(candidates.size());
  if (!ceiling.force && k > ceiling.exempt_count && percent > ceiling.max_percent) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "blast radius: mode %s chooses %zu of %zu matching pods (%.0f%%), above the "
                  "ceiling of %.0f%%; lower the value or force it",
                  describe(spec).c_str(), k, candidates.size(), percent, ceiling.max_percent);
    return Error::failed_precondition(buf);
  }

  // Partial Fisher-Yates: the first k slots end up a uniform k-subset.
  for (size_t i = 0; i < k; ++i) {
    const size_t j = i + static_cast<size_t>(rng.below(candidates.size() - i));
    std::swap(candidates[i], candidates[j]);
  }
  candidates.resize(k);
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.pod.ref().namespace_(), a.pod.ref().name()) <
           std::tie(b.pod.ref().namespace_(), b.pod.ref().name());
  });
  out.chosen = std::move(candidates);
  return out;
}

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace nq::selection

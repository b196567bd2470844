// Phase two of two-phase selection: the agents have each resolved the
// selector against their own pods; the controller applies the experiment's
// mode/value over the union with a seeded PRNG, so that printing the seed is
// enough to reproduce which pods a run chose.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::selection {

// Chaos Mesh's selector modes.
enum class Mode {
  kOne,               // one pod at random
  kAll,               // every pod
  kFixed,             // `value` pods (all of them when fewer match)
  kFixedPercent,      // ceil(value % of the pods)
  kRandomMaxPercent,  // ceil(p % of the pods), p drawn from [1, value]
};

struct ModeSpec {
  Mode mode = Mode::kOne;
  // Count for kFixed, percent (1..100) for the percent modes, unused otherwise.
  uint32_t value = 0;
  bool operator==(const ModeSpec&) const = default;
};

std::string_view mode_name(Mode mode) noexcept;
// "one", "all", "fixed", "fixed-percent", "random-max-percent".
Result<Mode> parse_mode(std::string_view text);
// "fixed-percent 30%", "fixed 2", "one".
std::string describe(const ModeSpec& spec);
// Checks `value` for the mode (fixed: >= 1; percents: 1..100); errors name `field`.
Status validate(const ModeSpec& spec, std::string_view field = "value");

// The pods one agent reported (ListTargetsResponse).
struct NodePods {
  std::string node;
  std::vector<nodequake::v1::Pod> pods;
};

struct Candidate {
  std::string node;
  nodequake::v1::Pod pod;
};

// Blast-radius ceiling: choosing more than `max_percent` of the candidates is
// refused unless `force`. Choosing at most `exempt_count` pods is always
// allowed, because `mode: one` on a single-pod service is the smallest
// experiment there is ("start small" in the seed) and would otherwise be 100 %.
struct BlastRadius {
  double max_percent = 50.0;
  uint32_t exempt_count = 1;
  bool force = false;
};

struct Selection {
  uint64_t seed = 0;
  size_t candidates = 0;          // eligible pods in the union
  std::vector<Candidate> chosen;  // ordered by namespace/name
  double percent() const { return candidates ? 100.0 * chosen.size() / candidates : 0.0; }
};

// How many of `n` candidates the mode chooses; the draw for random-max-percent
// comes from `rng_draw(bound)`, a value in [0, bound). Pure: exposed for tests.
template <class Draw>
size_t chosen_count(const ModeSpec& spec, size_t n, Draw&& rng_draw);

// Chooses pods from the union. Ineligible pods (Pod.eligible false) are not
// candidates. The candidates are sorted by (namespace, name, node) before the
// draw so the result does not depend on the order the agents answered in.
// FailedPrecondition when nothing matches or the ceiling is exceeded;
// InvalidArgument when the same pod is reported by two nodes.
Result<Selection> select(const std::vector<NodePods>& nodes, const ModeSpec& spec, uint64_t seed,
                         const BlastRadius& ceiling);

// A seed from std::random_device, for runs that were not given one.
uint64_t random_seed();

// Uniform integer in [0, bound) from a std::mt19937_64, by rejection, so the
// result is the same on every platform (std::uniform_int_distribution's
// algorithm is implementation-defined). bound must be > 0.
// std::mt19937_64 itself is fully specified by the standard, so its raw output
// is reproducible everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t below(uint64_t bound);

 private:
  std::mt19937_64 engine_;
};

// ---------------------------------------------------------------- implementation

template <class Draw>
size_t chosen_count(const ModeSpec& spec, size_t n, Draw&& rng_draw) {
  if (n == 0) return 0;
  auto ceil_percent = [n](uint64_t percent) -> size_t {
    // Exact integer ceil(n * percent / 100): no floating point at the edges.
    return static_cast<size_t>((static_cast<uint64_t>(n) * percent + 99) / 100);
  };
  switch (spec.mode) {
    case Mode::kOne:
      return 1;
    case Mode::kAll:
      return n;
    case Mode::kFixed:
      return spec.value < n ? spec.value : n;
    case Mode::kFixedPercent:
      return ceil_percent(spec.value);
    case Mode::kRandomMaxPercent:
      return ceil_percent(1 + rng_draw(spec.value));
  }
  return 0;
}

}  // namespace nq::selection

// The experiment model: what an experiment file says, in plain C++ types with
// units already converted (durations in ns, rates in bit/s, sizes in bytes,
// percentages as 0..100). The parser (parse.h) fills it and checks it; the
// lowering (lower.h) turns it into agent requests and cannot fail.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "controller/prom/rules.h"
#include "controller/prom/slo.h"
#include "controller/selection/selection.h"

namespace nq::experiment {

using std::chrono::nanoseconds;

// Where a document or template starts, for messages after parsing.
struct Location {
  std::string file;
  int line = 0;  // 1-based
};

enum class Kind { kNetworkChaos, kStressChaos, kIOChaos, kPodChaos };
std::string_view kind_name(Kind kind) noexcept;

struct LabelRequirement {
  std::string key;
  std::string op;  // In, NotIn, Exists, DoesNotExist
  std::vector<std::string> values;
  bool operator==(const LabelRequirement&) const = default;
};

// Chaos Mesh's selector, restricted to what the agents can evaluate.
struct Selector {
  std::vector<std::string> namespaces;
  std::map<std::string, std::string> labels;
  std::vector<LabelRequirement> expressions;
  bool operator==(const Selector&) const = default;
};

// Abort rules and SLO checks are the Prometheus guard's own types (nq_prom):
// an AbortRule fires when `query comparison threshold` has held for
// `for_duration`; an SloCheck passes while its comparison holds.
using prom::AbortRule;
using prom::Comparison;
using prom::SloCheck;

// ---------------------------------------------------------------- NetworkChaos

enum class NetworkAction { kNetem, kDelay, kLoss, kDuplicate, kCorrupt, kPartition, kBandwidth };
enum class Direction { kTo, kFrom, kBoth };
enum class Distribution { kUniform, kNormal, kPareto, kParetoNormal };
// What delays the packets of netem-style actions (nodequake extension):
// sch_netem where the node has it, else the eBPF delay line (auto).
enum class NetemEngine { kAuto, kNetem, kEbpf };

struct Reorder {
  double percent = 0;
  double correlation = 0;
  uint32_t gap = 0;
};

struct Delay {
  nanoseconds latency{0};
  nanoseconds jitter{0};
  double correlation = 0;
  Distribution distribution = Distribution::kUniform;  // nodequake addition
  std::optional<Reorder> reorder;
};

struct PercentWithCorrelation {
  double percent = 0;
  double correlation = 0;
};

struct Bandwidth {
  uint64_t rate_bps = 0;      // bits per second
  uint32_t limit_bytes = 0;   // 0: agent default
  uint32_t buffer_bytes = 0;  // 0: agent default
};

// `target`: the peers whose pod IPs scope the fault (resolved and chosen with
// its own mode, like the main selector).
struct PodTarget {
  Selector selector;
  selection::ModeSpec mode;
};

struct NetworkSpec {
  NetworkAction action = NetworkAction::kNetem;
  Direction direction = Direction::kTo;
  std::optional<PodTarget> target;
  std::vector<std::string> external_targets;  // canonical CIDRs
  std::string device;                         // "" = agent default (eth0)
  std::optional<Delay> delay;
  std::optional<PercentWithCorrelation> loss;
  std::optional<PercentWithCorrelation> duplicate;
  std::optional<PercentWithCorrelation> corrupt;
  std::optional<Bandwidth> bandwidth;
  NetemEngine engine = NetemEngine::kAuto;  // `engine`, netem-style actions only
};

// ---------------------------------------------------------------- StressChaos

struct CpuStress {
  uint32_t workers = 0;  // 0: agent default (one per CPU of the limit)
  double load = 0;       // percent of the container's CPU limit
};

struct MemoryStress {
  uint32_t workers = 1;
  uint64_t bytes = 0;  // per worker; exactly one of bytes/percent is set
  double percent = 0;  // per worker, of the container's memory limit
};

struct StressSpec {
  std::optional<CpuStress> cpu;
  std::optional<MemoryStress> memory;
  std::vector<std::string> containers;
};

// ---------------------------------------------------------------- IOChaos

enum class IoAction { kFault, kThrottle, kDiskFill };
enum class IoMethod { kOpen, kRead, kWrite };

struct IoThrottle {
  uint64_t read_bytes_per_second = 0;
  uint64_t write_bytes_per_second = 0;
  uint64_t read_iops = 0;
  uint64_t write_iops = 0;
};

struct DiskFill {
  uint64_t bytes = 0;  // exactly one of bytes/percent
  double percent = 0;  // of the free space
};

struct IoSpec {
  IoAction action = IoAction::kFault;
  std::string volume_path;
  std::string path;               // "" = volume_path
  std::string error;              // errno name ("EIO"), for kFault
  double percent = 100;           // share of calls that fail, for kFault
  std::vector<IoMethod> methods;  // empty: all
  IoThrottle throttle;
  DiskFill fill;
  std::vector<std::string> containers;
  const std::string& effective_path() const { return path.empty() ? volume_path : path; }
};

// ---------------------------------------------------------------- PodChaos

enum class PodAction { kPodKill, kContainerKill, kPodFailure };

struct PodSpec {
  PodAction action = PodAction::kPodKill;
  std::vector<std::string> containers;
};

// ---------------------------------------------------------------- documents

std::string_view network_action_name(NetworkAction a) noexcept;
std::string_view direction_name(Direction d) noexcept;
std::string_view distribution_name(Distribution d) noexcept;
std::string_view io_action_name(IoAction a) noexcept;
std::string_view io_method_name(IoMethod m) noexcept;
std::string_view pod_action_name(PodAction a) noexcept;

struct Experiment {
  Location where;
  std::string api_version;
  Kind kind = Kind::kNetworkChaos;
  std::string name;
  std::string namespace_;
  Selector selector;
  selection::ModeSpec mode;
  std::optional<nanoseconds> duration;  // absent: until reverted (one-shot kinds)
  std::vector<AbortRule> abort_when;
  std::variant<NetworkSpec, StressSpec, IoSpec, PodSpec> spec;
};

enum class TemplateType { kSerial, kParallel, kSuspend, kChaos, kSloCheck, kReport };
std::string_view template_type_name(TemplateType type) noexcept;

struct Template {
  std::string name;
  TemplateType type = TemplateType::kSerial;
  int line = 0;
  std::optional<nanoseconds> deadline;
  std::vector<std::string> children;  // kSerial / kParallel
  std::optional<Experiment> chaos;    // kChaos
  std::vector<SloCheck> checks;       // kSloCheck
  // kSloCheck: keep re-evaluating for up to this long until every check passes
  // (recovery measurement); 0 = evaluate once.
  nanoseconds within{0};
  nanoseconds interval{std::chrono::seconds(5)};
  std::string report_path;  // kReport: "" = print only
};

struct Workflow {
  Location where;
  std::string api_version;
  std::string name;
  std::string namespace_;
  std::string entry;
  int entry_line = 0;
  std::vector<Template> templates;
  std::vector<AbortRule> abort_when;
  const Template* find(std::string_view template_name) const;
};

using Document = std::variant<Experiment, Workflow>;

// pod-kill and container-kill happen once and have nothing to revert; every
// other fault needs a duration (the agent's TTL makes it crash-safe).
bool is_one_shot(const Experiment& exp) noexcept;

}  // namespace nq::experiment

#include "controller/experiment/model.h"

namespace nq::experiment {

std::string_view kind_name(Kind kind) noexcept {
  switch (kind) {
    case Kind::kNetworkChaos:
      return "NetworkChaos";
    case Kind::kStressChaos:
      return "StressChaos";
    case Kind::kIOChaos:
      return "IOChaos";
    case Kind::kPodChaos:
      return "PodChaos";
  }
  return "unknown";
}

std::string_view network_action_name(NetworkAction a) noexcept {
  switch (a) {
    case NetworkAction::kNetem:
      return "netem";
    case NetworkAction::kDelay:
      return "delay";
    case NetworkAction::kLoss:
      return "loss";
    case NetworkAction::kDuplicate:
      return "duplicate";
    case NetworkAction::kCorrupt:
      return "corrupt";
    case NetworkAction::kPartition:
      return "partition";
    case NetworkAction::kBandwidth:
      return "bandwidth";
  }
  return "unknown";
}

std::string_view direction_name(Direction d) noexcept {
  switch (d) {
    case Direction::kTo:
      return "to";
    case Direction::kFrom:
      return "from";
    case Direction::kBoth:
      return "both";
  }
  return "unknown";
}

std::string_view distribution_name(Distribution d) noexcept {
  switch (d) {
    case Distribution::kUniform:
      return "uniform";
    case Distribution::kNormal:
      return "normal";
    case Distribution::kPareto:
      return "pareto";
    case Distribution::kParetoNormal:
      return "paretonormal";
  }
  return "unknown";
}

std::string_view io_action_name(IoAction a) noexcept {
  switch (a) {
    case IoAction::kFault:
      return "fault";
    case IoAction::kThrottle:
      return "throttle";
    case IoAction::kDiskFill:
      return "disk-fill";
  }
  return "unknown";
}

std::string_view io_method_name(IoMethod m) noexcept {
  switch (m) {
    case IoMethod::kOpen:
      return "open";
    case IoMethod::kRead:
      return "read";
    case IoMethod::kWrite:
      return "write";
  }
  return "unknown";
}

std::string_view pod_action_name(PodAction a) noexcept {
  switch (a) {
    case PodAction::kPodKill:
      return "pod-kill";
    case PodAction::kContainerKill:
      return "container-kill";
    case PodAction::kPodFailure:
      return "pod-failure";
  }
  return "unknown";
}

std::string_view template_type_name(TemplateType type) noexcept {
  switch (type) {
    case TemplateType::kSerial:
      return "Serial";
    case TemplateType::kParallel:
      return "Parallel";
    case TemplateType::kSuspend:
      return "Suspend";
    case TemplateType::kChaos:
      return "Chaos";
    case TemplateType::kSloCheck:
      return "SLOCheck";
    case TemplateType::kReport:
      return "Report";
  }
  return "unknown";
}

bool is_one_shot(const Experiment& exp) noexcept {
  const auto* pod = std::get_if<PodSpec>(&exp.spec);
  return pod != nullptr && pod->action != PodAction::kPodFailure;
}

const Template* Workflow::find(std::string_view template_name) const {
  for (const Template& t : templates)
    if (t.name == template_name) return &t;
  return nullptr;
}

}  // namespace nq::experiment

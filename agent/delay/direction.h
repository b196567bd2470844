// The two directions of a delay line and what the BPF program does to one
// direction's packets: shared by the pure plan and the program's owner.
#pragma once

#include <cstdint>

#include "ebpf/delayline.h"
#include "ebpf/netfault.h"

namespace nq::delay {

// A direction of the line, the index into nq_dl_state.dir.
enum class Direction : uint32_t { kEgress = NQ_IDX_EGRESS, kIngress = NQ_IDX_INGRESS };
inline constexpr Direction kDirections[] = {Direction::kEgress, Direction::kIngress};

// What the program does to a direction's packets in scope. Probabilities
// and correlations on netem's 0..UINT32_MAX scale.
struct DirectionConfig {
  uint32_t loss = 0;
  uint32_t loss_correlation = 0;
  uint32_t duplicate = 0;
  uint32_t duplicate_correlation = 0;
  uint32_t corrupt = 0;
  uint32_t corrupt_correlation = 0;
  // false: no frame goes to the engine (loss, duplicate, corrupt only).
  bool redirect = true;
};

}  // namespace nq::delay

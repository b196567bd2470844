// The netfault rule compiler: an interface's network-fault rules, slot by
// slot, turned into the exact contents of the netfault BPF maps, and the
// ordered map operations that move a live program from one content to the
// next without any packet seeing a half-written rule. Pure: no kernel here.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <variant>
#include <vector>

#include "agent/net/path.h"
#include "common/result.h"
#include "ebpf/netfault.h"

namespace nq::net {

inline constexpr size_t kMaxRules = NQ_MAX_RULES;

// One active network fault on an interface.
struct NetRule {
  enum class Kind { kPartition, kShape };
  Kind kind = Kind::kPartition;
  uint8_t dirs = kEgress;  // Dir bits
  Scope scope;
  // SHAPE only: the HTB class (major:minor as tc handles, major != 0) that
  // egress packets, and ingress packets on the ifb, are classified into.
  uint32_t egress_classid = 0;
  uint32_t ingress_classid = 0;
  bool operator==(const NetRule&) const = default;
};

// Rules by slot; the slot is the rule's identity in the BPF maps.
using RuleSlots = std::array<std::optional<NetRule>, kMaxRules>;

// The lowest free slot; ResourceExhausted when all kMaxRules are taken.
Result<uint32_t> free_slot(const RuleSlots& slots);

// The four LPM tries of the program.
enum class Trie : uint8_t { kRemote4, kRemote6, kLocal4, kLocal6 };
inline constexpr size_t kNumTries = 4;

// An LPM trie key: host bits beyond `len` are zero, IPv4 uses addr[0..3].
struct Prefix {
  uint8_t len = 0;
  std::array<uint8_t, 16> addr{};
  auto operator<=>(const Prefix&) const = default;
};

// The complete contents of the netfault maps (flow records and counters
// aside, which the program writes itself).
struct CompiledRules {
  // Prefix -> slot mask, already closed over shorter containing prefixes.
  std::array<std::map<Prefix, uint32_t>, kNumTries> tries;
  // Slot contents; present exactly for the slots active in `config`.
  std::array<std::optional<nq_rule>, kMaxRules> rules;
  nq_config config{};
  bool operator==(const CompiledRules& other) const;
};

// Validates every rule (errors name "rules[SLOT].field") and compiles them.
Result<CompiledRules> compile_rules(const RuleSlots& slots, uint32_t ifb_ifindex);

namespace op {
struct LpmUpdate {
  Trie trie;
  Prefix prefix;
  uint32_t mask;
};
struct LpmDelete {
  Trie trie;
  Prefix prefix;
};
// Writes an inactive slot.
struct RuleUpdate {
  uint32_t slot;
  nq_rule rule;
};
// Forgets the flow records and counters of an inactive slot, so a new rule
// there starts from nothing (records admit connections, counters count).
struct ClearSlotState {
  uint32_t slot;
};
// Writes the single nq_config entry.
struct ConfigUpdate {
  nq_config config;
};
}  // namespace op

using MapOp = std::variant<op::LpmUpdate, op::LpmDelete, op::RuleUpdate, op::ClearSlotState,
                           op::ConfigUpdate>;

// The operations, in order, that turn maps holding `from` into `to`:
//   1. config with the active bits of removed and changed slots cleared;
//   2. their flow records and counters cleared, LPM entries deleted, then
//      added or updated, new slot contents written (all on inactive slots or
//      with masks that are right for every still-active slot);
//   3. config with the new any/candidate masks and ifb, old active bits;
//   4. config with the new active bits.
// A config write changes either the active bits or the rest, never both, so
// even a reader racing the copy sees a consistent combination. Steps that
// change nothing are left out: from == to gives no operations.
std::vector<MapOp> diff_rules(const CompiledRules& from, const CompiledRules& to);

}  // namespace nq::net

#include "agent/net/rules.h"

#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <set>
#include <string>
#include <type_traits>

namespace nq::net {

// The ABI header is shared with clang -target bpf: pin its layout here so a
// change that the two compilers could read differently fails the build.
static_assert(sizeof(nq_lpm4_key) == 8 && sizeof(nq_lpm6_key) == 20);
static_assert(sizeof(nq_port_range) == 4);
static_assert(sizeof(nq_rule) == 80);
static_assert(offsetof(nq_rule, egress_classid) == 8 && offsetof(nq_rule, ingress_classid) == 12);
static_assert(offsetof(nq_rule, remote_ports) == 16 && offsetof(nq_rule, local_ports) == 48);
static_assert(sizeof(nq_config) == 28);
static_assert(offsetof(nq_config, candidates) == 16 && offsetof(nq_config, ifb_ifindex) == 24);
static_assert(sizeof(nq_flow_key) == 40 && offsetof(nq_flow_key, local_addr) == 8);
static_assert(sizeof(nq_stats) == 32);
// No hidden padding: values compare (and are written) byte for byte.
static_assert(std::has_unique_object_representations_v<nq_rule>);
static_assert(std::has_unique_object_representations_v<nq_config>);
static_assert(std::has_unique_object_representations_v<nq_flow_key>);
// The limits of a validated Path fit the maps.
static_assert(kMaxPortRanges == NQ_MAX_PORT_RANGES);
static_assert(kMaxCidrsPerScope * kMaxRules <= NQ_LPM_MAX_ENTRIES);
static_assert(kEgress == NQ_DIR_EGRESS && kIngress == NQ_DIR_INGRESS);
static_assert(static_cast<int>(Proto::kAny) == NQ_PROTO_ANY &&
              static_cast<int>(Proto::kIcmp) == NQ_PROTO_ICMP &&
              static_cast<int>(Proto::kTcp) == NQ_PROTO_TCP &&
              static_cast<int>(Proto::kUdp) == NQ_PROTO_UDP);

namespace {

Prefix to_prefix(const Cidr& c) {
  Prefix p;
  p.len = c.prefix_len;
  for (int bit = 0; bit < c.prefix_len; ++bit) {
    if (c.addr[bit / 8] & (0x80 >> (bit % 8))) p.addr[bit / 8] |= (0x80 >> (bit % 8));
  }
  return p;
}

// `p` cut down to its first `len` bits.
Prefix truncate(const Prefix& p, uint8_t len) {
  Prefix out;
  out.len = len;
  for (int i = 0; i < 16; ++i) {
    const int keep = std::min(8, std::max(0, len - i * 8));
    out.addr[i] = keep == 0 ? 0 : static_cast<uint8_t>(p.addr[i] & (0xff << (8 - keep)));
  }
  return out;
}

Status validate_cidrs(const std::vector<Cidr>& cidrs, const std::string& field) {
  if (cidrs.size() > kMaxCidrsPerScope)
    return Error::invalid_argument(
        field, "at most " + std::to_string(kMaxCidrsPerScope) + " CIDRs are supported");
  for (size_t i = 0; i < cidrs.size(); ++i) {
    const Cidr& c = cidrs[i];
    const std::string f = field + "[" + std::to_string(i) + "]";
    if (c.family != AF_INET && c.family != AF_INET6)
      return Error::invalid_argument(f, "not an IPv4 or IPv6 prefix");
    if (c.prefix_len > c.max_prefix())
      return Error::invalid_argument(f, "prefix length " + std::to_string(c.prefix_len) +
                                            " exceeds " + std::to_string(c.max_prefix()));
  }
  return ok();
}

Status validate_ports(const std::vector<PortRange>& ports, Proto proto, const std::string& field) {
  if (ports.size() > NQ_MAX_PORT_RANGES)
    return Error::invalid_argument(
        field, "at most " + std::to_string(NQ_MAX_PORT_RANGES) + " port ranges are supported");
  if (!ports.empty() && proto == Proto::kIcmp)
    return Error::invalid_argument(field, "ports need protocol TCP, UDP or ANY, not ICMP");
  for (size_t i = 0; i < ports.size(); ++i) {
    if (ports[i].first > ports[i].last)
      return Error::invalid_argument(field + "[" + std::to_string(i) + "]",
                                     "first port " + std::to_string(ports[i].first) +
                                         " is above last port " + std::to_string(ports[i].last));
  }
  return ok();
}

Status validate_classid(uint32_t classid, bool needed, const std::string& field) {
  if (!needed) {
    if (classid != 0)
      return Error::invalid_argument(field, "set only for SHAPE rules in this direction");
    return ok();
  }
  // HTB looks skb->priority up as a class handle; major 0 names no class.
  if ((classid >> 16) == 0)
    return Error::invalid_argument(field, "must be a class handle major:minor with major != 0");
  return ok();
}

Status validate(const NetRule& r, const std::string& field) {
  if (r.dirs == 0 || (r.dirs & ~kBoth) != 0)
    return Error::invalid_argument(
        field + ".dirs", "must be egress, ingress or both (1..3), not " + std::to_string(r.dirs));
  switch (r.scope.proto) {
    case Proto::kAny:
    case Proto::kIcmp:
    case Proto::kTcp:
    case Proto::kUdp:
      break;
    default:
      return Error::invalid_argument(field + ".scope.proto",
                                     "unknown protocol " + std::to_string(int(r.scope.proto)));
  }
  const bool shape = r.kind == NetRule::Kind::kShape;
  NQ_TRY(validate_cidrs(r.scope.remote, field + ".scope.remote"));
  NQ_TRY(validate_cidrs(r.scope.local, field + ".scope.local"));
  NQ_TRY(validate_ports(r.scope.remote_ports, r.scope.proto, field + ".scope.remote_ports"));
  NQ_TRY(validate_ports(r.scope.local_ports, r.scope.proto, field + ".scope.local_ports"));
  NQ_TRY(
      validate_classid(r.egress_classid, shape && (r.dirs & kEgress), field + ".egress_classid"));
  NQ_TRY(validate_classid(r.ingress_classid, shape && (r.dirs & kIngress),
                          field + ".ingress_classid"));
  return ok();
}

nq_rule encode(const NetRule& r) {
  nq_rule out{};  // zeroed, padding included: compared byte for byte
  out.kind = r.kind == NetRule::Kind::kPartition ? NQ_RULE_PARTITION : NQ_RULE_SHAPE;
  out.dirs = r.dirs;
  out.proto = static_cast<uint8_t>(r.scope.proto);
  out.n_remote_ports = static_cast<uint8_t>(r.scope.remote_ports.size());
  out.n_local_ports = static_cast<uint8_t>(r.scope.local_ports.size());
  for (size_t i = 0; i < r.scope.remote_ports.size(); ++i)
    out.remote_ports[i] = {r.scope.remote_ports[i].first, r.scope.remote_ports[i].last};
  for (size_t i = 0; i < r.scope.local_ports.size(); ++i)
    out.local_ports[i] = {r.scope.local_ports[i].first, r.scope.local_ports[i].last};
  out.egress_classid = r.egress_classid;
  out.ingress_classid = r.ingress_classid;
  return out;
}

// An LPM lookup yields the longest matching prefix only, so every prefix
// must also carry the slots of each shorter prefix that contains it.
std::map<Prefix, uint32_t> close_over_ancestors(const std::map<Prefix, uint32_t>& own) {
  std::set<uint8_t> lengths;
  for (const auto& [p, mask] : own) lengths.insert(p.len);
  std::map<Prefix, uint32_t> out;
  for (const auto& [p, mask] : own) {
    uint32_t closed = mask;
    for (uint8_t len : lengths) {
      if (len >= p.len) break;
      if (auto it = own.find(truncate(p, len)); it != own.end()) closed |= it->second;
    }
    out.emplace(p, closed);
  }
  return out;
}

void add_side(const std::vector<Cidr>& cidrs, uint32_t bit, Trie v4, Trie v6, uint32_t& any,
              std::array<std::map<Prefix, uint32_t>, kNumTries>& own) {
  if (cidrs.empty()) {
    any |= bit;
    return;
  }
  for (const Cidr& c : cidrs)
    own[static_cast<size_t>(c.family == AF_INET ? v4 : v6)][to_prefix(c)] |= bit;
}

// The addresses a slot matches, read back from compiled maps: its any bits
// and, per trie, the outermost prefixes carrying its bit. Two rules with
// equal coverage match the same packets, however their CIDRs were listed.
struct Coverage {
  bool any_remote = false;
  bool any_local = false;
  std::array<std::set<Prefix>, kNumTries> outermost;
  bool operator==(const Coverage&) const = default;
};

Coverage coverage(const CompiledRules& c, uint32_t slot) {
  const uint32_t bit = 1U << slot;
  Coverage out;
  out.any_remote = c.config.any_remote & bit;
  out.any_local = c.config.any_local & bit;
  for (size_t t = 0; t < kNumTries; ++t) {
    std::set<uint8_t> lengths;
    for (const auto& [p, mask] : c.tries[t]) lengths.insert(p.len);
    for (const auto& [p, mask] : c.tries[t]) {
      if (!(mask & bit)) continue;
      bool inner = false;
      for (uint8_t len : lengths) {
        if (len >= p.len) break;
        auto it = c.tries[t].find(truncate(p, len));
        if (it != c.tries[t].end() && (it->second & bit)) {
          inner = true;
          break;
        }
      }
      if (!inner) out.outermost[t].insert(p);
    }
  }
  return out;
}

}  // namespace

bool CompiledRules::operator==(const CompiledRules& other) const {
  if (tries != other.tries) return false;
  if (std::memcmp(&config, &other.config, sizeof(config)) != 0) return false;
  for (size_t i = 0; i < kMaxRules; ++i) {
    if (rules[i].has_value() != other.rules[i].has_value()) return false;
    if (rules[i] && std::memcmp(&*rules[i], &*other.rules[i], sizeof(nq_rule)) != 0) return false;
  }
  return true;
}

Result<uint32_t> free_slot(const RuleSlots& slots) {
  for (uint32_t i = 0; i < kMaxRules; ++i) {
    if (!slots[i]) return i;
  }
  return Error::status(Code::kResourceExhausted,
                       "all " + std::to_string(kMaxRules) +
                           " netfault rule slots of the interface are in use; remove a network "
                           "fault first");
}

Result<CompiledRules> compile_rules(const RuleSlots& slots, uint32_t ifb_ifindex) {
  CompiledRules out;
  std::array<std::map<Prefix, uint32_t>, kNumTries> own;
  nq_config& cfg = out.config;
  for (uint32_t slot = 0; slot < kMaxRules; ++slot) {
    if (!slots[slot]) continue;
    const NetRule& r = *slots[slot];
    NQ_TRY(validate(r, "rules[" + std::to_string(slot) + "]"));
    const uint32_t bit = 1U << slot;
    add_side(r.scope.remote, bit, Trie::kRemote4, Trie::kRemote6, cfg.any_remote, own);
    add_side(r.scope.local, bit, Trie::kLocal4, Trie::kLocal6, cfg.any_local, own);
    if (r.kind == NetRule::Kind::kPartition) {
      // Both hooks: the blocked side drops, the open side records flows.
      cfg.partitions |= bit;
      cfg.candidates[NQ_IDX_EGRESS] |= bit;
      cfg.candidates[NQ_IDX_INGRESS] |= bit;
    } else {
      if (r.dirs & kEgress) cfg.candidates[NQ_IDX_EGRESS] |= bit;
      if (r.dirs & kIngress) cfg.candidates[NQ_IDX_INGRESS] |= bit;
    }
    cfg.active |= bit;
    out.rules[slot] = encode(r);
  }
  for (size_t t = 0; t < kNumTries; ++t) out.tries[t] = close_over_ancestors(own[t]);
  cfg.ifb_ifindex = ifb_ifindex;
  return out;
}

std::vector<MapOp> diff_rules(const CompiledRules& from, const CompiledRules& to) {
  std::vector<MapOp> ops;
  uint32_t removed = 0;  // active in `from` and gone or changed in `to`
  uint32_t added = 0;    // active in `to` and absent or changed in `from`
  for (uint32_t slot = 0; slot < kMaxRules; ++slot) {
    const auto& a = from.rules[slot];
    const auto& b = to.rules[slot];
    // Addresses are not in nq_rule: a rule whose CIDRs changed is changed too.
    const bool changed =
        a && b &&
        (std::memcmp(&*a, &*b, sizeof(nq_rule)) != 0 || coverage(from, slot) != coverage(to, slot));
    if (a && (!b || changed)) removed |= 1U << slot;
    if (b && (!a || changed)) added |= 1U << slot;
  }
  const auto same = [](const nq_config& x, const nq_config& y) {
    return std::memcmp(&x, &y, sizeof(x)) == 0;
  };

  // 1. Removed and changed slots stop matching before anything of theirs moves.
  nq_config cfg = from.config;
  if (removed) {
    cfg.active &= ~removed;
    ops.push_back(op::ConfigUpdate{cfg});
  }
  // 2. Inactive slots and LPM masks. Deleting a prefix first is safe: lookups
  //    fall back to a containing prefix, whose mask holds every still-active
  //    slot covering the address; deleting first also keeps the trie within
  //    its capacity when many prefixes are replaced at once.
  for (uint32_t slot = 0; slot < kMaxRules; ++slot) {
    if ((removed | added) & (1U << slot)) ops.push_back(op::ClearSlotState{slot});
  }
  for (size_t t = 0; t < kNumTries; ++t) {
    for (const auto& [p, mask] : from.tries[t]) {
      if (!to.tries[t].contains(p)) ops.push_back(op::LpmDelete{static_cast<Trie>(t), p});
    }
  }
  for (size_t t = 0; t < kNumTries; ++t) {
    for (const auto& [p, mask] : to.tries[t]) {
      auto it = from.tries[t].find(p);
      if (it == from.tries[t].end() || it->second != mask)
        ops.push_back(op::LpmUpdate{static_cast<Trie>(t), p, mask});
    }
  }
  for (uint32_t slot = 0; slot < kMaxRules; ++slot) {
    if (added & (1U << slot)) ops.push_back(op::RuleUpdate{slot, *to.rules[slot]});
  }
  // 3. The new masks and ifb while the added slots are still inactive.
  nq_config staged = to.config;
  staged.active = cfg.active;
  if (!same(staged, cfg)) ops.push_back(op::ConfigUpdate{staged});
  // 4. Last, the added slots go live.
  if (!same(to.config, staged)) ops.push_back(op::ConfigUpdate{to.config});
  return ops;
}

}  // namespace nq::net

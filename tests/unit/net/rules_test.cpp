#include "agent/net/rules.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <random>

namespace nq::net {
namespace {

using ::testing::HasSubstr;

Cidr cidr(const char* text) {
  auto c = parse_cidr(text);
  EXPECT_TRUE(c.ok()) << text;
  return *c;
}

Prefix prefix(const char* text) {
  const Cidr c = cidr(text);
  Prefix p;
  p.len = c.prefix_len;
  p.addr = c.addr;
  return p;
}

NetRule partition(std::vector<const char*> remote, uint8_t dirs = kEgress) {
  NetRule r;
  r.kind = NetRule::Kind::kPartition;
  r.dirs = dirs;
  for (const char* c : remote) r.scope.remote.push_back(cidr(c));
  return r;
}

const std::map<Prefix, uint32_t>& trie(const CompiledRules& c, Trie t) {
  return c.tries[static_cast<size_t>(t)];
}

TEST(CompileRules, NestedPrefixesCarryTheSlotsOfEveryContainingPrefix) {
  RuleSlots slots;
  slots[0] = partition({"10.0.0.0/8"});
  slots[1] = partition({"10.1.0.0/16"});
  slots[2] = partition({"10.1.2.0/24"});
  slots[3] = partition({"10.2.0.0/16", "192.168.0.0/16"});
  auto c = compile_rules(slots, 0);
  ASSERT_TRUE(c.ok()) << c.error().message();
  const auto& r4 = trie(*c, Trie::kRemote4);
  ASSERT_EQ(r4.size(), 5u);
  EXPECT_EQ(r4.at(prefix("10.0.0.0/8")), 0b0001u);
  EXPECT_EQ(r4.at(prefix("10.1.0.0/16")), 0b0011u);
  EXPECT_EQ(r4.at(prefix("10.1.2.0/24")), 0b0111u);
  // A sibling of 10.1/16 inherits the /8 but not the sibling's slot.
  EXPECT_EQ(r4.at(prefix("10.2.0.0/16")), 0b1001u);
  EXPECT_EQ(r4.at(prefix("192.168.0.0/16")), 0b1000u);
  EXPECT_TRUE(trie(*c, Trie::kRemote6).empty());
}

TEST(CompileRules, DefaultRouteAndSharedPrefixes) {
  RuleSlots slots;
  slots[4] = partition({"0.0.0.0/0"});
  slots[7] = partition({"10.0.0.1/32", "0.0.0.0/0"});
  auto c = compile_rules(slots, 0);
  ASSERT_TRUE(c.ok()) << c.error().message();
  const auto& r4 = trie(*c, Trie::kRemote4);
  EXPECT_EQ(r4.at(prefix("0.0.0.0/0")), (1u << 4) | (1u << 7));
  EXPECT_EQ(r4.at(prefix("10.0.0.1/32")), (1u << 4) | (1u << 7));
}

TEST(CompileRules, Ipv4AndIpv6GoToSeparateTries) {
  RuleSlots slots;
  NetRule r = partition({"10.0.0.0/8", "fd00::/8"});
  r.scope.local = {cidr("fd00:1::/64")};
  slots[0] = r;
  slots[1] = partition({"::/0"});
  auto c = compile_rules(slots, 0);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(trie(*c, Trie::kRemote4).size(), 1u);
  EXPECT_EQ(trie(*c, Trie::kRemote4).at(prefix("10.0.0.0/8")), 0b01u);  // ::/0 is not IPv4
  ASSERT_EQ(trie(*c, Trie::kRemote6).size(), 2u);
  EXPECT_EQ(trie(*c, Trie::kRemote6).at(prefix("::/0")), 0b10u);
  EXPECT_EQ(trie(*c, Trie::kRemote6).at(prefix("fd00::/8")), 0b11u);
  EXPECT_TRUE(trie(*c, Trie::kLocal4).empty());
  EXPECT_EQ(trie(*c, Trie::kLocal6).at(prefix("fd00:1::/64")), 0b01u);
}

TEST(CompileRules, HostBitsAreCleared) {
  RuleSlots slots;
  NetRule r;
  Cidr c;
  c.family = AF_INET;
  ASSERT_EQ(::inet_pton(AF_INET, "10.1.2.3", c.addr.data()), 1);
  c.prefix_len = 12;
  r.scope.remote = {c};
  slots[0] = r;
  auto out = compile_rules(slots, 0);
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_TRUE(trie(*out, Trie::kRemote4).contains(prefix("10.0.0.0/12")));
}

TEST(CompileRules, EmptyCidrListsGoToTheAnyMasks) {
  RuleSlots slots;
  slots[0] = partition({"10.0.0.0/8"});  // any local
  NetRule local_only;
  local_only.scope.local = {cidr("10.77.0.1/32")};
  slots[1] = local_only;  // any remote
  slots[2] = NetRule{};   // everything
  auto c = compile_rules(slots, 0);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->config.any_remote, 0b110u);
  EXPECT_EQ(c->config.any_local, 0b101u);
  EXPECT_EQ(c->config.active, 0b111u);
}

TEST(CompileRules, EncodesKindDirectionsProtocolPortsAndClasses) {
  RuleSlots slots;
  NetRule p;
  p.dirs = kIngress;
  p.scope.proto = Proto::kTcp;
  p.scope.remote_ports = {{7, 7}, {1000, 2000}};
  p.scope.local_ports = {{8080, 8080}};
  slots[0] = p;
  NetRule s;
  s.kind = NetRule::Kind::kShape;
  s.dirs = kBoth;
  s.scope.proto = Proto::kUdp;
  s.egress_classid = 0x00010010;
  s.ingress_classid = 0x00020010;
  slots[5] = s;
  NetRule e;
  e.kind = NetRule::Kind::kShape;
  e.dirs = kEgress;
  e.scope.proto = Proto::kIcmp;
  e.egress_classid = 0x00010011;
  slots[6] = e;
  auto c = compile_rules(slots, 17);
  ASSERT_TRUE(c.ok()) << c.error().message();

  const nq_rule& r0 = *c->rules[0];
  EXPECT_EQ(r0.kind, NQ_RULE_PARTITION);
  EXPECT_EQ(r0.dirs, NQ_DIR_INGRESS);
  EXPECT_EQ(r0.proto, 6);
  ASSERT_EQ(r0.n_remote_ports, 2);
  EXPECT_EQ(r0.remote_ports[0].first, 7);
  EXPECT_EQ(r0.remote_ports[0].last, 7);
  EXPECT_EQ(r0.remote_ports[1].first, 1000);
  EXPECT_EQ(r0.remote_ports[1].last, 2000);
  ASSERT_EQ(r0.n_local_ports, 1);
  EXPECT_EQ(r0.local_ports[0].first, 8080);
  EXPECT_EQ(r0.egress_classid, 0u);

  const nq_rule& r5 = *c->rules[5];
  EXPECT_EQ(r5.kind, NQ_RULE_SHAPE);
  EXPECT_EQ(r5.dirs, NQ_DIR_BOTH);
  EXPECT_EQ(r5.proto, 17);
  EXPECT_EQ(r5.n_remote_ports, 0);
  EXPECT_EQ(r5.egress_classid, 0x00010010u);
  EXPECT_EQ(r5.ingress_classid, 0x00020010u);
  EXPECT_EQ(c->rules[6]->proto, NQ_PROTO_ICMP);

  for (int i : {1, 2, 3, 4, 7, 31}) EXPECT_FALSE(c->rules[i].has_value()) << i;
  // Partitions are candidates both ways (the open side records flows);
  // shaping rules only in their own directions.
  EXPECT_EQ(c->config.partitions, 0b1u);
  EXPECT_EQ(c->config.candidates[NQ_IDX_EGRESS], 0b1100001u);
  EXPECT_EQ(c->config.candidates[NQ_IDX_INGRESS], 0b0100001u);
  EXPECT_EQ(c->config.ifb_ifindex, 17u);
}

TEST(CompileRules, ErrorsNameTheRuleAndField) {
  struct Case {
    NetRule rule;
    const char* field;
  };
  std::vector<Case> cases;
  {
    NetRule r;
    r.dirs = 0;
    cases.push_back({r, "rules[3].dirs"});
  }
  {
    NetRule r;
    r.dirs = 4;
    cases.push_back({r, "rules[3].dirs"});
  }
  {
    NetRule r;
    r.scope.remote_ports = {{1, 2}, {9, 8}};
    cases.push_back({r, "rules[3].scope.remote_ports[1]"});
  }
  {
    NetRule r;
    r.scope.proto = Proto::kIcmp;
    r.scope.local_ports = {{80, 80}};
    cases.push_back({r, "rules[3].scope.local_ports"});
  }
  {
    NetRule r;
    r.scope.remote_ports.assign(NQ_MAX_PORT_RANGES + 1, PortRange{1, 1});
    cases.push_back({r, "rules[3].scope.remote_ports"});
  }
  {
    NetRule r;
    r.scope.remote.assign(kMaxCidrsPerScope + 1, cidr("10.0.0.0/8"));
    cases.push_back({r, "rules[3].scope.remote"});
  }
  {
    NetRule r;
    r.kind = NetRule::Kind::kShape;
    r.dirs = kBoth;
    r.egress_classid = 0x00010001;
    cases.push_back({r, "rules[3].ingress_classid"});
  }
  {
    NetRule r;
    r.kind = NetRule::Kind::kShape;
    r.egress_classid = 0x10;  // major 0
    cases.push_back({r, "rules[3].egress_classid"});
  }
  {
    NetRule r;
    r.egress_classid = 0x00010001;  // a partition has no class
    cases.push_back({r, "rules[3].egress_classid"});
  }
  for (const Case& c : cases) {
    RuleSlots slots;
    slots[3] = c.rule;
    auto out = compile_rules(slots, 0);
    ASSERT_FALSE(out.ok()) << c.field;
    EXPECT_EQ(out.error().status_code(), Code::kInvalidArgument);
    EXPECT_THAT(out.error().message(), HasSubstr(std::string(c.field) + ":")) << c.field;
  }
}

TEST(RuleSlotsTest, ThirtyThirdRuleIsRefused) {
  RuleSlots slots;
  for (size_t i = 0; i < kMaxRules; ++i) {
    auto slot = free_slot(slots);
    ASSERT_TRUE(slot.ok()) << i;
    EXPECT_EQ(*slot, i);
    slots[*slot] = partition({"10.0.0.0/8"});
  }
  auto full = free_slot(slots);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().status_code(), Code::kResourceExhausted);
  EXPECT_THAT(full.error().message(), HasSubstr("all 32 netfault rule slots"));
  // 32 rules do compile; a freed slot is found again.
  EXPECT_TRUE(compile_rules(slots, 0).ok());
  slots[9].reset();
  ASSERT_TRUE(free_slot(slots).ok());
  EXPECT_EQ(*free_slot(slots), 9u);
}

// --- diff_rules ---

CompiledRules compile(const RuleSlots& slots, uint32_t ifb = 0) {
  auto c = compile_rules(slots, ifb);
  EXPECT_TRUE(c.ok()) << c.error().message();
  return c.ok() ? *c : CompiledRules{};
}

std::vector<nq_config> configs_of(const std::vector<MapOp>& ops) {
  std::vector<nq_config> out;
  for (const MapOp& o : ops) {
    if (auto* c = std::get_if<op::ConfigUpdate>(&o)) out.push_back(c->config);
  }
  return out;
}

TEST(DiffRules, NoChangeNoOperations) {
  RuleSlots slots;
  slots[2] = partition({"10.0.0.0/8"});
  EXPECT_TRUE(diff_rules(compile(slots), compile(slots)).empty());
  EXPECT_TRUE(diff_rules(CompiledRules{}, CompiledRules{}).empty());
}

TEST(DiffRules, AddSetsTheActiveBitLast) {
  RuleSlots before;
  before[0] = partition({"10.0.0.0/8"});
  RuleSlots after = before;
  after[1] = partition({"10.1.0.0/16", "fd00::/8"});
  const auto ops = diff_rules(compile(before), compile(after));
  ASSERT_FALSE(ops.empty());
  // Last: the config with slot 1 active; nothing before it activates slot 1.
  ASSERT_TRUE(std::holds_alternative<op::ConfigUpdate>(ops.back()));
  EXPECT_EQ(std::get<op::ConfigUpdate>(ops.back()).config.active, 0b11u);
  for (size_t i = 0; i + 1 < ops.size(); ++i) {
    if (auto* c = std::get_if<op::ConfigUpdate>(&ops[i])) {
      EXPECT_EQ(c->config.active, 0b01u) << "op " << i;
      // The staged config carries the new masks without activating them.
      EXPECT_EQ(c->config.candidates[NQ_IDX_EGRESS], 0b11u);
    }
  }
  // Only slot 1 is written, and only the LPM entries that are new: the /8
  // keeps its mask.
  int rule_writes = 0, lpm_writes = 0;
  for (const MapOp& o : ops) {
    if (auto* r = std::get_if<op::RuleUpdate>(&o)) {
      EXPECT_EQ(r->slot, 1u);
      ++rule_writes;
    }
    if (auto* l = std::get_if<op::LpmUpdate>(&o)) {
      EXPECT_NE(l->prefix, prefix("10.0.0.0/8"));
      ++lpm_writes;
    }
    EXPECT_FALSE(std::holds_alternative<op::LpmDelete>(o));
  }
  EXPECT_EQ(rule_writes, 1);
  EXPECT_EQ(lpm_writes, 2);  // 10.1/16 (mask 0b11) and fd00::/8
}

TEST(DiffRules, RemoveClearsTheActiveBitFirst) {
  RuleSlots before;
  before[0] = partition({"10.0.0.0/8"});
  before[1] = partition({"10.1.0.0/16"});
  RuleSlots after = before;
  after[1].reset();
  const CompiledRules to = compile(after);
  const auto ops = diff_rules(compile(before), to);
  ASSERT_GE(ops.size(), 3u);
  ASSERT_TRUE(std::holds_alternative<op::ConfigUpdate>(ops.front()));
  EXPECT_EQ(std::get<op::ConfigUpdate>(ops.front()).config.active, 0b01u);
  ASSERT_TRUE(std::holds_alternative<op::ClearSlotState>(ops[1]));
  EXPECT_EQ(std::get<op::ClearSlotState>(ops[1]).slot, 1u);
  ASSERT_TRUE(std::holds_alternative<op::LpmDelete>(ops[2]));
  EXPECT_EQ(std::get<op::LpmDelete>(ops[2]).prefix, prefix("10.1.0.0/16"));
  const auto cfgs = configs_of(ops);
  for (const nq_config& c : cfgs) EXPECT_EQ(c.active, 0b01u);
  EXPECT_EQ(std::memcmp(&cfgs.back(), &to.config, sizeof(nq_config)), 0);
}

TEST(DiffRules, ChangedRuleIsDeactivatedRewrittenThenReactivated) {
  RuleSlots before;
  before[3] = partition({"10.0.0.0/8"});
  RuleSlots after;
  after[3] = partition({"10.0.0.0/8"}, kBoth);
  const auto ops = diff_rules(compile(before), compile(after));
  ASSERT_GE(ops.size(), 3u);
  EXPECT_EQ(std::get<op::ConfigUpdate>(ops.front()).config.active, 0u);
  EXPECT_EQ(std::get<op::ConfigUpdate>(ops.back()).config.active, 1u << 3);
  bool wrote = false;
  for (const MapOp& o : ops) {
    if (auto* r = std::get_if<op::RuleUpdate>(&o)) wrote = r->rule.dirs == NQ_DIR_BOTH;
  }
  EXPECT_TRUE(wrote);
}

TEST(DiffRules, IfbChangeIsOneConfigWrite) {
  RuleSlots slots;
  slots[0] = partition({"10.0.0.0/8"});
  const auto ops = diff_rules(compile(slots, 0), compile(slots, 42));
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(std::get<op::ConfigUpdate>(ops[0]).config.ifb_ifindex, 42u);
}

// A model of the maps that applies MapOps, for checking every intermediate
// state the program could observe.
struct Maps {
  std::array<std::map<Prefix, uint32_t>, kNumTries> tries;
  std::array<nq_rule, kMaxRules> rules{};
  nq_config config{};

  void apply(const MapOp& o) {
    if (auto* u = std::get_if<op::LpmUpdate>(&o)) tries[size_t(u->trie)][u->prefix] = u->mask;
    if (auto* d = std::get_if<op::LpmDelete>(&o)) tries[size_t(d->trie)].erase(d->prefix);
    if (auto* r = std::get_if<op::RuleUpdate>(&o)) rules[r->slot] = r->rule;
    if (auto* c = std::get_if<op::ConfigUpdate>(&o)) config = c->config;
  }
  // The longest-prefix lookup of the kernel's LPM trie.
  uint32_t lookup(Trie t, const Cidr& host) const {
    int best = -1;
    uint32_t mask = 0;
    for (const auto& [p, m] : tries[size_t(t)]) {
      Cidr c;
      c.family = host.family;
      c.addr = p.addr;
      c.prefix_len = p.len;
      if (c.contains(host) && p.len > best) {
        best = p.len;
        mask = m;
      }
    }
    return mask;
  }
};

bool covers(const std::vector<Cidr>& cidrs, const Cidr& host) {
  if (cidrs.empty()) return true;
  for (const Cidr& c : cidrs) {
    if (c.contains(host)) return true;
  }
  return false;
}

// Random rule sets over a small address space, so prefixes nest and collide.
NetRule random_rule(std::mt19937& rng) {
  NetRule r;
  r.dirs = 1 + rng() % 3;
  const int n = rng() % 4;
  for (int i = 0; i < n; ++i) {
    Cidr c;
    c.family = AF_INET;
    c.addr = {10, uint8_t(rng() % 4), uint8_t(rng() % 4), 0};
    c.prefix_len = uint8_t(8 + 8 * (rng() % 3));
    auto parsed = parse_cidr(c.str());  // clears host bits
    r.scope.remote.push_back(*parsed);
  }
  return r;
}

TEST(DiffRules, EveryIntermediateStateMatchesLikeTheOldOrTheNewRules) {
  std::mt19937 rng(12345);
  std::vector<Cidr> hosts;
  for (int a = 0; a < 4; ++a) {
    for (int b = 0; b < 4; ++b)
      hosts.push_back(*parse_cidr("10." + std::to_string(a) + "." + std::to_string(b) + ".1"));
  }
  for (int round = 0; round < 200; ++round) {
    RuleSlots from_slots, to_slots;
    for (size_t s = 0; s < 6; ++s) {
      if (rng() % 2) from_slots[s] = random_rule(rng);
      // Keep, drop, change or add.
      to_slots[s] = (rng() % 3 == 0) ? std::optional<NetRule>(random_rule(rng))
                    : (rng() % 2)    ? from_slots[s]
                                     : std::nullopt;
    }
    const CompiledRules from = compile(from_slots);
    const CompiledRules to = compile(to_slots);
    Maps m;
    m.tries = from.tries;
    m.config = from.config;
    for (size_t s = 0; s < kMaxRules; ++s) {
      if (from.rules[s]) m.rules[s] = *from.rules[s];
    }
    const auto ops = diff_rules(from, to);
    for (size_t step = 0; step <= ops.size(); ++step) {
      if (step > 0) m.apply(ops[step - 1]);
      for (size_t s = 0; s < kMaxRules; ++s) {
        if (!(m.config.active & (1U << s))) continue;
        // An active slot holds exactly the old or the new rule and matches
        // exactly the addresses that rule covers. (The CIDRs are not in
        // nq_rule, so an old and a new rule can have the same bytes.)
        const nq_rule& cur = m.rules[s];
        std::vector<const NetRule*> sources;
        if (from.rules[s] && std::memcmp(&cur, &*from.rules[s], sizeof(cur)) == 0)
          sources.push_back(&*from_slots[s]);
        if (to.rules[s] && std::memcmp(&cur, &*to.rules[s], sizeof(cur)) == 0)
          sources.push_back(&*to_slots[s]);
        ASSERT_FALSE(sources.empty()) << "round " << round << " step " << step << " slot " << s;
        bool consistent = false;
        for (const NetRule* src : sources) {
          bool all = true;
          for (const Cidr& h : hosts) {
            const uint32_t mask = m.lookup(Trie::kRemote4, h) | m.config.any_remote;
            all = all && bool(mask & (1U << s)) == covers(src->scope.remote, h);
          }
          consistent = consistent || all;
        }
        EXPECT_TRUE(consistent) << "round " << round << " step " << step << " slot " << s;
      }
    }
    EXPECT_EQ(m.tries, to.tries) << "round " << round;
    EXPECT_EQ(std::memcmp(&m.config, &to.config, sizeof(nq_config)), 0) << "round " << round;
  }
}

}  // namespace
}  // namespace nq::net

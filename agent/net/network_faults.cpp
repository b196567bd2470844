#include "agent/net/network_faults.h"

#include <linux/pkt_sched.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <functional>
#include <vector>

#include "agent/net/links.h"
#include "agent/net/qdisc.h"
#include "agent/net/qdisc_snapshot.h"
#include "agent/net/rules.h"
#include "agent/net/tc_dump.h"
#include "common/netns.h"

namespace nq::net {
namespace {

namespace jr = nodequake::v1::journal;

std::string class_str(uint32_t classid) {
  return handle_str(classid);
}

// Undo steps of a half-applied fault, run newest first. Their own failures
// are logged: the journal still names what is left, for reconcile.
class UndoStack {
 public:
  void push(std::string what, std::function<Status()> step) {
    steps_.emplace_back(std::move(what), std::move(step));
  }
  void run() {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      if (Status st = it->second(); !st.ok())
        spdlog::error("rollback: {} failed: {}", it->first, st.error().message());
    }
    steps_.clear();
  }
  void commit() { steps_.clear(); }

 private:
  std::vector<std::pair<std::string, std::function<Status()>>> steps_;
};

// A device that is gone (its pod deleted) holds no fault any more.
bool vanished(const Error& e) {
  return e.status_code() == Code::kNotFound || e.sys_errno() == ENODEV;
}

std::string ifb_name_for(const std::string& ifname) {
  std::string name = "nqifb-" + ifname;
  if (name.size() < IFNAMSIZ) return name;
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08zx", std::hash<std::string>{}(ifname)&0xffffffffu);
  return std::string("nqifb-") + hex;
}

}  // namespace

// ---------------------------------------------------------------- Link

class NetworkFaults::Link {
 public:
  Link(std::string key, Netns netns, std::string ifname, int ifindex, NlSocket sock,
       core::RecordSink journal, NetfaultLoadOptions bpf, ProgramPool& pool)
      : key_(std::move(key)),
        netns_(std::move(netns)),
        ifname_(std::move(ifname)),
        ifindex_(ifindex),
        sock_(std::move(sock)),
        journal_(std::move(journal)),
        bpf_(bpf),
        pool_(pool) {
    owned_.set_key(key_);
    owned_.mutable_netns()->set_path(netns_.path());
    owned_.mutable_netns()->set_dev(netns_.id().dev);
    owned_.mutable_netns()->set_ino(netns_.id().ino);
    owned_.set_ifname(ifname_);
    owned_.set_ifindex(ifindex_);
  }

  bool empty() const { return by_id_.empty(); }
  const std::string& key() const { return key_; }
  // Since when the interface has had no fault (meaningful when empty()).
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }

  Result<core::Details> apply(const std::string& id, const core::NetworkFault& fault);
  Status revert(const std::string& id);
  // Removes everything left (after the last revert or a failed first apply).
  Status release();

 private:
  Status journal_owned() {
    jr::Record rec;
    *rec.mutable_link_owned() = owned_;
    return journal_(rec);
  }
  template <class F>
  auto in_netns(F&& fn) {
    return run_in_netns(netns_, std::forward<F>(fn));
  }
  bool any_egress_shaping() const {
    for (const auto& r : slots_)
      if (r && r->egress_classid) return true;
    return false;
  }
  bool any_ingress_shaping() const {
    for (const auto& r : slots_)
      if (r && r->ingress_classid) return true;
    return false;
  }
  Status push_rules() {
    NQ_ASSIGN_OR_RETURN(CompiledRules compiled,
                        compile_rules(slots_, static_cast<uint32_t>(ifb_index_)));
    return prog_->apply(compiled);
  }
  Status ensure_egress_root(UndoStack& undo);
  Status ensure_ifb(UndoStack& undo);
  Status ensure_program(UndoStack& undo);
  Status drop_egress_root();
  Status drop_ifb();
  Status drop_program();

  std::string key_;
  Netns netns_;
  std::string ifname_;
  int ifindex_;
  NlSocket sock_;  // bound to netns_
  core::RecordSink journal_;
  NetfaultLoadOptions bpf_;
  ProgramPool& pool_;

  jr::LinkOwned owned_;  // what the journal says we own here
  bool egress_root_ = false;
  int ifb_index_ = 0;
  std::optional<NetfaultProgram> prog_;
  RuleSlots slots_;
  std::map<std::string, uint32_t> by_id_;
  std::chrono::steady_clock::time_point idle_since_{};
};

Status NetworkFaults::Link::ensure_egress_root(UndoStack& undo) {
  if (egress_root_) return ok();
  // Snapshot what is there (a CNI's qdisc, or the kernel default), journal
  // it, and only then replace it.
  NQ_ASSIGN_OR_RETURN(QdiscTreeSnapshot snapshot, snapshot_root(sock_, ifindex_));
  owned_.set_root_handle(kRootHandle);
  *owned_.mutable_replaced_root() = snapshot;
  NQ_TRY(journal_owned());
  undo.push("restore root of " + ifname_, [this] { return drop_egress_root(); });
  egress_root_ = true;  // from here drop_egress_root() restores whatever happened
  return install_root(sock_, ifindex_, kRootHandle);
}

Status NetworkFaults::Link::drop_egress_root() {
  if (!egress_root_) return ok();
  auto outcome = restore_root(sock_, ifindex_, kRootHandle, owned_.replaced_root());
  if (!outcome.ok() && !vanished(outcome.error())) return std::move(outcome).error();
  if (outcome.ok() && *outcome == RestoreOutcome::kForeignRoot)
    spdlog::warn("{}: root qdisc was replaced by someone else meanwhile; left alone", ifname_);
  egress_root_ = false;
  owned_.set_root_handle(0);
  owned_.clear_replaced_root();
  return journal_owned();
}

Status NetworkFaults::Link::ensure_ifb(UndoStack& undo) {
  if (ifb_index_ != 0) return ok();
  const std::string name = ifb_name_for(ifname_);
  owned_.set_ifb_name(name);
  NQ_TRY(journal_owned());
  if (Status st = create_ifb(sock_, name); !st.ok()) {
    // Not ours (EEXIST: a device of that name is someone else's): forget it.
    owned_.clear_ifb_name();
    if (Status js = journal_owned(); !js.ok())
      spdlog::warn("journal: {} (reconcile may look for {} in vain)", js.error().message(), name);
    return st;
  }
  undo.push("delete " + name, [this] { return drop_ifb(); });
  NQ_ASSIGN_OR_RETURN(ifb_index_, link_index(sock_, name));
  NQ_TRY(set_link_up(sock_, name));
  return install_root(sock_, ifb_index_, kRootHandle);
}

Status NetworkFaults::Link::drop_ifb() {
  if (owned_.ifb_name().empty()) return ok();
  // The program lets go of the ifb first (with clsact attach that removes
  // the mirred filter aimed at it); the ifb's qdiscs go with the device.
  ifb_index_ = 0;
  if (prog_) {
    if (Status st = push_rules(); !st.ok() && !vanished(st.error())) return st;
  }
  NQ_TRY(delete_link(sock_, owned_.ifb_name()));
  owned_.clear_ifb_name();
  return journal_owned();
}

Status NetworkFaults::Link::ensure_program(UndoStack& undo) {
  if (prog_) return ok();
  NQ_ASSIGN_OR_RETURN(NetfaultProgram prog, pool_.take());
  prog_.emplace(std::move(prog));
  undo.push("detach netfault program", [this] { return drop_program(); });
  if (bpf_.attach == NetfaultLoadOptions::Attach::kAuto)
    return Error::internal("netfault attach mode must be decided (TCX or legacy tc) before use");
  if (bpf_.attach == NetfaultLoadOptions::Attach::kLegacyTc) {
    // Legacy clsact filters outlive the process: journal them first. Whether
    // the clsact qdisc is ours decides whether reconcile may remove it.
    NQ_ASSIGN_OR_RETURN(auto qdiscs, dump_qdiscs(sock_, ifindex_));
    bool clsact = false;
    for (const auto& q : qdiscs) clsact = clsact || q.kind == "clsact";
    owned_.set_clsact_created(!clsact);
    owned_.clear_legacy_filters();
    for (uint32_t hook : {TC_H_MIN_EGRESS, TC_H_MIN_INGRESS}) {
      auto* f = owned_.add_legacy_filters();
      f->set_parent(TC_H_MAKE(TC_H_CLSACT, hook));
      f->set_priority(NetfaultProgram::kLegacyPriority);
      f->set_handle(NetfaultProgram::kLegacyHandle);
    }
    NQ_TRY(journal_owned());
  }
  return in_netns([&] { return prog_->attach(ifindex_); });
}

Status NetworkFaults::Link::drop_program() {
  if (!prog_) return ok();
  Status st = in_netns([&] { return prog_->detach(); });
  if (!st.ok() && !vanished(st.error())) return st;
  prog_.reset();
  if (owned_.legacy_filters_size() > 0) {
    owned_.clear_legacy_filters();
    owned_.set_clsact_created(false);
    return journal_owned();
  }
  return ok();
}

Result<core::Details> NetworkFaults::Link::apply(const std::string& id,
                                                 const core::NetworkFault& fault) {
  NQ_ASSIGN_OR_RETURN(uint32_t slot, free_slot(slots_));
  const auto minor = static_cast<uint16_t>(slot + 1);
  NetRule rule;
  rule.kind =
      fault.kind == core::FaultKind::kPartition ? NetRule::Kind::kPartition : NetRule::Kind::kShape;
  rule.dirs = fault.path.dirs;
  rule.scope = fault.path.scope;
  if (fault.egress) rule.egress_classid = class_id(kRootHandle, minor);
  if (fault.ingress) rule.ingress_classid = class_id(kRootHandle, minor);
  {
    // Refuse a rule the program cannot hold before touching anything.
    RuleSlots trial = slots_;
    trial[slot] = rule;
    if (auto compiled = compile_rules(trial, 1); !compiled.ok()) return std::move(compiled).error();
  }

  UndoStack undo;
  auto fail = [&](Error e) -> Error {
    undo.run();
    return e;
  };
  core::Details details;
  if (fault.egress) {
    if (Status st = ensure_egress_root(undo); !st.ok()) return fail(std::move(st).error());
    if (Status st = add_leaf(sock_, ifindex_, kRootHandle, minor, *fault.egress); !st.ok())
      return fail(std::move(st).error().wrapped("egress leaf on " + ifname_));
    undo.push("remove egress leaf",
              [this, minor] { return remove_leaf(sock_, ifindex_, kRootHandle, minor); });
    details["egress_class"] = ifname_ + " " + class_str(class_id(kRootHandle, minor));
  }
  if (fault.ingress) {
    if (Status st = ensure_ifb(undo); !st.ok()) return fail(std::move(st).error().wrapped("ifb"));
    if (Status st = add_leaf(sock_, ifb_index_, kRootHandle, minor, *fault.ingress); !st.ok())
      return fail(std::move(st).error().wrapped("ingress leaf on " + owned_.ifb_name()));
    undo.push("remove ingress leaf",
              [this, minor] { return remove_leaf(sock_, ifb_index_, kRootHandle, minor); });
    details["ingress_class"] = owned_.ifb_name() + " " + class_str(class_id(kRootHandle, minor));
  }
  if (Status st = ensure_program(undo); !st.ok())
    return fail(std::move(st).error().wrapped("netfault program"));
  slots_[slot] = rule;
  undo.push("remove rule", [this, slot] {
    slots_[slot].reset();
    return push_rules();
  });
  if (Status st = push_rules(); !st.ok()) return fail(std::move(st).error().wrapped("rules"));
  undo.commit();

  by_id_[id] = slot;
  details["netns"] = netns_.path();
  details["interface"] = ifname_;
  details["slot"] = std::to_string(slot);
  details["attach"] = prog_->mode() == NetfaultProgram::AttachMode::kTcx ? "tcx" : "tc-clsact";
  return details;
}

Status NetworkFaults::Link::revert(const std::string& id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return ok();
  const uint32_t slot = it->second;
  const NetRule rule = *slots_[slot];
  const auto minor = static_cast<uint16_t>(slot + 1);

  // Stop matching first, then take the qdiscs away.
  slots_[slot].reset();
  if (prog_) {
    if (Status st = push_rules(); !st.ok() && !vanished(st.error())) {
      slots_[slot] = rule;
      return st;
    }
  }
  if (rule.egress_classid) {
    if (Status st = remove_leaf(sock_, ifindex_, kRootHandle, minor);
        !st.ok() && !vanished(st.error()))
      return st;
  }
  if (rule.ingress_classid && ifb_index_ != 0) {
    if (Status st = remove_leaf(sock_, ifb_index_, kRootHandle, minor);
        !st.ok() && !vanished(st.error()))
      return st;
  }
  by_id_.erase(it);
  if (!any_egress_shaping()) NQ_TRY(drop_egress_root());
  if (!any_ingress_shaping()) NQ_TRY(drop_ifb());
  if (by_id_.empty()) idle_since_ = std::chrono::steady_clock::now();
  return ok();
}

Status NetworkFaults::Link::release() {
  NQ_TRY(drop_program());
  NQ_TRY(drop_egress_root());
  NQ_TRY(drop_ifb());
  jr::Record rec;
  rec.mutable_link_released()->set_key(key_);
  return journal_(rec);
}

// ---------------------------------------------------------------- NetworkFaults

NetworkFaults::NetworkFaults(core::RecordSink journal, NetworkFaultsOptions options)
    : journal_(journal),
      options_(options),
      pool_(options.bpf, options.spare_programs),
      delay_lines_(std::move(journal), options.delay_line) {}

NetworkFaults::~NetworkFaults() = default;

Result<NetworkFaults::Link*> NetworkFaults::link_for(const runtime::PodInfo& pod,
                                                     const std::string& ifname) {
  if (pod.netns_path.empty())
    return Error::failed_precondition("pod " + pod.key() + " has no network namespace of its own");
  NQ_ASSIGN_OR_RETURN(Netns netns, Netns::open(pod.netns_path));
  const std::string key =
      std::to_string(netns.id().dev) + ":" + std::to_string(netns.id().ino) + "/" + ifname;
  if (auto it = links_.find(key); it != links_.end()) return it->second.get();

  NQ_ASSIGN_OR_RETURN(NlSocket sock, run_in_netns(netns, [] { return NlSocket::open_route(); }));
  auto ifindex = link_index(sock, ifname);
  if (!ifindex.ok()) {
    if (ifindex.error().status_code() == Code::kNotFound)
      return Error::not_found("pod " + pod.key() + " has no interface " + ifname);
    return std::move(ifindex).error();
  }
  auto link = std::make_unique<Link>(key, std::move(netns), ifname, *ifindex, std::move(sock),
                                     journal_, options_.bpf, pool_);
  Link* raw = link.get();
  links_.emplace(key, std::move(link));
  return raw;
}

Result<core::Details> NetworkFaults::apply(const std::string& id, const core::NetworkFault& fault,
                                           const runtime::PodInfo& pod) {
  if (fault.kind == core::FaultKind::kNetem && fault.engine == core::NetemEngine::kEbpf)
    return delay_lines_.apply(id, fault, pod);
  NQ_ASSIGN_OR_RETURN(Link * link, link_for(pod, fault.path.ifname));
  auto details = link->apply(id, fault);
  if (!details.ok()) {
    // A link that never held a fault is not worth keeping idle.
    if (link->empty()) release(links_.find(link->key()));
    return details;
  }
  link_of_[id] = link->key();
  return details;
}

Status NetworkFaults::revert(const std::string& id) {
  if (delay_lines_.holds(id)) return delay_lines_.revert(id);
  auto it = link_of_.find(id);
  if (it == link_of_.end()) return ok();
  auto lit = links_.find(it->second);
  if (lit != links_.end()) {
    NQ_TRY(lit->second->revert(id));
    if (lit->second->empty() && options_.idle_detach.count() == 0) release(lit);
  }
  link_of_.erase(it);
  return ok();
}

void NetworkFaults::release(std::map<std::string, std::unique_ptr<Link>>::iterator it) {
  if (it == links_.end()) return;
  if (Status st = it->second->release(); !st.ok()) {
    // Keep it: what is left stays journaled for the next attempt (or the
    // next start's reconcile).
    spdlog::error("releasing {}: {}", it->first, st.error().message());
    return;
  }
  links_.erase(it);
}

void NetworkFaults::release_idle() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = links_.begin(); it != links_.end();) {
    auto next = std::next(it);
    if (it->second->empty() && now - it->second->idle_since() >= options_.idle_detach) release(it);
    it = next;
  }
}

core::Details NetworkFaults::observe(const std::string& id) const {
  return delay_lines_.observe(id);
}

void NetworkFaults::release_all() {
  delay_lines_.release_all();
  for (auto it = links_.begin(); it != links_.end();) {
    auto next = std::next(it);
    release(it);
    it = next;
  }
}

Status NetworkFaults::reconcile(const jr::LinkOwned& link) {
  auto netns = Netns::open(link.netns().path());
  if (!netns.ok()) {
    if (netns.error().status_code() == Code::kNotFound) return ok();  // the pod is gone
    return std::move(netns).error().wrapped("reconcile " + link.ifname());
  }
  if (netns->id() != NsId{link.netns().dev(), link.netns().ino()})
    return ok();  // replaced: ours is gone
  NQ_TRY(DelayLineFaults::reconcile(link));

  return run_in_netns(*netns, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(NlSocket sock, NlSocket::open_route());
    if (link.legacy_filters_size() > 0) {
      std::vector<NetfaultProgram::LegacyAttachment> legacy;
      for (const auto& f : link.legacy_filters())
        legacy.push_back(
            {f.parent(), f.priority(), f.handle(), link.clsact_created(), link.ifindex()});
      NQ_TRY(NetfaultProgram::remove_legacy(legacy));
    }
    if (link.root_handle() != 0) {
      auto ifindex = link_index(sock, link.ifname());
      if (ifindex.ok()) {
        auto outcome = restore_root(sock, *ifindex, link.root_handle(), link.replaced_root());
        if (!outcome.ok() && !vanished(outcome.error())) return std::move(outcome).error();
      } else if (!vanished(ifindex.error())) {
        return std::move(ifindex).error();
      }
    }
    if (!link.ifb_name().empty()) NQ_TRY(delete_link(sock, link.ifb_name()));
    return ok();
  });
}

}  // namespace nq::net

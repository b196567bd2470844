#include "agent/net/qdisc_snapshot.h"

#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>

#include <algorithm>
#include <map>
#include <set>

#include "agent/net/qdisc.h"
#include "agent/net/tc_wire.h"

namespace nq::net {
namespace {

uint32_t major(uint32_t h) {
  return TC_H_MAJ(h);
}

// Objects nobody created: the kernel's default qdiscs (handle 0:) and the
// classes such a qdisc has by construction (mq's per-queue classes).
bool kernel_made(const TcObject& o) {
  if (o.type == RTM_NEWQDISC) return o.handle == 0;
  if (o.type == RTM_NEWTCLASS) return major(o.handle) == 0;
  return false;
}

Status check_replayable(const TcObject& o) {
  if (o.type == RTM_NEWTFILTER && o.kind == "bpf")
    return Error::failed_precondition(
        describe(o) +
        ": a bpf filter's program cannot be re-attached from a dump; refusing to replace "
        "the root qdisc it hangs off");
  // The kernel dumps a size table's parameters but not its table.
  std::span<const uint8_t> stab = find_attr(o, TCA_STAB);
  for (const WireAttr& a : parse_attrs(stab)) {
    tc_sizespec spec{};
    if (a.type == TCA_STAB_BASE && a.data.size() >= sizeof(spec)) {
      std::memcpy(&spec, a.data.data(), sizeof(spec));
      if (spec.tsize > 0)
        return Error::failed_precondition(
            describe(o) +
            ": its size table cannot be recreated from a dump; refusing to "
            "replace the root qdisc");
    }
  }
  return ok();
}

// Classes of one qdisc, parents before children (the kernel dumps HTB's in
// hash order).
std::vector<const TcObject*> classes_in_order(const std::vector<const TcObject*>& classes) {
  std::vector<const TcObject*> out;
  std::set<uint32_t> placed;
  std::set<uint32_t> ids;
  for (const TcObject* c : classes) ids.insert(c->handle);
  std::vector<const TcObject*> pending = classes;
  while (!pending.empty()) {
    std::vector<const TcObject*> later;
    for (const TcObject* c : pending) {
      if (ids.count(c->parent) && !placed.count(c->parent)) {
        later.push_back(c);
      } else {
        out.push_back(c);
        placed.insert(c->handle);
      }
    }
    if (later.size() == pending.size()) {  // a cycle cannot happen; do not loop on garbage
      out.insert(out.end(), later.begin(), later.end());
      break;
    }
    pending = std::move(later);
  }
  return out;
}

std::vector<TcObject> parse_snapshot(const QdiscTreeSnapshot& s, Status* error) {
  std::vector<TcObject> out;
  for (int i = 0; i < s.messages_size(); ++i) {
    const std::string& m = s.messages(i);
    auto obj = parse_tc_message(std::span(reinterpret_cast<const uint8_t*>(m.data()), m.size()));
    if (!obj.ok()) {
      *error = std::move(obj).error().wrapped("snapshot message " + std::to_string(i));
      return {};
    }
    out.push_back(std::move(obj).value());
  }
  return out;
}

bool is_u32_hash_table(const TcObject& o) {
  // u32 handles are htid(12 bits):hash(8):node(12); a table has no node.
  return o.type == RTM_NEWTFILTER && o.kind == "u32" && (o.handle & 0xfffff) == 0;
}

}  // namespace

Result<QdiscTreeSnapshot> plan_snapshot(const std::vector<TcObject>& device) {
  std::vector<const TcObject*> qdiscs, classes, filters;
  const TcObject* root = nullptr;
  for (const TcObject& o : device) {
    if (o.type == RTM_NEWQDISC) {
      if (o.parent == TC_H_ROOT) root = &o;
      // Ingress and clsact hang off TC_H_INGRESS: not part of the root tree.
      if (o.parent != TC_H_ROOT && o.parent != TC_H_INGRESS) qdiscs.push_back(&o);
    } else if (o.type == RTM_NEWTCLASS) {
      classes.push_back(&o);
    } else {
      filters.push_back(&o);
    }
  }
  if (root == nullptr) return Error::failed_precondition("the device has no root qdisc");

  // Breadth first from the root: each qdisc, then its classes, then the
  // qdiscs grafted onto those classes (or onto the qdisc's own minors).
  std::vector<const TcObject*> order{root};
  std::set<uint32_t> tree_majors{major(root->handle)};
  std::set<const TcObject*> emitted{root};
  for (size_t next = 0; next < order.size(); ++next) {
    const TcObject* q = order[next];
    if (q->type != RTM_NEWQDISC) continue;
    std::vector<const TcObject*> own;
    for (const TcObject* c : classes)
      if (major(c->handle) == major(q->handle) && !emitted.count(c)) own.push_back(c);
    for (const TcObject* c : classes_in_order(own)) {
      order.push_back(c);
      emitted.insert(c);
    }
    for (const TcObject* child : qdiscs) {
      if (emitted.count(child) || major(child->parent) != major(q->handle)) continue;
      order.push_back(child);
      emitted.insert(child);
      tree_majors.insert(major(child->handle));
    }
  }
  for (const TcObject* f : filters)
    if (tree_majors.count(major(f->parent))) order.push_back(f);

  QdiscTreeSnapshot snap;
  snap.set_kernel_default(root->handle == 0);
  for (const TcObject* o : order) {
    NQ_TRY(check_replayable(*o));
    // Below a kernel default root only what someone added needs replaying:
    // deleting our root brings the defaults back.
    if (snap.kernel_default() && kernel_made(*o)) continue;
    const std::vector<uint8_t> bytes = encode_tc_message(*o);
    snap.add_messages(std::string(bytes.begin(), bytes.end()));
  }
  return snap;
}

Result<std::vector<ReplayStep>> plan_replay(const QdiscTreeSnapshot& snapshot, int ifindex,
                                            uint32_t our_handle) {
  Status parse_error;
  std::vector<TcObject> objects = parse_snapshot(snapshot, &parse_error);
  if (!parse_error.ok()) return std::move(parse_error).error();
  if (!snapshot.kernel_default()) {
    if (objects.empty() || objects.front().type != RTM_NEWQDISC ||
        objects.front().parent != TC_H_ROOT)
      return Error::status(Code::kDataLoss, "snapshot does not start with a root qdisc");
    if (major(objects.front().handle) == major(our_handle))
      return Error::invalid_argument("snapshot", "its root is our own " + handle_str(our_handle) +
                                                     " (taken after ours was installed)");
  }
  std::vector<ReplayStep> steps;
  for (TcObject& o : objects) {
    ReplayStep step;
    o.ifindex = ifindex;
    switch (o.type) {
      case RTM_NEWQDISC:
        step.flags = NLM_F_CREATE | NLM_F_REPLACE;
        break;
      case RTM_NEWTCLASS:
        step.flags = NLM_F_CREATE | NLM_F_EXCL;
        step.exists_ok = true;
        break;
      default:
        step.flags = NLM_F_CREATE | NLM_F_EXCL;
        step.exists_ok = is_u32_hash_table(o);
    }
    step.object = std::move(o);
    steps.push_back(std::move(step));
  }
  return steps;
}

std::string snapshot_difference(const QdiscTreeSnapshot& expected,
                                const QdiscTreeSnapshot& actual) {
  Status e1, e2;
  std::vector<TcObject> a = parse_snapshot(expected, &e1);
  std::vector<TcObject> b = parse_snapshot(actual, &e2);
  if (!e1.ok()) return "expected: " + e1.error().message();
  if (!e2.ok()) return "actual: " + e2.error().message();
  std::string out;
  if (expected.kernel_default() != actual.kernel_default())
    out += std::string("kernel_default ") + (expected.kernel_default() ? "true" : "false") +
           " became " + (actual.kernel_default() ? "true" : "false") + "; ";
  // Multiset difference on the messages (ifindex aside: the same device).
  std::map<std::vector<uint8_t>, int> count;
  std::map<std::vector<uint8_t>, std::string> name;
  for (TcObject& o : a) {
    o.ifindex = 0;
    auto k = encode_tc_message(o);
    ++count[k];
    name[k] = describe(o);
  }
  for (TcObject& o : b) {
    o.ifindex = 0;
    auto k = encode_tc_message(o);
    --count[k];
    name[k] = describe(o);
  }
  for (const auto& [k, n] : count) {
    if (n > 0) out += "missing " + name[k] + "; ";
    if (n < 0) out += "unexpected " + name[k] + "; ";
  }
  if (out.size() >= 2) out.resize(out.size() - 2);
  return out;
}

Result<QdiscTreeSnapshot> snapshot_root(NlSocket& sock, int ifindex) {
  NQ_ASSIGN_OR_RETURN(std::vector<TcObject> device, dump_device(sock, ifindex));
  auto snap = plan_snapshot(device);
  if (!snap.ok())
    return std::move(snap).error().wrapped("snapshot root qdisc of ifindex " +
                                           std::to_string(ifindex));
  return snap;
}

std::string_view outcome_name(RestoreOutcome outcome) {
  switch (outcome) {
    case RestoreOutcome::kRestored:
      return "restored";
    case RestoreOutcome::kAlreadyRestored:
      return "already restored";
    case RestoreOutcome::kForeignRoot:
      return "foreign root left alone";
  }
  return "?";
}

Result<RestoreOutcome> restore_root(NlSocket& sock, int ifindex, uint32_t our_handle,
                                    const QdiscTreeSnapshot& snapshot) {
  const std::string where = "restore root qdisc of ifindex " + std::to_string(ifindex);
  // Validate everything before touching the kernel.
  NQ_ASSIGN_OR_RETURN(std::vector<ReplayStep> steps, plan_replay(snapshot, ifindex, our_handle));
  NQ_ASSIGN_OR_RETURN(bool ours, root_is(sock, ifindex, our_handle));
  if (!ours) {
    auto current = snapshot_root(sock, ifindex);
    if (current.ok() && snapshot_difference(snapshot, *current).empty())
      return RestoreOutcome::kAlreadyRestored;
    return RestoreOutcome::kForeignRoot;
  }
  if (snapshot.kernel_default()) {
    NQ_ASSIGN_OR_RETURN(MsgPtr del, build_delete_root(ifindex, our_handle));
    NQ_TRY(transact(sock, del.get(), where + ": delete " + handle_str(our_handle)));
  } else {
    // Our leaf qdiscs are <minor>: (1:, 2:, ... 10:), handles a CNI's tree
    // uses too. While one exists, the kernel refuses to put the snapshot's
    // root 1: over ours ("Cannot move an existing qdisc to a different
    // parent"). A revert removes its leaf first, but a reconcile after a
    // crash finds them all in place: strip our tree down to its bare root.
    // The root itself stays until the replace below, so a crash in between
    // still leaves our root for the next reconcile to finish the job.
    NQ_ASSIGN_OR_RETURN(std::vector<TcObject> classes, dump_classes(sock, ifindex));
    for (const TcObject& c : classes) {
      if (major(c.handle) != major(our_handle)) continue;
      NQ_TRY(remove_leaf(sock, ifindex, our_handle, static_cast<uint16_t>(TC_H_MIN(c.handle))));
    }
  }
  for (const ReplayStep& step : steps) {
    const std::vector<uint8_t> bytes = encode_tc_message(step.object);
    MsgPtr msg(nlmsg_alloc_simple(step.object.type, step.flags));
    if (!msg) return Error::from_errno(ENOMEM, "nlmsg_alloc_simple");
    const size_t payload = bytes.size() - NLMSG_HDRLEN;
    if (int rc = nlmsg_append(msg.get(), const_cast<uint8_t*>(bytes.data()) + NLMSG_HDRLEN, payload,
                              NLMSG_ALIGNTO);
        rc < 0)
      return Error::from_netlink(rc, where);
    Status st = transact(sock, msg.get(), where + ": " + describe(step.object));
    if (!st.ok() && !(step.exists_ok && st.error().sys_errno() == EEXIST))
      return std::move(st).error();
  }
  NQ_ASSIGN_OR_RETURN(QdiscTreeSnapshot after, snapshot_root(sock, ifindex));
  if (std::string diff = snapshot_difference(snapshot, after); !diff.empty())
    return Error::status(Code::kDataLoss, where + ": the rebuilt tree differs: " + diff);
  return RestoreOutcome::kRestored;
}

}  // namespace nq::net

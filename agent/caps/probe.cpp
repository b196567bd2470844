// Network and BPF capabilities, probed by doing the real thing once in a
// throwaway network namespace: a feature is available when the kernel accepts it.
#include "agent/caps/probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/tbf.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "agent/caps/modules.h"
#include "agent/net/links.h"
#include "agent/net/netlink.h"
#include "common/fd.h"

namespace nq {
namespace {

// The 6.1 UAPI headers predate TCX (kernel 6.6); the value is ABI.
constexpr int kBpfTcxIngress = 46;  // BPF_TCX_INGRESS

std::string errno_name(int err) {
  const char* name = ::strerrorname_np(err);
  return name != nullptr ? name : "errno " + std::to_string(err);
}

// libnl folds errno into NLE_* codes; recover the ones a probe can explain.
std::string describe_nl(int rc) {
  switch (rc < 0 ? -rc : rc) {
    case NLE_OBJ_NOTFOUND:
      return "ENOENT";
    case NLE_OPNOTSUPP:
      return "EOPNOTSUPP";
    case NLE_PERM:
      return "EPERM";
    case NLE_INVAL:
      return "EINVAL";
    default:
      return nl_geterror(rc);
  }
}

Capability try_root_qdisc(net::NlSocket& sock, int ifindex, const char* kind) {
  const std::string name = std::string("sch_") + kind;
  net::QdiscPtr q(rtnl_qdisc_alloc());
  if (!q) return {name, false, "rtnl_qdisc_alloc: out of memory"};
  rtnl_tc* tc = TC_CAST(q.get());
  rtnl_tc_set_ifindex(tc, ifindex);
  rtnl_tc_set_parent(tc, TC_H_ROOT);
  rtnl_tc_set_handle(tc, TC_HANDLE(0xdead, 0));
  if (int rc = rtnl_tc_set_kind(tc, kind); rc < 0)
    return {name, false,
            std::string("libnl cannot build a ") + kind + " qdisc: " + nl_geterror(rc)};
  // Each kind refuses to be created without its options.
  if (std::strcmp(kind, "netem") == 0) {
    rtnl_netem_set_limit(q.get(), 1000);
  } else if (std::strcmp(kind, "tbf") == 0) {
    rtnl_qdisc_tbf_set_limit(q.get(), 64 * 1024);
    rtnl_qdisc_tbf_set_rate(q.get(), 125000, 16 * 1024, 0);
  } else if (std::strcmp(kind, "htb") == 0) {
    rtnl_htb_set_defcls(q.get(), 0);
  }
  const int rc = rtnl_qdisc_add(sock.get(), q.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc < 0) {
    if (rc == -NLE_OBJ_NOTFOUND)
      return {name, false, "qdisc kind unknown to this kernel (ENOENT): kernel lacks " + name};
    return {name, false,
            std::string("adding a ") + kind + " root qdisc failed (" + describe_nl(rc) + ")"};
  }
  // Leave lo at its default root for the next kind (the namespace dies soon anyway).
  rtnl_qdisc_delete(sock.get(), q.get());
  return {name, true, std::string("added a ") + kind + " root qdisc to lo in a scratch netns"};
}

Capability try_clsact(net::NlSocket& sock, int ifindex) {
  net::QdiscPtr q(rtnl_qdisc_alloc());
  if (!q) return {"sch_clsact", false, "rtnl_qdisc_alloc: out of memory"};
  rtnl_tc* tc = TC_CAST(q.get());
  rtnl_tc_set_ifindex(tc, ifindex);
  rtnl_tc_set_parent(tc, TC_H_CLSACT);
  rtnl_tc_set_handle(tc, TC_H_MAKE(TC_H_CLSACT, 0));
  rtnl_tc_set_kind(tc, "clsact");
  const int rc = rtnl_qdisc_add(sock.get(), q.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc == -NLE_OBJ_NOTFOUND)
    return {"sch_clsact", false,
            "qdisc kind unknown to this kernel (ENOENT): kernel lacks sch_ingress (clsact)"};
  if (rc < 0)
    return {"sch_clsact", false, "adding a clsact qdisc failed (" + describe_nl(rc) + ")"};
  return {"sch_clsact", true, "added a clsact qdisc to lo in a scratch netns"};
}

Capability try_ifb(net::NlSocket& sock) {
  Status st = net::create_ifb(sock, "nqprobe-ifb0");
  if (!st.ok()) {
    const bool unknown = st.error().code() == std::error_code(NLE_OPNOTSUPP, netlink_category()) ||
                         st.error().code() == std::error_code(NLE_OBJ_NOTFOUND, netlink_category());
    return {"ifb", false,
            unknown ? "link kind unknown to this kernel: kernel lacks ifb (" +
                          st.error().message() + ")"
                    : st.error().message()};
  }
  return {"ifb", true, "created an ifb device in a scratch netns"};
}

// A program that returns TC_ACT_OK: r0 = 0; exit.
UniqueFd load_pass_program(bpf_prog_type type, const char* name) {
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  return UniqueFd(bpf_prog_load(type, name, "GPL", insns, 2, nullptr));
}

Capability try_tcx(int ifindex) {
  UniqueFd prog = load_pass_program(BPF_PROG_TYPE_SCHED_CLS, "nq_probe_tcx");
  if (!prog) {
    const int err = errno;
    return {"bpf_tcx", false, "loading a sched_cls program failed (" + errno_name(err) + ")"};
  }
  UniqueFd link(
      bpf_link_create(prog.get(), ifindex, static_cast<bpf_attach_type>(kBpfTcxIngress), nullptr));
  if (!link) {
    const int err = errno;
    return {"bpf_tcx", false,
            "bpf_link_create(BPF_TCX_INGRESS) failed (" + errno_name(err) + ")" +
                (err == EINVAL ? ": kernel older than 6.6 has no TCX links" : "")};
  }
  return {"bpf_tcx", true, "attached a sched_cls program to lo with a TCX link in a scratch netns"};
}

// The delay line's TAP: a non-persistent one in the scratch netns, gone
// with its fd.
Capability try_tun() {
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    return {"tun", false, "open /dev/net/tun failed (" + errno_name(err) + ")"};
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::strncpy(ifr.ifr_name, "nqprobe-tap%d", IFNAMSIZ - 1);
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    return {"tun", false, "TUNSETIFF (a TAP) failed (" + errno_name(err) + ")"};
  }
  return {"tun", true, "created a TAP device in a scratch netns"};
}

std::vector<Capability> all_missing(const std::string& why) {
  std::vector<Capability> out;
  for (const char* name :
       {"sch_netem", "sch_tbf", "sch_htb", "sch_clsact", "ifb", "bpf_tcx", "tun"})
    out.push_back({name, false, why});
  return out;
}

// Runs on a thread that owns a fresh network namespace.
std::vector<Capability> probe_network_here() {
  Result<net::NlSocket> sock = net::NlSocket::open_route();
  if (!sock.ok()) return all_missing("netlink: " + sock.error().message());
  if (Status st = net::set_link_up(*sock, "lo"); !st.ok()) return all_missing(st.error().message());
  Result<int> lo = net::link_index(*sock, "lo");
  if (!lo.ok()) return all_missing(lo.error().message());

  std::vector<Capability> out;
  for (const char* kind : {"netem", "tbf", "htb"}) out.push_back(try_root_qdisc(*sock, *lo, kind));
  out.push_back(try_clsact(*sock, *lo));
  out.push_back(try_ifb(*sock));
  out.push_back(try_tcx(*lo));
  out.push_back(try_tun());
  return out;
}

std::vector<Capability> probe_network_once() {
  std::vector<Capability> out;
  // unshare() moves only this thread into the new namespace; when it exits the
  // namespace and everything created in it (qdiscs, the ifb, the TCX link) go away.
  std::thread worker([&out] {
    if (::unshare(CLONE_NEWNET) < 0) {
      const int err = errno;
      out = all_missing("could not create a scratch network namespace to probe in (" +
                        errno_name(err) + ")");
      return;
    }
    out = probe_network_here();
  });
  worker.join();
  return out;
}

Capability prog_type(const char* name, bpf_prog_type type) {
  errno = 0;
  const int rc = libbpf_probe_bpf_prog_type(type, nullptr);
  const int err = errno;
  if (rc == 1) return {name, true, "libbpf_probe_bpf_prog_type: supported"};
  if (rc == 0)
    return {name, false,
            "libbpf_probe_bpf_prog_type: not supported" +
                (err != 0 ? " (loading failed with " + errno_name(err) + ")" : std::string())};
  return {name, false, "libbpf_probe_bpf_prog_type failed (" + errno_name(-rc) + ")"};
}

Capability bpf_lsm(const Capability& lsm_prog) {
  const std::string path = "/sys/kernel/security/lsm";
  std::string list;
  std::string list_problem;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    list_problem = "cannot read " + path + " (" + errno_name(err) + "; is securityfs mounted?)";
  } else {
    char buf[512];
    const ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
    const int err = errno;
    if (n < 0) list_problem = "read " + path + " (" + errno_name(err) + ")";
    if (n > 0) list.assign(buf, static_cast<size_t>(n));
  }
  bool listed = false;
  if (list_problem.empty()) {
    // Comma-separated: "lockdown,capability,landlock,yama,apparmor,bpf".
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find_first_of(",\n", start);
      if (end == std::string::npos) end = list.size();
      if (list.compare(start, end - start, "bpf") == 0) listed = true;
      start = end + 1;
    }
    if (!listed)
      list_problem = "\"bpf\" is not an active LSM (" + path + ": " +
                     list.substr(0, list.find('\n')) + "; boot with lsm=...,bpf)";
  }
  std::vector<std::string> missing;
  if (!lsm_prog.available) missing.push_back("lsm programs: " + lsm_prog.detail);
  if (!list_problem.empty()) missing.push_back(list_problem);
  if (missing.empty()) return {"bpf_lsm", true, "lsm programs load and \"bpf\" is an active LSM"};
  std::string detail = missing.front();
  if (missing.size() > 1) detail += "; " + missing[1];
  return {"bpf_lsm", false, detail};
}

}  // namespace

std::vector<Capability> probe_network() {
  std::vector<Capability> out = probe_network_once();
  auto netem = std::find_if(out.begin(), out.end(),
                            [](const Capability& c) { return c.name == "sch_netem"; });
  if (netem == out.end() || netem->available) return out;
  // A node with sch_netem on disk but not loaded gets netem rather than the
  // delay line. Only a file on a mounted module tree is tried: one syscall.
  ModuleLoad load = load_kernel_module("sch_netem");
  if (load.loaded) {
    out = probe_network_once();
    for (Capability& c : out)
      if (c.name == "sch_netem") c.detail += " (" + load.detail + ")";
    return out;
  }
  netem->detail += "; not loadable: " + load.detail;
  return out;
}

std::vector<Capability> probe_bpf() {
  std::vector<Capability> out;
  out.push_back(prog_type("bpf_prog_sched_cls", BPF_PROG_TYPE_SCHED_CLS));
  out.push_back(prog_type("bpf_prog_cgroup_skb", BPF_PROG_TYPE_CGROUP_SKB));
  out.push_back(prog_type("bpf_prog_lsm", BPF_PROG_TYPE_LSM));
  out.push_back(bpf_lsm(out.back()));
  return out;
}

std::vector<Capability> probe_kernel() {
  std::vector<Capability> out = probe_network();
  for (auto* part : {&probe_bpf, &probe_cgroups})
    for (Capability& c : (*part)()) out.push_back(std::move(c));
  return out;
}

}  // namespace nq

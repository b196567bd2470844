// The capability probe against this machine's kernel (root).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netlink/route/qdisc/netem.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <thread>

#include "agent/caps/probe.h"
#include "agent/net/netlink.h"

namespace nq {
namespace {

using ::testing::HasSubstr;

const Capability* find(const std::vector<Capability>& caps, const std::string& name) {
  for (const auto& c : caps)
    if (c.name == name) return &c;
  return nullptr;
}

// Independent of the probe: a netem qdisc with a real delay on lo of a fresh
// namespace. Returns the libnl result (0 = it works).
int add_netem_in_fresh_netns() {
  int result = -NLE_FAILURE;
  std::thread worker([&] {
    if (::unshare(CLONE_NEWNET) < 0) return;
    Result<net::NlSocket> sock = net::NlSocket::open_route();
    if (!sock.ok()) return;
    net::QdiscPtr q(rtnl_qdisc_alloc());
    rtnl_tc_set_ifindex(TC_CAST(q.get()), 1);  // lo is ifindex 1 in every new netns
    rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_ROOT);
    rtnl_tc_set_handle(TC_CAST(q.get()), TC_HANDLE(1, 0));
    rtnl_tc_set_kind(TC_CAST(q.get()), "netem");
    rtnl_netem_set_delay(q.get(), 10000);  // 10 ms
    result = rtnl_qdisc_add(sock->get(), q.get(), NLM_F_CREATE);
  });
  worker.join();
  return result;
}

bool kernel_at_least(int major, int minor) {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  std::sscanf(u.release, "%d.%d", &ma, &mi);
  return ma > major || (ma == major && mi >= minor);
}

class CapsProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "probing qdiscs and BPF needs root";
  }
};

TEST_F(CapsProbe, ThisMachinesKernelFeatures) {
  const std::vector<Capability> all = probe_kernel();
  for (const Capability& c : all) {
    EXPECT_FALSE(c.detail.empty()) << c.name;
    RecordProperty(c.name, (c.available ? "yes: " : "no: ") + c.detail);
  }
  const Capabilities caps(all);
  for (const char* name : {"sch_tbf", "sch_htb", "sch_clsact", "ifb", "bpf_prog_sched_cls"})
    EXPECT_TRUE(caps.has(name)) << name << ": "
                                << (find(all, name) ? find(all, name)->detail : "absent");
  EXPECT_EQ(caps.has("bpf_tcx"), kernel_at_least(6, 6)) << find(all, "bpf_tcx")->detail;
  ASSERT_NE(find(all, "cgroup_v2"), nullptr);
}

TEST_F(CapsProbe, NetemMatchesWhatTheKernelReallyDoes) {
  const std::vector<Capability> all = probe_network();
  const Capability* netem = find(all, "sch_netem");
  ASSERT_NE(netem, nullptr);
  const int rc = add_netem_in_fresh_netns();
  EXPECT_EQ(netem->available, rc == 0) << netem->detail << " / direct add: " << nl_geterror(rc);
  if (!netem->available) {
    EXPECT_THAT(netem->detail, HasSubstr("sch_netem"));
  }
}

TEST_F(CapsProbe, BpfLsmIsExplainedWhenMissing) {
  const std::vector<Capability> all = probe_bpf();
  const Capability* lsm = find(all, "bpf_lsm");
  const Capability* prog = find(all, "bpf_prog_lsm");
  ASSERT_NE(lsm, nullptr);
  ASSERT_NE(prog, nullptr);
  if (!prog->available) {
    EXPECT_FALSE(lsm->available);
    EXPECT_THAT(lsm->detail, HasSubstr("lsm programs"));
  }
  if (!lsm->available) {
    EXPECT_FALSE(lsm->detail.empty());
  }
  EXPECT_TRUE(find(all, "bpf_prog_cgroup_skb")->available)
      << find(all, "bpf_prog_cgroup_skb")->detail;
}

TEST_F(CapsProbe, LeavesNothingBehindInTheCallersNamespace) {
  (void)probe_network();
  EXPECT_EQ(::if_nametoindex("nqprobe-ifb0"), 0u);
  // The caller's thread is still in its own namespace and can look at its lo.
  EXPECT_NE(::if_nametoindex("lo"), 0u);
}

}  // namespace
}  // namespace nq

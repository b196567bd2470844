#include "tests/support/kernel_state.h"

#include <bpf/bpf.h>
#include <net/if.h>

#include <algorithm>
#include <sstream>

namespace nq::testing {
namespace {

// Not in the 6.1 UAPI headers Debian 12 ships.
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;

// Programs on one TCX hook of `ifindex`, by name. Runs inside the netns.
Result<std::vector<std::string>> tcx_programs(int ifindex, int attach_type) {
  uint32_t ids[64] = {};
  uint32_t count = 64;
  uint32_t flags = 0;
  if (bpf_prog_query(ifindex, static_cast<bpf_attach_type>(attach_type), 0, &flags, ids, &count) <
      0) {
    // Kernels without TCX reject the attach type: nothing can be attached there.
    if (errno == EINVAL) return std::vector<std::string>{};
    return Error::from_errno(errno, "bpf_prog_query");
  }
  std::vector<std::string> names;
  for (uint32_t i = 0; i < count; ++i) {
    int fd = bpf_prog_get_fd_by_id(ids[i]);
    if (fd < 0) {
      names.push_back("id" + std::to_string(ids[i]));
      continue;
    }
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    std::string name = "id" + std::to_string(ids[i]);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) name = info.name;
    ::close(fd);
    names.push_back(name);
  }
  return names;
}

}  // namespace

Result<NetnsKernelState> capture_kernel_state(const Netns& netns) {
  NetnsKernelState state;
  NQ_ASSIGN_OR_RETURN(state.tc, capture_tc_state(netns));
  NQ_TRY(run_in_netns(netns, [&]() -> Status {
    for (const auto& dev : state.tc.devices) {
      const unsigned ifindex = if_nametoindex(dev.name.c_str());
      if (ifindex == 0) continue;  // gone meanwhile
      for (auto [type, hook] :
           {std::pair{kTcxIngress, "tcx_ingress"}, std::pair{kTcxEgress, "tcx_egress"}}) {
        NQ_ASSIGN_OR_RETURN(auto progs, tcx_programs(static_cast<int>(ifindex), type));
        for (const auto& p : progs) state.tcx.push_back(dev.name + " " + hook + " " + p);
      }
    }
    return ok();
  }));
  std::sort(state.tcx.begin(), state.tcx.end());
  return state;
}

std::string diff(const NetnsKernelState& before, const NetnsKernelState& after) {
  std::string out = diff(before.tc, after.tc);
  for (const auto& l : before.tcx)
    if (std::find(after.tcx.begin(), after.tcx.end(), l) == after.tcx.end()) out += "- " + l + "\n";
  for (const auto& l : after.tcx)
    if (std::find(before.tcx.begin(), before.tcx.end(), l) == before.tcx.end())
      out += "+ " + l + "\n";
  return out;
}

std::ostream& operator<<(std::ostream& os, const NetnsKernelState& state) {
  os << state.tc;
  for (const auto& l : state.tcx) os << l << "\n";
  return os;
}

}  // namespace nq::testing

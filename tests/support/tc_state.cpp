#include "tests/support/tc_state.h"

#include <linux/rtnetlink.h>
#include <netlink/route/link.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "agent/net/netlink.h"
#include "agent/net/tc_dump.h"

namespace nq::testing {
namespace {

std::string hex(const std::vector<uint8_t>& bytes) {
  std::string out;
  char b[3];
  for (uint8_t v : bytes) {
    std::snprintf(b, sizeof(b), "%02x", v);
    out += b;
  }
  return out;
}

const char* type_name(uint16_t type) {
  switch (type) {
    case RTM_NEWQDISC:
      return "qdisc";
    case RTM_NEWTCLASS:
      return "class";
    default:
      return "filter";
  }
}

}  // namespace

std::string TcObjectState::str() const {
  net::TcObject o;
  o.type = type == "qdisc" ? RTM_NEWQDISC : type == "class" ? RTM_NEWTCLASS : RTM_NEWTFILTER;
  o.handle = handle;
  o.parent = parent;
  o.info = info;
  o.kind = kind;
  return device + ": " + net::describe(o) + " [" + hex(attrs) + "]";
}

std::string TcState::str() const {
  std::string out;
  for (const DeviceState& d : devices)
    out += "device " + d.name + (d.kind.empty() ? "" : " (" + d.kind + ")") + "\n";
  for (const TcObjectState& o : objects) out += o.str() + "\n";
  return out;
}

std::vector<TcObjectState> TcState::on(const std::string& device) const {
  std::vector<TcObjectState> out;
  for (const TcObjectState& o : objects)
    if (o.device == device) out.push_back(o);
  return out;
}

std::string diff(const TcState& before, const TcState& after) {
  auto lines = [](const TcState& s) {
    std::multiset<std::string> out;
    for (const DeviceState& d : s.devices)
      out.insert("device " + d.name + (d.kind.empty() ? "" : " (" + d.kind + ")"));
    for (const TcObjectState& o : s.objects) out.insert(o.str());
    return out;
  };
  const auto a = lines(before);
  const auto b = lines(after);
  std::vector<std::string> gone, added;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(gone));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(added));
  std::string out;
  for (const auto& l : gone) out += "- " + l + "\n";
  for (const auto& l : added) out += "+ " + l + "\n";
  return out;
}

std::ostream& operator<<(std::ostream& os, const TcState& state) {
  return os << "\n" << state.str();
}

Result<TcState> capture_tc_state(const Netns& netns) {
  return run_in_netns(netns, []() -> Result<TcState> {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    nl_cache* raw = nullptr;
    if (int rc = rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &raw); rc < 0)
      return Error::from_netlink(rc, "dump links");
    net::CachePtr cache(raw);
    TcState state;
    std::vector<std::pair<int, std::string>> links;
    for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
         obj = nl_cache_get_next(obj)) {
      auto* link = reinterpret_cast<rtnl_link*>(obj);
      const char* kind = rtnl_link_get_type(link);
      state.devices.push_back({rtnl_link_get_name(link), kind ? kind : ""});
      links.emplace_back(rtnl_link_get_ifindex(link), rtnl_link_get_name(link));
    }
    for (const auto& [ifindex, name] : links) {
      NQ_ASSIGN_OR_RETURN(std::vector<net::TcObject> objects, net::dump_device(sock, ifindex));
      for (const net::TcObject& o : objects)
        state.objects.push_back(
            {name, type_name(o.type), o.kind, o.handle, o.parent, o.info, o.attrs});
    }
    std::sort(state.devices.begin(), state.devices.end());
    std::sort(state.objects.begin(), state.objects.end());
    return state;
  });
}

}  // namespace nq::testing

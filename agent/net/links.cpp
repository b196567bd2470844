#include "agent/net/links.h"

#include <linux/if.h>
#include <netlink/route/link/veth.h>
#include <sys/socket.h>

#include <thread>

namespace nq::net {
namespace {

Result<LinkPtr> get_link(NlSocket& sock, const std::string& name) {
  rtnl_link* raw = nullptr;
  if (int rc = rtnl_link_get_kernel(sock.get(), 0, name.c_str(), &raw); rc < 0) {
    if (rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND)
      return Error::not_found("network device " + name + " not found");
    return Error::from_netlink(rc, "get link " + name);
  }
  return LinkPtr(raw);
}

Status add_typed_link(NlSocket& sock, const std::string& name, const char* type) {
  LinkPtr link(rtnl_link_alloc());
  if (!link) return Error::from_errno(ENOMEM, "rtnl_link_alloc");
  rtnl_link_set_name(link.get(), name.c_str());
  if (int rc = rtnl_link_set_type(link.get(), type); rc < 0)
    return Error::from_netlink(rc, std::string("link type ") + type);
  if (int rc = rtnl_link_add(sock.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0)
    return Error::from_netlink(rc, std::string("create ") + type + " " + name);
  return ok();
}

}  // namespace

Result<int> link_index(NlSocket& sock, const std::string& name) {
  NQ_ASSIGN_OR_RETURN(LinkPtr link, get_link(sock, name));
  return rtnl_link_get_ifindex(link.get());
}

Status create_veth(NlSocket& sock, const std::string& name, const std::string& peer_name,
                   int peer_netns_fd) {
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) return Error::from_errno(ENOMEM, "rtnl_link_veth_alloc");
  rtnl_link_set_name(link.get(), name.c_str());
  rtnl_link* peer = rtnl_link_veth_get_peer(link.get());  // borrowed and referenced
  rtnl_link_set_name(peer, peer_name.c_str());
  if (peer_netns_fd >= 0) rtnl_link_set_ns_fd(peer, peer_netns_fd);
  rtnl_link_put(peer);
  if (int rc = rtnl_link_add(sock.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0)
    return Error::from_netlink(rc, "create veth " + name + " <-> " + peer_name);
  return ok();
}

Status create_ifb(NlSocket& sock, const std::string& name) {
  return add_typed_link(sock, name, "ifb");
}

Status create_bridge(NlSocket& sock, const std::string& name) {
  return add_typed_link(sock, name, "bridge");
}

Status delete_link(NlSocket& sock, const std::string& name) {
  LinkPtr link(rtnl_link_alloc());
  if (!link) return Error::from_errno(ENOMEM, "rtnl_link_alloc");
  rtnl_link_set_name(link.get(), name.c_str());
  int rc = rtnl_link_delete(sock.get(), link.get());
  if (rc < 0 && rc != -NLE_NODEV && rc != -NLE_OBJ_NOTFOUND)
    return Error::from_netlink(rc, "delete link " + name);
  return ok();
}

Status set_link_up(NlSocket& sock, const std::string& name) {
  NQ_ASSIGN_OR_RETURN(LinkPtr link, get_link(sock, name));
  LinkPtr change(rtnl_link_alloc());
  if (!change) return Error::from_errno(ENOMEM, "rtnl_link_alloc");
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int rc = rtnl_link_change(sock.get(), link.get(), change.get(), 0); rc < 0)
    return Error::from_netlink(rc, "set " + name + " up");
  return ok();
}

Status wait_link_running(NlSocket& sock, const std::string& name,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    NQ_ASSIGN_OR_RETURN(LinkPtr link, get_link(sock, name));
    if ((rtnl_link_get_flags(link.get()) & IFF_RUNNING) != 0) return ok();
    if (std::chrono::steady_clock::now() >= deadline)
      return Error::status(Code::kDeadlineExceeded, name + ": not running " +
                                                        std::to_string(timeout.count()) +
                                                        " ms after it was set up (no carrier?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

Status set_link_mtu(NlSocket& sock, const std::string& name, uint32_t mtu) {
  NQ_ASSIGN_OR_RETURN(LinkPtr link, get_link(sock, name));
  LinkPtr change(rtnl_link_alloc());
  if (!change) return Error::from_errno(ENOMEM, "rtnl_link_alloc");
  rtnl_link_set_mtu(change.get(), mtu);
  if (int rc = rtnl_link_change(sock.get(), link.get(), change.get(), 0); rc < 0)
    return Error::from_netlink(rc, "set mtu of " + name + " to " + std::to_string(mtu));
  return ok();
}

Status set_link_master(NlSocket& sock, const std::string& name, const std::string& master) {
  NQ_ASSIGN_OR_RETURN(LinkPtr link, get_link(sock, name));
  NQ_ASSIGN_OR_RETURN(int master_index, link_index(sock, master));
  LinkPtr change(rtnl_link_alloc());
  if (!change) return Error::from_errno(ENOMEM, "rtnl_link_alloc");
  rtnl_link_set_master(change.get(), master_index);
  if (int rc = rtnl_link_change(sock.get(), link.get(), change.get(), 0); rc < 0)
    return Error::from_netlink(rc, "enslave " + name + " to " + master);
  return ok();
}

Status add_address(NlSocket& sock, const std::string& name, const Cidr& address) {
  NQ_ASSIGN_OR_RETURN(int ifindex, link_index(sock, name));
  AddrPtr addr(rtnl_addr_alloc());
  if (!addr) return Error::from_errno(ENOMEM, "rtnl_addr_alloc");
  const size_t len = address.family == AF_INET ? 4 : 16;
  NlAddrPtr local(nl_addr_build(address.family, address.addr.data(), len));
  if (!local) return Error::from_errno(ENOMEM, "nl_addr_build");
  nl_addr_set_prefixlen(local.get(), address.prefix_len);
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  rtnl_addr_set_family(addr.get(), address.family);
  if (int rc = rtnl_addr_set_local(addr.get(), local.get()); rc < 0)
    return Error::from_netlink(rc, "address " + address.str());
  rtnl_addr_set_prefixlen(addr.get(), address.prefix_len);
  int rc = rtnl_addr_add(sock.get(), addr.get(), NLM_F_CREATE | NLM_F_REPLACE);
  if (rc < 0) return Error::from_netlink(rc, "add address " + address.str() + " to " + name);
  return ok();
}

}  // namespace nq::net

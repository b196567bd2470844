#include "agent/net/netlink.h"

namespace nq::net {

Result<NlSocket> NlSocket::open_route() {
  nl_sock* raw = nl_socket_alloc();
  if (raw == nullptr) return Error::from_errno(ENOMEM, "nl_socket_alloc");
  NlSocket sock(raw);
  if (int rc = nl_connect(raw, NETLINK_ROUTE); rc < 0)
    return Error::from_netlink(rc, "connect NETLINK_ROUTE");
  return sock;
}

}  // namespace nq::net

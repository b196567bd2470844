// Owners for libnl objects and a NETLINK_ROUTE socket bound to one namespace.
#pragma once

#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/class.h>
#include <netlink/route/classifier.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>

#include <memory>

#include "common/result.h"

namespace nq::net {

template <auto Free>
struct NlFree {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};

// libnl objects are reference counted: the *_put functions drop our reference.
using LinkPtr = std::unique_ptr<rtnl_link, NlFree<rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, NlFree<rtnl_addr_put>>;
using QdiscPtr = std::unique_ptr<rtnl_qdisc, NlFree<rtnl_qdisc_put>>;
using ClassPtr = std::unique_ptr<rtnl_class, NlFree<rtnl_class_put>>;
using ClsPtr = std::unique_ptr<rtnl_cls, NlFree<rtnl_cls_put>>;
using CachePtr = std::unique_ptr<nl_cache, NlFree<nl_cache_free>>;
using MsgPtr = std::unique_ptr<nl_msg, NlFree<nlmsg_free>>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlFree<nl_addr_put>>;

// A connected NETLINK_ROUTE socket. It operates in the network namespace of
// the thread that opened it, for its whole life (see run_in_netns()).
class NlSocket {
 public:
  static Result<NlSocket> open_route();

  nl_sock* get() const noexcept { return sock_.get(); }

 private:
  explicit NlSocket(nl_sock* s) : sock_(s) {}
  std::unique_ptr<nl_sock, NlFree<nl_socket_free>> sock_;
};

}  // namespace nq::net

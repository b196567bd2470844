#include "agent/delay/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "agent/net/netlink.h"
#include "common/file.h"

namespace nq::delay {
namespace {

// sizeof(struct virtio_net_hdr), the tun default: <linux/virtio_net.h>
// cannot be included from C++ (a member is named `class`).
constexpr int kVirtioNetHdrLen = 10;

// /proc/sys/net resolves to the namespace of the thread that opens it.
Status disable_ipv6(const std::string& name) {
  Status st = write_knob("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6", "1");
  // No such file: no IPv6 in this kernel or namespace, nothing to disable.
  if (!st.ok() && st.error().sys_errno() == ENOENT) return ok();
  return st;
}

Status configure_link(const std::string& name, const TapOptions& options) {
  NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
  rtnl_link* raw = nullptr;
  if (int rc = rtnl_link_get_kernel(sock.get(), 0, name.c_str(), &raw); rc < 0)
    return Error::from_netlink(rc, "get link " + name);
  net::LinkPtr link(raw);
  net::LinkPtr change(rtnl_link_alloc());
  if (!change) return Error::from_errno(ENOMEM, "rtnl_link_alloc");
  rtnl_link_set_flags(change.get(), IFF_UP);
  rtnl_link_set_txqlen(change.get(), options.txqueuelen);
  if (options.mtu) rtnl_link_set_mtu(change.get(), options.mtu);
  if (int rc = rtnl_link_change(sock.get(), link.get(), change.get(), 0); rc < 0)
    return Error::from_netlink(rc, "set " + name + " up");
  return ok();
}

}  // namespace

Result<TapDevice> TapDevice::create(const TapOptions& options) {
  if (options.name.empty() || options.name.size() >= IFNAMSIZ)
    return Error::invalid_argument("tap.name", "'" + options.name + "' is not a device name");
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open /dev/net/tun");
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (options.vnet_hdr) ifr.ifr_flags |= IFF_VNET_HDR;
  std::strncpy(ifr.ifr_name, options.name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0)
    return Error::from_errno(errno, "TUNSETIFF " + options.name);
  const std::string name(ifr.ifr_name);

  size_t vnet_len = 0;
  if (options.vnet_hdr) {
    // The default header size, stated: the engine relies on it.
    int len = kVirtioNetHdrLen;
    if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &len) < 0)
      return Error::from_errno(errno, "TUNSETVNETHDRSZ " + name);
    // What the engine accepts from the kernel: partial checksums and TCP
    // segmentation offload. Written back unchanged, the header tells the
    // kernel to finish both later (at the veth peer or never).
    const unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (::ioctl(fd.get(), TUNSETOFFLOAD, offloads) < 0)
      return Error::from_errno(errno, "TUNSETOFFLOAD " + name);
    vnet_len = kVirtioNetHdrLen;
  }
  NQ_TRY(disable_ipv6(name));
  NQ_TRY(configure_link(name, options));
  const unsigned ifindex = ::if_nametoindex(name.c_str());
  if (ifindex == 0) return Error::from_errno(errno, "if_nametoindex " + name);
  return TapDevice(std::move(fd), name, static_cast<int>(ifindex), vnet_len);
}

}  // namespace nq::delay

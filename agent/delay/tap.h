// The delay line's TAP device: frames the BPF program redirects into it are
// read from its fd, and frames written to the fd arrive on its ingress.
//
// Non-persistent: the device lives exactly as long as the fd, so a killed
// agent leaves no TAP behind. IPv6 is off on it before it goes up, or the
// kernel's own housekeeping on the device (router solicitations, MLD, DAD)
// would run through it; it has no address, so IPv4 sends nothing either.
#pragma once

#include <cstddef>
#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace nq::delay {

struct TapOptions {
  // A name or a pattern with %d, which the kernel completes ("nqdl%d").
  std::string name = "nqdl%d";
  // virtio-net headers and TSO/checksum offloads on the fd: TCP's GSO
  // super-packets pass the line whole instead of being segmented and
  // checksummed in software on the way in (the prototype measured 2.3 vs
  // 9-11 Gbit/s at 0 ms).
  bool vnet_hdr = true;
  // MTU to set (the pod interface's, so every frame it sends fits); 0 keeps
  // the default.
  unsigned mtu = 0;
  // Frames queued in the kernel for the engine to read before the TAP drops.
  unsigned txqueuelen = 4096;
};

class TapDevice {
 public:
  // Creates the device in the calling thread's network namespace (use
  // run_in_netns()), with IPv6 off and up. The fd is non-blocking.
  static Result<TapDevice> create(const TapOptions& options);

  int fd() const noexcept { return fd_.get(); }
  const std::string& name() const noexcept { return name_; }
  int ifindex() const noexcept { return ifindex_; }
  // Bytes of struct virtio_net_hdr before each frame on the fd (0: none).
  size_t vnet_hdr_len() const noexcept { return vnet_hdr_len_; }

 private:
  TapDevice(UniqueFd fd, std::string name, int ifindex, size_t vnet_hdr_len)
      : fd_(std::move(fd)),
        name_(std::move(name)),
        ifindex_(ifindex),
        vnet_hdr_len_(vnet_hdr_len) {}
  UniqueFd fd_;
  std::string name_;
  int ifindex_ = 0;
  size_t vnet_hdr_len_ = 0;
};

}  // namespace nq::delay

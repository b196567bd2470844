// Network namespaces: an owned handle plus a way to run code inside one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>

#include "common/fd.h"
#include "common/result.h"

namespace nq {

// Identity of a namespace while it lives: (st_dev, st_ino) of its nsfs inode.
struct NsId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator==(const NsId&) const = default;
};

class Netns {
 public:
  // Opens a netns by path (/run/netns/x, /proc/PID/ns/net); fails with
  // InvalidArgument when the path is not a network namespace.
  static Result<Netns> open(const std::string& path);
  // The namespace of the calling thread.
  static Result<Netns> current();

  int fd() const noexcept { return fd_.get(); }
  const NsId& id() const noexcept { return id_; }
  const std::string& path() const noexcept { return path_; }

 private:
  Netns(UniqueFd fd, NsId id, std::string path)
      : fd_(std::move(fd)), id_(id), path_(std::move(path)) {}
  UniqueFd fd_;
  NsId id_;
  std::string path_;
};

// Joins `netns_fd` on the calling thread (which must be a thread of our own).
Status enter_netns(int netns_fd);

// Runs `fn` on a fresh thread that has joined `netns`, and returns its result.
// Namespace membership is per thread, so the caller never changes namespace,
// and sockets that `fn` opens (netlink, ...) stay bound to `netns` afterwards.
// `fn` must return a Result<...>.
template <class F>
auto run_in_netns(const Netns& netns, F&& fn) -> std::invoke_result_t<F> {
  using R = std::invoke_result_t<F>;
  std::optional<R> out;
  std::thread worker([&] {
    if (Status st = enter_netns(netns.fd()); !st.ok()) {
      out.emplace(std::move(st).error().wrapped("entering netns " + netns.path()));
      return;
    }
    out.emplace(fn());
  });
  worker.join();
  return std::move(*out);
}

}  // namespace nq

namespace nq {

// Creates a new network namespace and pins it by bind-mounting it at `path`
// (iproute2's convention is /run/netns/NAME, which makes `ip netns exec NAME`
// work for debugging). Fails with AlreadyExists if `path` exists.
Status create_named_netns(const std::string& path);
// Unmounts and removes a pinned namespace; ok when it does not exist.
Status remove_named_netns(const std::string& path);

}  // namespace nq

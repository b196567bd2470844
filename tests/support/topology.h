// Throwaway network topologies for node tests: pinned namespaces joined by a
// veth pair, with a traffic server running inside. Everything is removed by
// the destructors, also when an assertion fails half way.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include "common/netns.h"
#include "common/traffic.h"

// Node tests need root; say so instead of failing.
#define NQ_REQUIRE_ROOT()                                                             \
  do {                                                                                \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (real namespaces and devices)"; \
  } while (0)

namespace nq::testing {

// Two namespaces "a" and "b", each with an "eth0" (a veth pair) and lo up:
// a = 10.77.0.1/24, b = 10.77.0.2/24. Being private to the test's namespaces,
// the addresses cannot clash with anything on the machine.
class NetnsPair {
 public:
  static Result<std::unique_ptr<NetnsPair>> create();
  ~NetnsPair();

  const std::string& path_a() const { return path_a_; }
  const std::string& path_b() const { return path_b_; }
  const Netns& a() const { return *a_; }
  const Netns& b() const { return *b_; }
  static constexpr const char* kIpA = "10.77.0.1";
  static constexpr const char* kIpB = "10.77.0.2";

 private:
  NetnsPair() = default;
  std::string path_a_, path_b_;
  std::unique_ptr<Netns> a_, b_;
};

// A traffic::Server on every address of `netns`, run on its own thread.
class ServerThread {
 public:
  static Result<std::unique_ptr<ServerThread>> start(const Netns& netns,
                                                     const traffic::Ports& ports = {});
  ~ServerThread();

 private:
  ServerThread() = default;
  std::unique_ptr<traffic::Server> server_;
  std::thread thread_;
};

}  // namespace nq::testing

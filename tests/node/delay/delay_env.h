// Shared set-up of the delay line's node tests and benchmark: two
// namespaces joined by a veth (a = the "pod", b = its peer with a traffic
// server), UDP echo probes from a, and a delay line held by a child
// process (nq-delayline-hold) that a test can kill -9 or stop.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/traffic.h"
#include "tests/support/topology.h"

namespace nq::testing {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

// Why the delay line cannot run here (no root, no /dev/net/tun, no TCX), or nothing.
std::optional<std::string> delay_line_missing();

// The probes and the echo server run under SCHED_FIFO (priority 2, above
// the engine's 1) when they can: they are the measuring instrument, and on
// a loaded 2-core machine a normal thread wakes up milliseconds late, which
// would be charged to the line.
class DelayEnv {
 public:
  // b also answers on kIpB2, a second address for "unmatched destination".
  static Result<std::unique_ptr<DelayEnv>> create();
  ~DelayEnv();

  const NetnsPair& pair() const { return *pair_; }
  const Netns& a() const { return pair_->a(); }
  const Netns& b() const { return pair_->b(); }
  static constexpr const char* kIpB2 = "10.77.0.3";

 private:
  DelayEnv() = default;
  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<traffic::Server> server_;
  std::thread server_thread_;
};

// `count` UDP echo probes from inside `from` to ip:7, one every `interval`
// (pipelined: they do not wait for each other), then `linger` for late ones.
Result<traffic::UdpProbeResult> udp_probes(const Netns& from, const std::string& ip, int count,
                                           nanoseconds interval, nanoseconds linger);
traffic::Summary rtt_ms(const traffic::UdpProbeResult& r);

// From `since` until a single probe from `from` comes back within `fast`;
// DeadlineExceeded after `limit`.
Result<nanoseconds> time_until_fast(const Netns& from, const std::string& ip,
                                    std::chrono::steady_clock::time_point since, nanoseconds fast,
                                    nanoseconds limit);

// The moments the machine did not run us. A SCHED_FIFO thread (priority 3,
// above the probes and the engine; best effort) sleeps 1 ms at a time and
// records every wake-up later than `threshold`. Under TCG the guest's clock
// is the host's: while the host, or the hypervisor under it (steal time),
// does not run the vCPU thread, every timer of the guest falls due late --
// netem's, the delay engine's and the probes' alike -- and a probe in flight
// then measures the emulator, not the engine. A vm-tier run on an otherwise
// idle machine saw the hypervisor take 3-7 % of the host's CPU time.
class StallWatch {
 public:
  explicit StallWatch(nanoseconds threshold = std::chrono::milliseconds(1));
  ~StallWatch();
  StallWatch(const StallWatch&) = delete;
  StallWatch& operator=(const StallWatch&) = delete;

  struct Stall {
    nanoseconds from, to;  // steady clock: when the watch was due, when it woke
  };
  std::vector<Stall> stalls() const;
  // The probes of `r` whose flight (sent .. answered) overlapped no stall.
  traffic::UdpProbeResult undisturbed(const traffic::UdpProbeResult& r) const;

 private:
  void run();
  const nanoseconds threshold_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Stall> stalls_;
  std::thread thread_;
};

// udp_probes() with a StallWatch over them: bounds on a delay are held to
// the undisturbed probes (a stall of the machine under the test -- this
// one's hypervisor once held it for 33 ms -- makes every probe in flight
// late by as much, whatever the engine does); loss and counts to all.
// Until at least `min_undisturbed` probes flew undisturbed, another round
// of `count` follows, kMaxProbeRounds in all: on a machine whose idle
// SCHED_FIFO thread wakes more than 1 ms late 38 times in 5 s, most 100 ms
// flights overlap a stall, and the figure then takes more probes instead
// of fewer.
constexpr int kMaxProbeRounds = 10;
struct WatchedProbes {
  traffic::UdpProbeResult all, undisturbed;
  std::vector<StallWatch::Stall> stalls;
  traffic::Summary undisturbed_ms() const;
  // "undisturbed 196 of 200 (2 stalls > 1 ms, longest 33.5 ms)"
  std::string describe() const;
};
Result<WatchedProbes> watched_udp_probes(const Netns& from, const std::string& ip, int count,
                                         nanoseconds interval, nanoseconds linger,
                                         int min_undisturbed = 0);

// Is there a device `name` in `ns`?
Result<bool> link_exists(const Netns& ns, const std::string& name);
// Programs attached through TCX to ifindex's egress (or ingress) inside ns.
Result<uint32_t> tcx_programs(const Netns& ns, const std::string& ifname, bool egress);

// nq-delayline-hold as a child process; SIGKILLed and reaped at the latest
// by the destructor.
class HeldLine {
 public:
  // args: the helper's options after --netns (e.g. {"--delay", "100ms"}).
  static Result<std::unique_ptr<HeldLine>> start(const std::string& netns_path,
                                                 const std::vector<std::string>& args);
  ~HeldLine();
  HeldLine(const HeldLine&) = delete;
  HeldLine& operator=(const HeldLine&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& tap_name() const { return tap_name_; }
  Status signal(int sig);
  // Sends SIGKILL and reaps.
  void kill();
  // Waits for the child to exit (after SIGTERM, say); its exit status.
  Result<int> wait();

 private:
  HeldLine() = default;
  pid_t pid_ = -1;
  std::string tap_name_;
};

}  // namespace nq::testing

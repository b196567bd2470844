// Whether a fault is in effect, seen from inside the client pod: the
// benchmark's proof that an Apply RPC returns only once the kernel state is in
// place (so its latency is the time to effect), and that Revert returns only
// once it is gone. The same checks are run on the peer tools' exec path.
#pragma once

#include <chrono>
#include <string>

#include "agent/net/netlink.h"
#include "bench/bench_sandbox.h"
#include "common/netns.h"
#include "common/result.h"

namespace nq::bench {

enum class FaultKind { kPartition, kBandwidth };
enum class Installer { kAgent, kExec };

enum class Effect { kActive, kGone, kPartial };
struct Observation {
  Effect effect = Effect::kGone;
  std::string detail;  // what was seen, for a failed check's message
};

class EffectProbe {
 public:
  // Opens a netlink socket inside the client's namespace (it stays bound to
  // it) and resolves `ifname` there.
  static Result<EffectProbe> open(const BenchPod& client, const BenchPod& server,
                                  const std::string& ifname,
                                  std::chrono::milliseconds connect_timeout);

  // partition: a TCP connect from client to server's echo port fails within
  // `connect_timeout` (active) or completes (gone) — the same for both
  // installers, since the agent's BPF drop and iptables' DROP both stop it.
  // bandwidth by the agent: its HTB root 4e51: is the root qdisc of the
  // interface and a tbf leaf hangs under it (active), or neither (gone).
  // bandwidth by tc: the root qdisc is a tbf (active), or no tbf is left (gone).
  Result<Observation> observe(FaultKind fault, Installer installer);

 private:
  EffectProbe(Netns netns, net::NlSocket sock, int ifindex, std::string server_ip,
              std::chrono::milliseconds connect_timeout)
      : netns_(std::move(netns)),
        sock_(std::move(sock)),
        ifindex_(ifindex),
        server_ip_(std::move(server_ip)),
        connect_timeout_(connect_timeout) {}
  Result<Observation> observe_partition();
  Result<Observation> observe_qdiscs(Installer installer);

  Netns netns_;
  net::NlSocket sock_;
  int ifindex_ = 0;
  std::string server_ip_;
  std::chrono::milliseconds connect_timeout_;
};

const char* effect_name(Effect e);

}  // namespace nq::bench

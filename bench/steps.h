// Where an Apply/Revert of the agent spends its time: the expensive steps it
// is made of, timed one by one in this process with the agent's own
// libraries (the same calls the agent makes), so the end-to-end RPC figures
// can be explained rather than guessed at.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "bench/report.h"
#include "common/netns.h"
#include "common/result.h"
#include "nodequake/v1/agent.grpc.pb.h"

namespace nq::bench {

struct StepOptions {
  int runs = 20;
  // The pod whose interface the BPF steps attach to (the agent must hold no
  // fault on it meanwhile, which is the case between benchmark runs).
  const Netns* netns = nullptr;
  std::string ifname = "eth0";
  // A fresh directory on the same filesystem as the agent's journal.
  std::filesystem::path journal_dir;
  nodequake::v1::Agent::Stub* stub = nullptr;
};

// gRPC round trip of a List RPC (no kernel work), one journal append with
// its fdatasync, loading the netfault BPF object (both programs through the
// verifier), attaching it (TCX links where the kernel has them, as the agent
// does) and detaching it again.
Result<std::vector<StepFigures>> measure_steps(const StepOptions& options);

}  // namespace nq::bench

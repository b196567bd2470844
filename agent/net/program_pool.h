// Netfault programs loaded ahead of need. Loading one means running the BPF
// verifier over it, tens of milliseconds of CPU; a background thread keeps
// spares ready so that an Apply only has to attach one.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "agent/net/netfault_bpf.h"

namespace nq::net {

class ProgramPool {
 public:
  // `spares` programs are kept loaded; 0 loads on demand only (no thread).
  ProgramPool(NetfaultLoadOptions options, size_t spares);
  ~ProgramPool();
  ProgramPool(const ProgramPool&) = delete;
  ProgramPool& operator=(const ProgramPool&) = delete;

  // A loaded, unattached program: a spare when one is ready, else loaded now.
  Result<NetfaultProgram> take();
  size_t ready() const;

 private:
  void run();

  NetfaultLoadOptions options_;
  size_t spares_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<NetfaultProgram> ready_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace nq::net

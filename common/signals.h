// The stop signals of the project's daemons and tools.
#pragma once

#include <pthread.h>
#include <signal.h>

namespace nq {

// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread it
// creates afterwards, and returns the set for a sigwait(): one thread takes
// the signal when the program is ready for it, with no handler and no global
// state. Call it first in main(), before any library starts a thread.
inline sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace nq

// nq-stressor: the CPU and memory load nodequake places in a container's
// cgroup. Started by the agent only (see control.h for the fds it expects):
//
//   nq-stressor cpu WORKERS      busy threads, each running the duty cycle the
//                                agent writes into the shared page
//   nq-stressor memory BYTES     anonymous memory, every page touched, held
//
// It does nothing before the agent's "go" byte arrives on the lifeline, and it
// exits as soon as the lifeline reports EOF/POLLHUP: the agent died or reverted.
// That makes it fail-safe by construction (PR_SET_PDEATHSIG is not used: it
// fires when the *thread* that forked exits, and the agent forks from gRPC
// threads that come and go).
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "agent/stress/control.h"

namespace {

using nq::stress::StressControl;
using nq::stress::StressorState;

// Length of one duty period. Short enough that a 100 ms CFS period sees many
// of them (so the load is smooth at the quota's granularity), long enough
// that the sleep/wake overhead stays well under 1 %.
constexpr int64_t kPeriodNs = 10'000'000;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void fail(StressControl* ctl, int err, const char* what) {
  if (ctl) {
    ctl->error.store(err);
    ctl->state.store(static_cast<uint32_t>(StressorState::kFailed));
  }
  std::fprintf(stderr, "nq-stressor: %s: %s\n", what, std::strerror(err));
  _exit(1);
}

// Blocks until the agent's "go"; exits when the agent went away instead.
void wait_for_go() {
  char go = 0;
  for (;;) {
    const ssize_t n = read(nq::stress::kLifelineFd, &go, 1);
    if (n == 1) return;
    if (n < 0 && errno == EINTR) continue;
    _exit(0);  // EOF: the agent died (or gave up) before letting us run
  }
}

// Returns when the lifeline's write end is closed.
void wait_for_hangup() {
  pollfd p{nq::stress::kLifelineFd, POLLIN, 0};
  for (;;) {
    const int rc = poll(&p, 1, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return;
    // A further byte is no command; drain it and keep waiting.
    char buf[16];
    if (read(nq::stress::kLifelineFd, buf, sizeof(buf)) <= 0) return;
  }
}

void* cpu_worker(void* arg) {
  auto* ctl = static_cast<StressControl*>(arg);
  int64_t start = now_ns();
  volatile uint64_t sink = 0;
  for (;;) {
    const uint32_t ppm = ctl->duty_ppm.load(std::memory_order_relaxed);
    const int64_t busy_until = start + kPeriodNs * ppm / nq::stress::kDutyScale;
    while (now_ns() < busy_until) {
      for (int i = 0; i < 1000; ++i) sink = sink + static_cast<uint64_t>(i);
    }
    ctl->periods.fetch_add(1, std::memory_order_relaxed);
    start += kPeriodNs;
    // After a stall (throttled by the quota, preempted) restart the period
    // grid instead of bursting to catch up: the loop in the agent wants a
    // load, not a debt.
    const int64_t now = now_ns();
    if (start < now - kPeriodNs) start = now;
    if (start > now) {
      timespec ts{static_cast<time_t>(start / 1'000'000'000),
                  static_cast<long>(start % 1'000'000'000)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
    }
  }
  return nullptr;
}

void run_cpu(StressControl* ctl, unsigned workers) {
  std::vector<pthread_t> threads(workers);
  for (unsigned i = 0; i < workers; ++i) {
    const int rc = pthread_create(&threads[i], nullptr, cpu_worker, ctl);
    if (rc != 0) fail(ctl, rc, "pthread_create");
  }
  ctl->state.store(static_cast<uint32_t>(StressorState::kRunning));
  wait_for_hangup();
  _exit(0);
}

void run_memory(StressControl* ctl, uint64_t bytes) {
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) fail(ctl, errno, "mmap");
  // No transparent huge pages: the increase in the cgroup's usage should be
  // what was asked for, not rounded to 2 MiB, and khugepaged must not move
  // the memory around while the fault holds it.
  (void)madvise(mem, bytes, MADV_NOHUGEPAGE);
  const long page = sysconf(_SC_PAGESIZE);
  auto* p = static_cast<volatile unsigned char*>(mem);
  for (uint64_t off = 0; off < bytes; off += static_cast<uint64_t>(page)) {
    // A non-zero write: a read would map the shared zero page and charge nothing.
    p[off] = 0x5a;
    if ((off & ((1u << 20) - 1)) == 0) ctl->touched_bytes.store(off, std::memory_order_relaxed);
  }
  ctl->touched_bytes.store(bytes);
  ctl->state.store(static_cast<uint32_t>(StressorState::kRunning));
  wait_for_hangup();
  _exit(0);
}

bool parse_u64(const char* s, uint64_t& out) {
  const std::string_view v(s);
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && end == v.data() + v.size();
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t n = 0;
  if (argc != 3 || !parse_u64(argv[2], n) || n == 0) {
    std::fprintf(stderr,
                 "usage: nq-stressor cpu WORKERS | nq-stressor memory BYTES\n"
                 "(started by nodequake-agent with its control page on fd 3 and the lifeline "
                 "on fd 4)\n");
    return 2;
  }
  void* page = mmap(nullptr, sizeof(StressControl), PROT_READ | PROT_WRITE, MAP_SHARED,
                    nq::stress::kControlFd, 0);
  if (page == MAP_FAILED) fail(nullptr, errno, "mmap control page (fd 3)");
  auto* ctl = static_cast<StressControl*>(page);
  if (ctl->magic != nq::stress::kControlMagic || ctl->version != nq::stress::kControlVersion)
    fail(nullptr, EPROTO, "control page");
  wait_for_go();
  const std::string_view mode(argv[1]);
  if (mode == "cpu" && n <= 1024) run_cpu(ctl, static_cast<unsigned>(n));
  if (mode == "memory") run_memory(ctl, n);
  fail(ctl, EINVAL, "mode");
}

#include "agent/delay/engine.h"

#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <vector>

#include "agent/delay/delay_queue.h"

namespace nq::delay {
namespace {

using std::chrono::nanoseconds;

enum Source : uint32_t { kTap, kRelease, kBeat, kWake };

// Large enough for a GSO super-packet (64 KiB) plus its virtio-net header:
// tun truncates a frame that does not fit the read silently.
constexpr size_t kReadBuffer = 256 * 1024;
// Frames read per wake-up before due frames get their turn again: a flood
// must not hold back releases (epoll is level-triggered, the rest waits).
constexpr int kReadBatch = 256;

nanoseconds monotonic() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return nanoseconds(int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec);
}

int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

timespec to_timespec(nanoseconds ns) {
  return timespec{static_cast<time_t>(ns.count() / 1'000'000'000),
                  static_cast<long>(ns.count() % 1'000'000'000)};
}

}  // namespace

DelayEngine::DelayEngine(int tap_fd, const EngineConfig& config, Beat beat)
    : tap_fd_(tap_fd), config_(config), beat_(std::move(beat)) {}

Result<std::unique_ptr<DelayEngine>> DelayEngine::start(int tap_fd, const EngineConfig& config,
                                                        Beat beat) {
  if (tap_fd < 0) return Error::invalid_argument("tap_fd", "not an open fd");
  if (config.limit == 0) return Error::invalid_argument("limit", "must be at least 1");
  if (config.heartbeat_period <= nanoseconds(0))
    return Error::invalid_argument("heartbeat_period", "must be positive");
  if (!beat) return Error::invalid_argument("beat", "a heartbeat sink is required");
  std::unique_ptr<DelayEngine> e(new DelayEngine(tap_fd, config, std::move(beat)));
  e->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!e->epoll_) return Error::from_errno(errno, "epoll_create1");
  e->release_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!e->release_timer_) return Error::from_errno(errno, "timerfd_create (release)");
  e->beat_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!e->beat_timer_) return Error::from_errno(errno, "timerfd_create (heartbeat)");
  e->wake_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!e->wake_) return Error::from_errno(errno, "eventfd");
  const std::pair<int, Source> sources[] = {{tap_fd, kTap},
                                            {e->release_timer_.get(), kRelease},
                                            {e->beat_timer_.get(), kBeat},
                                            {e->wake_.get(), kWake}};
  for (const auto& [fd, source] : sources) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = source;
    if (::epoll_ctl(e->epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0)
      return Error::from_errno(errno, "epoll_ctl ADD");
  }
  itimerspec beat_spec{};
  beat_spec.it_interval = to_timespec(config.heartbeat_period);
  beat_spec.it_value = beat_spec.it_interval;
  if (::timerfd_settime(e->beat_timer_.get(), 0, &beat_spec, nullptr) < 0)
    return Error::from_errno(errno, "arm the heartbeat timer");
  e->beat_(static_cast<uint64_t>(monotonic().count()));
  e->thread_ = std::thread([p = e.get()] { p->run(); });
  return e;
}

DelayEngine::~DelayEngine() {
  stop(false);
}

Status DelayEngine::drain_and_stop() {
  stop(true);
  return ok();
}

void DelayEngine::stop(bool drain) {
  if (!thread_.joinable()) return;
  drain_.store(drain);
  stopping_.store(true);
  const uint64_t one = 1;
  // An eventfd write only fails when the counter would overflow.
  (void)!::write(wake_.get(), &one, sizeof(one));
  thread_.join();
}

std::chrono::microseconds EngineStats::lateness_percentile(double p) const {
  uint64_t total = 0;
  for (uint64_t n : lateness) total += n;
  if (total == 0) return std::chrono::microseconds(0);
  uint64_t seen = 0;
  for (size_t i = 0; i < lateness.size(); ++i) {
    seen += lateness[i];
    if (double(seen) >= p / 100.0 * double(total))
      return std::chrono::microseconds(int64_t(1) << i);
  }
  return std::chrono::microseconds(int64_t(1) << lateness.size());
}

EngineStats DelayEngine::stats() const {
  EngineStats s;
  s.frames_in = frames_in_.load();
  s.frames_out = frames_out_.load();
  s.dropped_full = dropped_full_.load();
  s.write_errors = write_errors_.load();
  s.held = held_.load();
  s.cpu = nanoseconds(cpu_ns_.load());
  s.realtime = realtime_.load();
  for (size_t i = 0; i < s.lateness.size(); ++i) s.lateness[i] = lateness_[i].load();
  return s;
}

void DelayEngine::run() {
  // Timer slack is per thread: 1 ns makes the release timer fire on time
  // instead of up to 50 us late.
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  ::pthread_setname_np(::pthread_self(), "nq-delay");
  if (config_.realtime_priority > 0) {
    sched_param param{};
    param.sched_priority = config_.realtime_priority;
    realtime_.store(::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param) == 0);
  }
  std::mt19937 rng(config_.seed ? static_cast<std::mt19937::result_type>(config_.seed)
                                : std::random_device{}());
  DelaySampler sampler(config_.model);
  DelayQueue queue(config_.limit, config_.preserve_order);
  std::vector<uint8_t> buf(kReadBuffer);
  // The release timer's absolute expiry in ns; -1 while disarmed.
  int64_t armed = -1;

  const auto write_frame = [&](const Frame& f) {
    // tun writes do not block: the frame is received on the TAP at once.
    if (::write(tap_fd_, f.data(), f.size()) < 0)
      write_errors_.fetch_add(1, std::memory_order_relaxed);
    else
      frames_out_.fetch_add(1, std::memory_order_relaxed);
  };
  const auto drain_fd = [](int fd) {
    uint64_t v;
    (void)!::read(fd, &v, sizeof(v));
  };

  while (!stopping_.load()) {
    epoll_event events[4];
    const int n = ::epoll_wait(epoll_.get(), events, 4, -1);
    if (n < 0) continue;  // EINTR; nothing else can fail on a valid epoll fd
    bool readable = false;
    for (int i = 0; i < n; ++i) {
      switch (events[i].data.u32) {
        case kTap:
          readable = true;
          break;
        case kRelease:
          drain_fd(release_timer_.get());
          armed = -1;
          break;
        case kBeat:
          drain_fd(beat_timer_.get());
          beat_(static_cast<uint64_t>(monotonic().count()));
          cpu_ns_.store(thread_cpu_ns(), std::memory_order_relaxed);
          break;
        case kWake:
          drain_fd(wake_.get());
          break;
      }
    }
    if (stopping_.load()) break;
    for (int i = 0; readable && i < kReadBatch; ++i) {
      const ssize_t r = ::read(tap_fd_, buf.data(), buf.size());
      if (r <= 0) break;  // EAGAIN: all read
      frames_in_.fetch_add(1, std::memory_order_relaxed);
      const nanoseconds due = monotonic() + sampler.next(static_cast<uint32_t>(rng()));
      if (!queue.push(due, Frame(buf.begin(), buf.begin() + r)))
        dropped_full_.fetch_add(1, std::memory_order_relaxed);
    }
    const nanoseconds now = monotonic();
    while (true) {
      const auto due = queue.next_due();
      if (!due || *due > now) break;
      write_frame(*queue.pop());
      // Measured against the clock read before the writes: the cost of
      // writing a burst is not counted as lateness of its last frames.
      const int64_t late_us = (now - *due).count() / 1000;
      size_t bucket = 0;
      while (bucket + 1 < lateness_.size() && (int64_t(1) << bucket) <= late_us) ++bucket;
      lateness_[bucket].fetch_add(1, std::memory_order_relaxed);
    }
    const auto due = queue.next_due();
    const int64_t next = due ? due->count() : -1;
    if (next != armed) {
      itimerspec spec{};  // all zero disarms
      if (next >= 0) spec.it_value = to_timespec(nanoseconds(next));
      // A due time already past fires at once.
      if (::timerfd_settime(release_timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) == 0)
        armed = next;
    }
    held_.store(queue.size(), std::memory_order_relaxed);
  }
  if (drain_.load()) {
    while (auto f = queue.pop()) write_frame(*f);
  }
  held_.store(queue.size());
  cpu_ns_.store(thread_cpu_ns());
}

}  // namespace nq::delay

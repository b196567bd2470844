// nq-echo: the workload of sandbox pods. A thin main around
// nq::traffic::Server: TCP/UDP echo (7), sink (9), source (19) and HTTP
// (8080) answering the pod's name, until SIGTERM/SIGINT. With --busy it also
// keeps a share of one CPU busy, like a service under steady load.
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/signals.h"
#include "common/traffic.h"

namespace {

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Each 10 ms period: spin until this thread has had `percent` of it in CPU
// time, then sleep the rest of the period. Counting CPU time rather than wall
// time (what stress-ng --cpu-load does) keeps the share at or below `percent`
// however slow or contended the CPU is: in a TCG guest on a loaded host,
// stress-ng asked for 30 % measured anywhere from 15 % to 90 %.
void burn(int percent, const std::atomic<bool>& stop) {
  constexpr int64_t kPeriodNs = 10'000'000;
  const int64_t busy_ns = kPeriodNs * percent / 100;
  while (!stop.load(std::memory_order_relaxed)) {
    const int64_t until = clock_ns(CLOCK_THREAD_CPUTIME_ID) + busy_ns;
    while (clock_ns(CLOCK_THREAD_CPUTIME_ID) < until) {
    }
    const timespec rest{0, kPeriodNs - busy_ns};
    nanosleep(&rest, nullptr);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nq-echo: echo/sink/source/HTTP server for sandbox pods"};
  std::string name;
  if (const char* env = std::getenv("NQ_POD_NAME")) name = env;
  std::string bind = "0.0.0.0";
  nq::traffic::Ports ports;
  app.add_option("--name", name, "name the HTTP port answers with (default: $NQ_POD_NAME)");
  app.add_option("--bind", bind, "address to listen on")->capture_default_str();
  app.add_option("--echo-port", ports.echo, "TCP and UDP echo")->capture_default_str();
  app.add_option("--sink-port", ports.sink, "TCP sink")->capture_default_str();
  app.add_option("--source-port", ports.source, "TCP source")->capture_default_str();
  app.add_option("--http-port", ports.http, "HTTP")->capture_default_str();
  int busy = 0;
  app.add_option("--busy", busy, "also keep this percentage of one CPU busy (CPU time)")
      ->check(CLI::Range(0, 99))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    name = host;
  }

  // Signals are taken by a thread with sigwait (blocked everywhere else, also
  // in the server thread), so stopping needs no global state.
  const sigset_t set = nq::block_stop_signals();

  auto server = nq::traffic::Server::create(bind, ports, name);
  if (!server.ok()) {
    std::fprintf(stderr, "nq-echo: %s\n", server.error().message().c_str());
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    (*server)->stop();
  });
  std::atomic<bool> stop_burning{false};
  std::thread burner;
  if (busy > 0) burner = std::thread([&] { burn(busy, stop_burning); });
  std::fprintf(stderr, "nq-echo %s: serving on %s (echo %u, sink %u, source %u, http %u)\n",
               name.c_str(), bind.c_str(), ports.echo, ports.sink, ports.source, ports.http);
  nq::Status st = (*server)->run();
  // run() only returns on stop() or a loop failure; wake the waiter either way.
  if (!st.ok()) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  stop_burning = true;
  if (burner.joinable()) burner.join();
  if (!st.ok()) {
    std::fprintf(stderr, "nq-echo: %s\n", st.error().message().c_str());
    return 1;
  }
  return 0;
}

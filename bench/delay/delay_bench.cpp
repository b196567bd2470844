// nq-bench-delayline: what the eBPF + TAP delay line delivers on this node.
//   accuracy at 10 and 100 ms: mean, sigma and p99 error of UDP echo RTTs
//     (the unshaped RTT subtracted), pipelined probes;
//   TCP throughput (pod -> peer, the delayed direction) at 0 / 10 / 100 ms,
//     with and without virtio-net headers (GSO through the TAP);
//   the engine thread's CPU time per second of each run.
// (The throughput runs put the line on the peer's side, see throughput().)
// Runs in throwaway namespaces (tests/node/delay's DelayEnv); needs root.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "agent/delay/delay_line.h"
#include "common/file.h"
#include "tests/node/delay/delay_env.h"

namespace {

using namespace std::chrono_literals;
using nq::testing::DelayEnv;
using std::chrono::nanoseconds;

constexpr const char* kPeer = nq::testing::NetnsPair::kIpB;

struct Run {
  std::unique_ptr<nq::delay::DelayLine> line;
  std::chrono::steady_clock::time_point t0;
  nanoseconds cpu0{0};
};

// A line in `pod`'s namespace delaying what it sends to `peer`.
nq::Result<Run> start(const nq::Netns& pod, const std::string& peer_ip, nanoseconds delay,
                      bool vnet_hdr, uint32_t limit) {
  nq::delay::DelayLineSpec spec;
  spec.netem.delay = delay;
  spec.netem.limit = limit;
  auto peer = nq::parse_cidr(peer_ip + "/32");
  if (!peer.ok()) return std::move(peer).error();
  spec.scope.remote.push_back(*peer);
  NQ_ASSIGN_OR_RETURN(nq::delay::DelayLinePlan plan, nq::delay::plan_delay_line(spec, "bench"));
  nq::delay::DelayLineOptions options;
  options.vnet_hdr = vnet_hdr;
  Run run;
  NQ_ASSIGN_OR_RETURN(run.line, nq::delay::DelayLine::start(pod, plan, options));
  run.t0 = std::chrono::steady_clock::now();
  return run;
}

// Engine CPU as a percentage of one core since the run started.
double cpu_percent(const Run& run) {
  auto st = run.line->stats();
  if (!st.ok()) return NAN;
  const auto wall = std::chrono::steady_clock::now() - run.t0;
  return 100.0 * double(st->engine.cpu.count()) / double(wall.count());
}

int accuracy(const DelayEnv& env, int probes, double base_ms) {
  std::printf("\naccuracy: %d UDP echo probes every 2 ms, unshaped RTT %.3f ms subtracted\n",
              probes, base_ms);
  std::printf("%-8s %10s %10s %12s %12s %14s %9s %s\n", "delay", "mean", "sigma", "mean error",
              "p99 |error|", "engine late p99", "engine", "scheduling");
  for (nanoseconds delay : {10ms, 100ms}) {
    auto run = start(env.a(), kPeer, delay, true, 1000);
    if (!run.ok()) {
      std::fprintf(stderr, "start: %s\n", run.error().message().c_str());
      return 1;
    }
    auto r = nq::testing::udp_probes(env.a(), kPeer, probes, 2ms, delay + 200ms);
    if (!r.ok()) {
      std::fprintf(stderr, "probes: %s\n", r.error().message().c_str());
      return 1;
    }
    const double want = double(delay.count()) / 1e6;
    std::vector<double> errors;
    for (double rtt : nq::traffic::to_millis(r->rtts))
      errors.push_back(std::abs(rtt - base_ms - want));
    const auto s = nq::testing::rtt_ms(*r);
    const auto e = nq::traffic::summarize(errors);
    const double cpu = cpu_percent(*run);
    auto st = run->line->stats();
    const bool rt = st.ok() && st->engine.realtime;
    const long late = st.ok() ? long(st->engine.lateness_percentile(99).count()) : -1;
    std::printf("%-8s %8.3fms %8.3fms %10.3fms %10.3fms %11s%ldus %8.2f%% %s\n",
                (std::to_string(delay.count() / 1'000'000) + "ms").c_str(), s.mean - base_ms,
                s.stddev, s.mean - base_ms - want, e.p99, "< ", late, cpu,
                rt ? "SCHED_FIFO" : "normal");
  }
  return 0;
}

// The sender's TCP RetransSegs counter (/proc/net/snmp of b's namespace).
long long retransmits(const DelayEnv& env) {
  auto snmp = nq::run_in_netns(env.b(), [] { return nq::read_file("/proc/thread-self/net/snmp"); });
  if (!snmp.ok()) return -1;
  // Two "Tcp:" lines: field names, then values.
  const std::string& t = *snmp;
  const size_t names = t.find("Tcp:");
  const size_t values = t.find("Tcp:", names + 4);
  if (names == std::string::npos || values == std::string::npos) return -1;
  std::istringstream n(t.substr(names, t.find('\n', names) - names));
  std::istringstream v(t.substr(values, t.find('\n', values) - values));
  std::string name, value;
  while (n >> name && v >> value)
    if (name == "RetransSegs") return std::stoll(value);
  return -1;
}

int throughput(const DelayEnv& env, double seconds) {
  // The line is on b ("the pod", a server sending a response) towards a,
  // which downloads from b's source port: the sender's buffers autotune
  // (the upload probe caps its send buffer for shaped-rate tests).
  std::printf("\nTCP throughput, pod -> peer through the line (%.0f s each)\n", seconds);
  std::printf("%-8s %-10s %14s %9s\n", "delay", "TAP", "throughput", "engine");
  const auto upload = [&]() {
    return nq::run_in_netns(env.a(), [&] {
      return nq::traffic::tcp_download(
          kPeer, 19,
          std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(seconds)));
    });
  };
  auto base = upload();
  if (base.ok())
    std::printf("%-8s %-10s %10.2f Gbit/s\n", "no line", "-", base->bits_per_second() / 1e9);
  for (nanoseconds delay : {0ms, 10ms, 100ms}) {
    for (bool vnet : {true, false}) {
      // Enough room for a 100 ms window at several Gbit/s.
      auto run = start(env.b(), nq::testing::NetnsPair::kIpA, delay, vnet, 200000);
      if (!run.ok()) {
        std::fprintf(stderr, "start: %s\n", run.error().message().c_str());
        return 1;
      }
      const long long retrans0 = retransmits(env);
      auto t = upload();
      const long long retrans = retransmits(env) - retrans0;
      const double cpu = cpu_percent(*run);
      auto st = run->line->stats();
      if (!t.ok()) {
        std::fprintf(stderr, "upload: %s\n", t.error().message().c_str());
        return 1;
      }
      std::printf(
          "%-8s %-10s %10.2f Gbit/s %8.1f%%  (frames %llu, over limit %llu, write errors %llu, "
          "retransmits %lld)\n",
          (std::to_string(delay.count() / 1'000'000) + "ms").c_str(), vnet ? "vnet_hdr" : "plain",
          t->bits_per_second() / 1e9, cpu,
          st.ok() ? (unsigned long long)st->engine.frames_in : 0ULL,
          st.ok() ? (unsigned long long)st->engine.dropped_full : 0ULL,
          st.ok() ? (unsigned long long)st->engine.write_errors : 0ULL, retrans);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Accuracy, throughput and CPU cost of the eBPF + TAP delay line");
  int probes = 1000;
  double seconds = 4;
  app.add_option("--probes", probes, "UDP probes per accuracy run");
  app.add_option("--seconds", seconds, "duration of each throughput run");
  CLI11_PARSE(app, argc, argv);
  if (auto why = nq::testing::delay_line_missing()) {
    std::fprintf(stderr, "nq-bench-delayline: %s\n", why->c_str());
    return 2;
  }
  auto env = DelayEnv::create();
  if (!env.ok()) {
    std::fprintf(stderr, "set-up: %s\n", env.error().message().c_str());
    return 1;
  }
  auto base = nq::testing::udp_probes((*env)->a(), kPeer, 200, 2ms, 100ms);
  if (!base.ok()) {
    std::fprintf(stderr, "baseline: %s\n", base.error().message().c_str());
    return 1;
  }
  const double base_ms = nq::testing::rtt_ms(*base).mean;
  if (int rc = accuracy(**env, probes, base_ms)) return rc;
  return throughput(**env, seconds);
}

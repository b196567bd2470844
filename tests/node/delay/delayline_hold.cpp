// nq-delayline-hold: holds one delay line until SIGTERM/SIGINT (graceful
// stop) or until it is killed, so the fail-safety tests and the benchmark
// can kill -9 or SIGSTOP a process that owns a line. Prints
// "ready <tap name>" on stdout once the line is attached.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "agent/delay/delay_line.h"
#include "common/cidr.h"
#include "common/duration.h"
#include "common/signals.h"

int main(int argc, char** argv) {
  CLI::App app("Holds an eBPF delay line until told to stop");
  std::string netns_path, ifname = "eth0", delay = "0s", jitter = "0s", dist = "uniform";
  std::vector<std::string> remote;
  std::string direction = "to";
  double loss = 0, correlation = 0, loss_correlation = 0, duplicate = 0, corrupt = 0;
  uint32_t limit = 1000;
  app.add_option("--netns", netns_path, "the pod's network namespace")->required();
  app.add_option("--interface", ifname, "the pod's interface");
  app.add_option("--delay", delay, "e.g. 100ms");
  app.add_option("--jitter", jitter, "e.g. 10ms");
  app.add_option("--distribution", dist, "uniform|normal|pareto|paretonormal");
  app.add_option("--correlation", correlation, "delay correlation, percent");
  app.add_option("--direction", direction, "to|from|both (each direction gets the full spec)");
  app.add_option("--loss", loss, "percent");
  app.add_option("--loss-correlation", loss_correlation, "percent");
  app.add_option("--duplicate", duplicate, "percent");
  app.add_option("--corrupt", corrupt, "percent");
  app.add_option("--limit", limit, "frames held");
  app.add_option("--remote", remote, "remote CIDRs (none: every peer)");
  CLI11_PARSE(app, argc, argv);

  const auto fail = [](const nq::Error& e) {
    std::fprintf(stderr, "nq-delayline-hold: %s\n", e.message().c_str());
    return 1;
  };
  nq::delay::DelayLineSpec spec;
  spec.ifname = ifname;
  auto d = nq::parse_duration(delay);
  if (!d.ok()) return fail(d.error());
  spec.netem.delay = *d;
  auto j = nq::parse_duration(jitter);
  if (!j.ok()) return fail(j.error());
  spec.netem.jitter = *j;
  if (dist == "normal") {
    spec.netem.distribution = nq::net::DelayDistribution::kNormal;
  } else if (dist == "pareto") {
    spec.netem.distribution = nq::net::DelayDistribution::kPareto;
  } else if (dist == "paretonormal") {
    spec.netem.distribution = nq::net::DelayDistribution::kParetoNormal;
  } else if (dist != "uniform") {
    return fail(nq::Error::invalid_argument("--distribution", "unknown: " + dist));
  }
  if (direction == "from") {
    spec.dirs = nq::net::kIngress;
  } else if (direction == "both") {
    spec.dirs = nq::net::kBoth;
  } else if (direction != "to") {
    return fail(nq::Error::invalid_argument("--direction", "unknown: " + direction));
  }
  spec.netem.delay_correlation = correlation;
  spec.netem.loss = loss;
  spec.netem.loss_correlation = loss_correlation;
  spec.netem.duplicate = duplicate;
  spec.netem.corrupt = corrupt;
  spec.netem.limit = limit;
  for (const std::string& r : remote) {
    auto c = nq::parse_cidr(r, "--remote");
    if (!c.ok()) return fail(c.error());
    spec.scope.remote.push_back(*c);
  }
  auto plan = nq::delay::plan_delay_line(spec, "");
  if (!plan.ok()) return fail(plan.error());
  auto netns = nq::Netns::open(netns_path);
  if (!netns.ok()) return fail(netns.error());

  // Blocked before any thread starts, so every thread inherits the mask and
  // sigwait() below is the only taker.
  const sigset_t set = nq::block_stop_signals();

  auto line = nq::delay::DelayLine::start(*netns, *plan);
  if (!line.ok()) return fail(line.error());
  std::printf("ready %s\n", (*line)->tap_name().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  nq::Status st = (*line)->stop();
  if (!st.ok()) return fail(st.error());
  return 0;
}

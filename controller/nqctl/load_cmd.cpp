// `nqctl sandbox load`: the request workload of load.h between two sandbox
// pods, its metrics served for Prometheus, a summary line at the end.
#include <prometheus/registry.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "agent/metrics/metrics.h"
#include "agent/runtime/local/registry.h"
#include "common/duration.h"
#include "common/file.h"
#include "common/netns.h"
#include "common/signals.h"
#include "controller/nqctl/command.h"
#include "controller/nqctl/load.h"

namespace nq::nqctl {
namespace {

struct LoadFlags {
  std::string state_dir;
  std::string from, to;
  double rate = 20;
  std::string timeout = "1s";
  std::string duration;
  int port = 8080;
  std::string path = "/";
  std::string metrics;
  bool join_cgroup = false;
};

int fail(const Error& e) {
  std::fprintf(stderr, "nqctl: %s\n", e.message().c_str());
  return 1;
}

Result<sandbox::PodRecord> pod(const sandbox::Registry& registry, const std::string& key,
                               const char* flag) {
  const size_t slash = key.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == key.size())
    return Error::invalid_argument(flag, "\"" + key + "\" is not NAMESPACE/NAME");
  return registry.get(key.substr(0, slash), key.substr(slash + 1));
}

// Moves this process into the source pod's first container's cgroups, as
// if the requests came from the container's own process: a CPU or memory
// fault on that container then slows them as it would slow the service. The
// pod cannot be removed while we are in it, so stop the load first.
Status join_cgroups(const sandbox::PodRecord& from) {
  if (from.containers.empty())
    return Error::invalid_argument("--join-cgroup", from.key() + " has no container");
  const std::string pid = std::to_string(::getpid());
  for (const std::string& dir : from.containers[0].cgroup_dirs)
    NQ_TRY(write_knob(std::filesystem::path(dir) / "cgroup.procs", pid));
  return ok();
}

int cmd_load(const LoadFlags& f) {
  const sandbox::Registry registry(f.state_dir);
  auto from = pod(registry, f.from, "--from");
  if (!from.ok()) return fail(from.error());
  auto to = pod(registry, f.to, "--to");
  if (!to.ok()) return fail(to.error());
  if (to->ips.empty())
    return fail(Error::invalid_argument("--to", to->key() + " has host networking: no pod IP"));

  LoadOptions o;
  o.ip = to->ips[0];
  if (f.port <= 0 || f.port > 65535)
    return fail(Error::invalid_argument("--port", "must be 1..65535"));
  o.port = static_cast<uint16_t>(f.port);
  o.path = f.path;
  o.rate = f.rate;
  auto timeout = parse_duration(f.timeout);
  if (!timeout.ok()) return fail(std::move(timeout).error().wrapped("--timeout"));
  o.timeout = *timeout;
  if (!f.duration.empty()) {
    auto d = parse_duration(f.duration);
    if (!d.ok()) return fail(std::move(d).error().wrapped("--duration"));
    o.duration = *d;
  }
  if (Status st = validate(o); !st.ok()) return fail(st.error());

  auto ns = from->host_network ? Netns::current() : Netns::open(from->netns_path);
  if (!ns.ok()) return fail(ns.error());
  if (f.join_cgroup)
    if (Status st = join_cgroups(*from); !st.ok()) return fail(st.error());

  // Blocked before any thread starts, so every thread inherits the mask and
  // SIGINT/SIGTERM arrive only through sigtimedwait() below.
  const sigset_t stop_signals = nq::block_stop_signals();

  auto prom_registry = std::make_shared<prometheus::Registry>();
  LoadMetrics metrics(*prom_registry, {from->namespace_name, from->name, to->key()});
  std::unique_ptr<MetricsEndpoint> endpoint;
  if (!f.metrics.empty()) {
    auto ep = MetricsEndpoint::start(f.metrics, prom_registry);
    if (!ep.ok()) return fail(ep.error());
    endpoint = std::move(*ep);
  }
  std::printf("load: %s -> %s (%s:%u%s), %.1f requests/s, timeout %s%s%s\n", from->key().c_str(),
              to->key().c_str(), o.ip.c_str(), unsigned(o.port), o.path.c_str(), o.rate,
              f.timeout.c_str(),
              endpoint ? (", metrics on port " + std::to_string(endpoint->port())).c_str() : "",
              f.join_cgroup ? ", in the source container's cgroups" : "");
  std::fflush(stdout);

  LoadGenerator gen(*ns, o, metrics);
  std::atomic<bool> finished{false};
  Result<LoadTotals> totals = LoadTotals{};
  std::thread runner([&] {
    totals = gen.run();
    finished = true;
  });
  const timespec poll{0, 200'000'000};
  while (!finished) {
    if (sigtimedwait(&stop_signals, nullptr, &poll) > 0) gen.stop();
  }
  runner.join();
  if (!totals.ok()) return fail(totals.error());
  std::printf("load: %s\n", summary_line(*totals).c_str());
  return 0;
}

}  // namespace

void add_sandbox_load_command(CLI::App& sandbox, Context& ctx) {
  auto f = std::make_shared<LoadFlags>();
  const char* env = std::getenv(sandbox::kStateDirEnv);
  f->state_dir = env && *env ? env : sandbox::kDefaultStateDir;
  CLI::App* load = sandbox.add_subcommand(
      "load", "HTTP requests from one pod's netns to another pod's nq-echo, with metrics");
  load->add_option("--from", f->from, "NAMESPACE/NAME of the pod the requests leave from")
      ->required();
  load->add_option("--to", f->to, "NAMESPACE/NAME of the pod that answers")->required();
  load->add_option("--rate", f->rate, "requests per second (open loop)")->capture_default_str();
  load->add_option("--timeout", f->timeout, "per request")->capture_default_str();
  load->add_option("--duration", f->duration, "stop after this long (default: until SIGINT/TERM)");
  load->add_option("--port", f->port, "the target's HTTP port")->capture_default_str();
  load->add_option("--path", f->path, "request path")->capture_default_str();
  load->add_option("--metrics", f->metrics, "serve metrics at ADDRESS:PORT (\"\" = none)");
  load->add_flag("--join-cgroup", f->join_cgroup,
                 "run in the source pod's first container's cgroups");
  load->add_option("--state-dir", f->state_dir,
                   "registry directory (env " + std::string(sandbox::kStateDirEnv) + ")")
      ->capture_default_str();
  load->callback([&ctx, f] { ctx.action = [f] { return cmd_load(*f); }; });
}

}  // namespace nq::nqctl

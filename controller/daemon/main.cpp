// nodequake-controller: the controller daemon. Thin: options, then the
// pieces built in dependency order, then signals. Everything it does is in
// the libraries (run, manager, service, access; fanout, killswitch, prom,
// audit, metrics) so that it can be tested without this process.
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "agent/metrics/metrics.h"
#include "agent/server/server.h"
#include "agent/server/tls.h"
#include "common/duration.h"
#include "common/signals.h"
#include "controller/daemon/manager.h"
#include "controller/daemon/service.h"
#include "controller/fanout/discovery.h"
#include "controller/killswitch/http.h"
#include "controller/prom/client.h"

namespace {

struct Config {
  std::vector<std::string> agents;
  std::string agent_service;
  std::string tls_cert, tls_key, tls_ca, agent_server_name;
  std::string socket = "/run/nodequake/controller.sock";
  std::string listen;
  std::string api_tls_cert, api_tls_key, api_tls_ca;
  std::string access_file = "/etc/nodequake/access.yaml";
  std::string prometheus_url;
  std::string state_dir = "/var/lib/nodequake-controller";
  std::string killswitch_listen = "127.0.0.1:8090";
  std::string killswitch_token_file = "/etc/nodequake/killswitch-token";
  std::string metrics_address = "127.0.0.1:9465";
  std::string lease = "30s", abort_interval = "5s", recovery_timeout = "5m", recovery_poll = "1s";
  std::string shutdown_timeout = "20s";
  double max_blast_radius = 50;
  std::string log_level = "info";
};

int fail(const nq::Error& e, const char* what) {
  spdlog::critical("{}: {}", what, e.message());
  return 1;
}

template <class D>
nq::Result<D> option_duration(const std::string& text, const char* option) {
  auto d = nq::parse_duration(text);
  if (!d.ok()) return std::move(d).error().wrapped(option);
  return std::chrono::duration_cast<D>(*d);
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals in every thread (gRPC's and civetweb's inherit
  // the mask) so SIGTERM/SIGINT reach only the sigwait() below.
  const sigset_t stop_signals = nq::block_stop_signals();

  Config cfg;
  CLI::App app{"nodequake-controller: runs experiments across the node agents"};
  app.add_option("--agent", cfg.agents,
                 "Agent address host:port, [v6]:port, unix:/path (repeatable)");
  app.add_option("--agent-service", cfg.agent_service,
                 "Headless Service name:port whose every address is an agent");
  app.add_option("--tls-cert", cfg.tls_cert, "Client certificate for the agents (PEM)");
  app.add_option("--tls-key", cfg.tls_key, "Its key (PEM)");
  app.add_option("--tls-ca", cfg.tls_ca, "CA of the agents' server certificates (PEM)");
  app.add_option("--agent-server-name", cfg.agent_server_name,
                 "Name verified in every agent's certificate (\"\" = the dialled host)");
  app.add_option("--socket", cfg.socket, "Unix socket of the API (\"\" = none)")
      ->capture_default_str();
  app.add_option("--listen", cfg.listen, "TCP address of the API, mTLS only (\"\" = none)");
  app.add_option("--api-tls-cert", cfg.api_tls_cert, "Server certificate of the API (PEM)");
  app.add_option("--api-tls-key", cfg.api_tls_key, "Its key (PEM)");
  app.add_option("--api-tls-ca", cfg.api_tls_ca, "CA of nqctl's client certificates (PEM)");
  app.add_option("--access-file", cfg.access_file, "Tokens, identities and their roles (YAML)")
      ->capture_default_str();
  app.add_option("--prometheus-url", cfg.prometheus_url,
                 "Prometheus HTTP API for abort rules and SLO checks (\"\" = none)");
  app.add_option("--state-dir", cfg.state_dir, "Audit log, kill-switch state, reports")
      ->capture_default_str();
  app.add_option("--killswitch-listen", cfg.killswitch_listen,
                 "Kill-switch HTTP endpoint (\"\" = none)")
      ->capture_default_str();
  app.add_option("--killswitch-token-file", cfg.killswitch_token_file,
                 "Bearer token of the kill switch")
      ->capture_default_str();
  app.add_option("--metrics-address", cfg.metrics_address, "Prometheus endpoint (\"\" = none)")
      ->capture_default_str();
  app.add_option("--lease", cfg.lease, "Lease of every injection; renewed every third of it")
      ->capture_default_str();
  app.add_option("--abort-interval", cfg.abort_interval, "How often abort rules are evaluated")
      ->capture_default_str();
  app.add_option("--recovery-timeout", cfg.recovery_timeout,
                 "Longest wait for the SLOs after a revert")
      ->capture_default_str();
  app.add_option("--recovery-poll", cfg.recovery_poll, "SLO poll interval while recovering")
      ->capture_default_str();
  app.add_option("--shutdown-timeout", cfg.shutdown_timeout,
                 "Longest SIGTERM shutdown (reverting every running experiment); past it the "
                 "process exits 2 and the leases revert the rest")
      ->capture_default_str();
  app.add_option("--max-blast-radius", cfg.max_blast_radius,
                 "Percent of the eligible pods an experiment may choose without --force")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  app.add_option("--log-level", cfg.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_default_logger(spdlog::stderr_logger_mt("nodequake-controller"));
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));

  // gRPC reads its TLS configuration once per process: before any channel.
  if (nq::Status st = nq::pin_grpc_tls13(); !st.ok()) return fail(st.error(), "tls");

  nq::controller::RunOptions ropts;
  std::chrono::milliseconds shutdown_timeout{};
  {
    auto st =
        option_duration<std::chrono::milliseconds>(cfg.shutdown_timeout, "--shutdown-timeout");
    if (!st.ok()) return fail(st.error(), "options");
    shutdown_timeout = *st;
    auto lease = option_duration<std::chrono::seconds>(cfg.lease, "--lease");
    auto interval =
        option_duration<std::chrono::milliseconds>(cfg.abort_interval, "--abort-interval");
    auto timeout =
        option_duration<std::chrono::milliseconds>(cfg.recovery_timeout, "--recovery-timeout");
    auto poll = option_duration<std::chrono::milliseconds>(cfg.recovery_poll, "--recovery-poll");
    for (const auto* r : {&interval, &timeout, &poll})
      if (!r->ok()) return fail(r->error(), "options");
    if (!lease.ok()) return fail(lease.error(), "options");
    if (lease->count() < 3)
      return fail(nq::Error::invalid_argument("--lease", "at least 3s"), "options");
    ropts.lease = *lease;
    ropts.abort_interval = *interval;
    ropts.recovery = {*poll, *timeout};
    ropts.ceiling.max_percent = cfg.max_blast_radius;
  }
  const std::filesystem::path state_dir = cfg.state_dir;
  std::error_code ec;
  std::filesystem::create_directories(state_dir / "reports", ec);
  if (ec) return fail(nq::Error(ec, "create " + (state_dir / "reports").string()), "state dir");
  ropts.report_dir = state_dir / "reports";

  auto audit = nq::audit::AuditLog::open(state_dir / "audit.log");
  if (!audit.ok()) return fail(audit.error(), "audit");
  auto policy = nq::controller::load_access_policy(cfg.access_file);
  if (!policy.ok()) return fail(policy.error(), "--access-file");

  nq::fanout::DiscoveryOptions dopts{cfg.agents, cfg.agent_service};
  nq::fanout::SystemResolver resolver;
  auto discover = [&]() { return nq::fanout::discover(dopts, resolver); };
  if (auto first = discover(); !first.ok()) return fail(first.error(), "agents");
  nq::fanout::AgentPool pool({cfg.tls_cert, cfg.tls_key, cfg.tls_ca, cfg.agent_server_name});
  nq::fanout::FanOut fanout(pool, {});
  nq::fanout::LeaseRenewer renewer(fanout, [&]() -> std::vector<std::string> {
    auto agents = discover();
    if (!agents.ok()) {
      spdlog::warn("lease renewal: {}", agents.error().message());
      return {};
    }
    return *agents;
  });
  renewer.start();

  std::unique_ptr<nq::prom::PromClient> prom;
  if (!cfg.prometheus_url.empty())
    prom = std::make_unique<nq::prom::PromClient>(nq::prom::ClientOptions{cfg.prometheus_url});

  auto registry = std::make_shared<prometheus::Registry>();
  nq::controller::ControllerMetrics metrics(registry);
  std::unique_ptr<nq::MetricsEndpoint> endpoint;
  if (!cfg.metrics_address.empty()) {
    auto ep = nq::MetricsEndpoint::start(cfg.metrics_address, registry);
    if (!ep.ok()) return fail(ep.error(), "metrics");
    endpoint = std::move(*ep);
  }

  auto store = nq::controller::ExperimentStore::open(state_dir / "experiments");
  if (!store.ok()) return fail(store.error(), "experiment records");
  nq::controller::RunDeps deps{&fanout, discover, &renewer, prom.get(), &*audit, &metrics, &*store};
  nq::controller::ExperimentManager manager(deps, ropts);
  {
    // Before the API serves: what an earlier incarnation left is reverted
    // before anything new may start.
    auto rec = manager.recover();
    for (const auto& e : rec.problems) spdlog::error("experiment records: {}", e.message());
    for (const auto& f : rec.failures) spdlog::warn("revert at start: {}", f);
    spdlog::info("experiment records: {} loaded, {} interrupted, {} revert(s) sent at start",
                 rec.loaded, rec.interrupted, rec.reverted + rec.failures.size());
  }

  nq::killswitch::FanOutBackend agents_backend(fanout, discover);
  nq::controller::KillSwitchBackend ks_backend(manager, agents_backend, &metrics);
  nq::SystemClock clock;
  auto ks =
      nq::killswitch::KillSwitch::open(state_dir / "killswitch.json", ks_backend, &*audit, clock);
  if (!ks.ok()) return fail(ks.error(), "kill switch");
  nq::killswitch::KillSwitch& killswitch = **ks;
  manager.set_admission([&killswitch]() -> nq::Status {
    const auto st = killswitch.status();
    if (st.engaged)
      return nq::Error::failed_precondition("the kill switch is engaged (by " + st.actor +
                                            (st.reason.empty() ? "" : ": " + st.reason) +
                                            "); no experiment may start until it is released");
    return nq::ok();
  });
  metrics.set_killswitch(killswitch.engaged());
  if (killswitch.engaged()) {
    // Engaged before a restart: agents that came back (or were unreachable
    // then) must be told again.
    const auto st = killswitch.status();
    spdlog::warn("kill switch engaged since before this start (by {}): re-engaging", st.actor);
    auto r = killswitch.engage(st.actor, st.reason);
    if (!r.ok()) spdlog::error("re-engaging the kill switch: {}", r.error().message());
  }

  std::unique_ptr<nq::killswitch::HttpServer> http;
  if (!cfg.killswitch_listen.empty()) {
    auto h = nq::killswitch::HttpServer::start(
        {cfg.killswitch_listen, cfg.killswitch_token_file, "killswitch-token", 4}, killswitch);
    if (!h.ok()) return fail(h.error(), "kill switch endpoint");
    http = std::move(*h);
  }

  nq::controller::ControllerService service(manager, std::move(*policy), audit->path());
  nq::ServerOptions sopts;
  sopts.unix_socket_path = cfg.socket;
  sopts.tcp_address = cfg.listen;
  sopts.tls_cert_file = cfg.api_tls_cert;
  sopts.tls_key_file = cfg.api_tls_key;
  sopts.tls_ca_file = cfg.api_tls_ca;
  auto server = nq::GrpcServer::start(sopts, {&service});
  if (!server.ok()) return fail(server.error(), "api");

  spdlog::info("nodequake-controller: api {}{}{}, kill switch {}, metrics {}, prometheus {}",
               cfg.socket, cfg.listen.empty() ? "" : ", mTLS ", cfg.listen,
               http ? "127.0.0.1:" + std::to_string(http->port()) : std::string("off"),
               endpoint ? std::to_string(endpoint->port()) : std::string("off"),
               cfg.prometheus_url.empty() ? "none" : cfg.prometheus_url);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  const auto stop_started = std::chrono::steady_clock::now();
  spdlog::info("signal {}: reverting every running experiment", sig);
  // The graceful part is bounded: every revert has its own deadline, but a
  // Kubernetes grace period is not ours to overrun. Past the bound (or at a
  // second signal) the process leaves at once and the leases revert what is
  // left on the agents within one lease.
  std::atomic<bool> stopped{false};
  std::thread watchdog([&] {
    const auto deadline = stop_started + shutdown_timeout;
    while (!stopped) {
      timespec tick{0, 100 * 1000 * 1000};
      int again = sigtimedwait(&stop_signals, nullptr, &tick);
      if (again > 0 || std::chrono::steady_clock::now() >= deadline) {
        spdlog::critical(
            "{}: exiting now; the agents revert the rest when the leases run out",
            again > 0 ? "second signal" : "shutdown took longer than --shutdown-timeout");
        std::_Exit(2);
      }
    }
  });
  // No new calls; then every run stops, reverts on its own thread and
  // records its final status (Reverted).
  auto since_signal = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 stop_started)
        .count();
  };
  (*server)->shutdown(std::chrono::seconds(2));
  spdlog::info("shutdown: api stopped at {} ms", since_signal());
  manager.shutdown();
  spdlog::info("shutdown: experiments reverted and recorded at {} ms", since_signal());
  renewer.stop();
  // The endpoints' own teardown, inside the bound. It is where the time
  // goes: civetweb's mg_stop() waits for its master thread's poll quantum
  // (2 s, a compile-time constant), so the two HTTP servers stop side by side.
  server->reset();
  std::thread stop_http([&] { http.reset(); });
  endpoint.reset();
  stop_http.join();
  spdlog::info("shutdown: endpoints closed at {} ms", since_signal());
  stopped = true;
  watchdog.join();
  spdlog::info("shutdown complete in {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - stop_started)
                                                 .count());
  return 0;
}

// nodequake-agent: the per-node agent. Options, then wiring; the work is in
// the libraries. Signals are taken synchronously on the main thread, so
// shutdown runs in order: stop serving, stop expiry, revert everything.
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "agent/caps/probe.h"
#include "agent/core/manager.h"
#include "agent/disk/disk_faults.h"
#include "agent/io/io_errno_faults.h"
#include "agent/journal/journal.h"
#include "agent/metrics/metrics.h"
#include "agent/net/network_faults.h"
#include "agent/process/process_faults.h"
#include "agent/runtime/cgroup.h"
#include "agent/runtime/cri/cri_runtime.h"
#include "agent/runtime/local/local_runtime.h"
#include "agent/server/agent_service.h"
#include "agent/server/server.h"
#include "agent/server/tls.h"
#include "agent/stress/stress_backend.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/signals.h"

#ifndef NQ_VERSION
#define NQ_VERSION "dev"
#endif

namespace {

struct Config {
  std::string node_name;
  std::string state_dir = "/var/lib/nodequake";
  std::string socket = "/run/nodequake/agent.sock";
  std::string listen;
  std::string tls_cert, tls_key, tls_ca;
  std::vector<std::string> controller_identities = {"nodequake-controller"};
  std::string metrics_address = "0.0.0.0:9464";
  std::string runtime = "local";
  std::string sandbox_dir = "/run/nodequake/sandbox";
  std::string cri_socket;  // "" = auto-detect
  std::string host_root = "/";
  std::vector<std::string> protected_namespaces;
  std::string opt_in_label = "chaos-ready=true";
  std::string max_ttl = "24h";
  std::string attach = "auto";
  std::string bpf_idle = "30s";
  std::string log_level = "info";
  std::string stressor;  // "" = nq-stressor next to this binary
};

std::string hostname() {
  if (const char* env = std::getenv("NODE_NAME"); env && *env) return env;
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) < 0) return "unknown";
  return buf;
}

std::string kernel_release() {
  struct utsname u {};
  if (::uname(&u) < 0) return "unknown";
  return u.release;
}

int fail(const nq::Error& e, const char* what) {
  spdlog::critical("{}: {}", what, e.message());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists (gRPC, probes): every thread inherits the mask,
  // so SIGTERM/SIGINT reach only the sigwait() below.
  const sigset_t stop_signals = nq::block_stop_signals();

  Config cfg;
  cfg.node_name = hostname();
  CLI::App app{"nodequake-agent: injects and reverts faults on this node's pods"};
  app.add_option("--node-name", cfg.node_name, "Node name reported to clients ($NODE_NAME)");
  app.add_option("--state-dir", cfg.state_dir, "Journal directory")->capture_default_str();
  app.add_option("--socket", cfg.socket, "Unix socket for local clients (\"\" = none)")
      ->capture_default_str();
  app.add_option("--listen", cfg.listen,
                 "TCP address for the controller, mTLS only (e.g. 0.0.0.0:9443)");
  app.add_option("--tls-cert", cfg.tls_cert, "Server certificate (PEM)");
  app.add_option("--tls-key", cfg.tls_key, "Server key (PEM)");
  app.add_option("--tls-ca", cfg.tls_ca, "CA that signs client certificates (PEM)");
  app.add_option("--controller-identity", cfg.controller_identities,
                 "Client certificate identity allowed to mutate over TCP (repeatable)")
      ->capture_default_str();
  app.add_option("--metrics-address", cfg.metrics_address, "Prometheus endpoint (\"\" = none)")
      ->capture_default_str();
  app.add_option("--runtime", cfg.runtime, "Where pods come from")
      ->check(CLI::IsMember({"local", "cri"}))
      ->capture_default_str();
  app.add_option("--sandbox-dir", cfg.sandbox_dir, "Registry of the local runtime's sandbox pods")
      ->capture_default_str();
  app.add_option("--cri-socket", cfg.cri_socket,
                 "CRI socket of the node's runtime (--runtime cri; default: the first of "
                 "containerd's, k3s' and CRI-O's well-known sockets that exists)");
  app.add_option("--host-root", cfg.host_root,
                 "Where the host's / is mounted (--runtime cri in a DaemonSet: /host); the "
                 "runtime's netns paths and socket are looked up under it, and of the cgroup "
                 "mounts we see, those under it are preferred")
      ->capture_default_str();
  app.add_option("--protected-namespace", cfg.protected_namespaces,
                 "Namespace never to inject into, in addition to kube-system, kube-public, "
                 "kube-node-lease and nodequake-system (repeatable)");
  app.add_option("--opt-in-label", cfg.opt_in_label, "Label a pod must carry to be a target")
      ->capture_default_str();
  app.add_option("--max-ttl", cfg.max_ttl, "Longest TTL an injection may ask for")
      ->capture_default_str();
  app.add_option("--attach", cfg.attach,
                 "BPF attachment: tcx (links, die with the agent), clsact "
                 "(tc filters, journaled), auto")
      ->check(CLI::IsMember({"auto", "tcx", "clsact"}))
      ->capture_default_str();
  app.add_option("--bpf-idle", cfg.bpf_idle,
                 "Keep an interface's (inert) BPF program this long after its last fault, so a "
                 "burst of injections attaches once; 0s detaches with the last revert")
      ->capture_default_str();
  app.add_option("--stressor", cfg.stressor,
                 "The nq-stressor binary for cpu/memory stress (default: next to the agent)");
  app.add_option("--log-level", cfg.log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // Logs go to stderr (the container runtime collects them); stdout stays quiet.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("nodequake-agent"));
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));

  // Before any thread exists, so that every thread sees pods' cgroup paths
  // as the host does (see join_cgroup_namespace_of).
  if (auto joined = nq::runtime::join_cgroup_namespace_of(1); !joined.ok()) {
    spdlog::warn(
        "cgroup namespace: {}; pods' cgroup paths will be relative to ours, so "
        "stress, process, disk and I/O faults may be refused",
        joined.error().message());
  } else if (*joined == nq::runtime::CgroupNamespace::kJoined) {
    spdlog::info("joined pid 1's cgroup namespace (ours was private)");
  }

  if (nq::Status st = nq::pin_grpc_tls13(); !st.ok()) return fail(st.error(), "tls");

  nq::core::ManagerOptions mopts;
  mopts.node_name = cfg.node_name;
  for (const auto& ns : cfg.protected_namespaces) mopts.safety.protected_namespaces.insert(ns);
  if (auto eq = cfg.opt_in_label.find('='); eq != std::string::npos) {
    mopts.safety.opt_in_label = cfg.opt_in_label.substr(0, eq);
    mopts.safety.opt_in_value = cfg.opt_in_label.substr(eq + 1);
  } else {
    spdlog::critical("--opt-in-label must be key=value, got \"{}\"", cfg.opt_in_label);
    return 2;
  }
  auto max_ttl = nq::parse_duration(cfg.max_ttl);
  if (!max_ttl.ok()) return fail(max_ttl.error(), "--max-ttl");
  mopts.limits.max_ttl = *max_ttl;

  // Capabilities: probed once, reported in Probe and as metrics.
  nq::Capabilities caps(nq::probe_kernel());
  auto registry = std::make_shared<prometheus::Registry>();
  nq::AgentMetrics metrics(registry);
  for (const auto& c : caps.all()) {
    metrics.set_capability(c.name, c.available);
    if (!c.available) spdlog::info("capability {} unavailable: {}", c.name, c.detail);
  }

  nq::net::NetworkFaultsOptions nopts;
  if (cfg.attach == "tcx" || (cfg.attach == "auto" && caps.has("bpf_tcx"))) {
    nopts.bpf.attach = nq::net::NetfaultLoadOptions::Attach::kTcx;
  } else {
    nopts.bpf.attach = nq::net::NetfaultLoadOptions::Attach::kLegacyTc;
  }
  auto idle = nq::parse_duration(cfg.bpf_idle);
  if (!idle.ok()) return fail(idle.error(), "--bpf-idle");
  nopts.idle_detach = std::chrono::duration_cast<std::chrono::milliseconds>(*idle);

  auto journal = nq::Journal::open(cfg.state_dir);
  if (!journal.ok()) return fail(journal.error(), "journal");

  // Where pods come from. The cri runtime asks the node's runtime for its
  // version now, so a wrong socket fails the start instead of every Apply.
  std::unique_ptr<nq::runtime::Runtime> runtime_owner;
  if (cfg.runtime == "cri") {
    nq::cri::CriRuntime::Options copts;
    copts.socket = cfg.cri_socket;
    copts.roots.host_root = cfg.host_root;
    auto cri = nq::cri::CriRuntime::connect(copts);
    if (!cri.ok()) return fail(cri.error(), "cri runtime");
    runtime_owner = std::move(*cri);
  } else {
    nq::sandbox::LocalRuntime::Options ropts;
    ropts.state_dir = cfg.sandbox_dir;
    runtime_owner = std::make_unique<nq::sandbox::LocalRuntime>(ropts);
  }
  nq::runtime::Runtime& runtime = *runtime_owner;

  nq::SystemClock clock;
  nq::core::InjectionManager* manager_ptr = nullptr;
  nq::net::NetworkFaults network(
      [&manager_ptr](const nodequake::v1::journal::Record& r) {
        return manager_ptr->append_record(r);
      },
      nopts);
  // CPU and memory stress. Without cgroupfs or the stressor the agent still
  // runs; those kinds are then refused as not enabled.
  std::unique_ptr<nq::stress::StressBackend> stress;
  {
    nq::stress::StressOptions sopts;
    sopts.stressor =
        cfg.stressor.empty()
            ? std::filesystem::read_symlink("/proc/self/exe").parent_path() / "nq-stressor"
            : std::filesystem::path(cfg.stressor);
    auto cgroups = nq::runtime::CgroupFs::discover(cfg.host_root);
    auto backend = cgroups.ok()
                       ? nq::stress::StressBackend::create(
                             std::move(*cgroups),
                             [&manager_ptr](const nodequake::v1::journal::Record& r) {
                               return manager_ptr->append_record(r);
                             },
                             sopts)
                       : nq::Result<std::unique_ptr<nq::stress::StressBackend>>(cgroups.error());
    if (backend.ok())
      stress = std::move(*backend);
    else
      spdlog::warn("cpu/memory stress disabled: {}", backend.error().message());
  }
  nq::core::InjectionManager manager(mopts, runtime, *journal, network, caps, &metrics, clock);
  manager_ptr = &manager;
  if (stress) manager.add_backend(*stress);

  // Process and disk faults act on the pods' cgroups; without a mounted
  // cgroup hierarchy they are simply not offered (Apply: kind unsupported).
  const auto journal_sink = [&manager_ptr](const nodequake::v1::journal::Record& r) {
    return manager_ptr->append_record(r);
  };
  std::unique_ptr<nq::process::ProcessFaults> process_faults;
  std::unique_ptr<nq::disk::DiskFaults> disk_faults;
  if (auto cgfs = nq::runtime::CgroupFs::discover(cfg.host_root); cgfs.ok()) {
    process_faults = std::make_unique<nq::process::ProcessFaults>(journal_sink, *cgfs);
    disk_faults = std::make_unique<nq::disk::DiskFaults>(journal_sink, *cgfs, &runtime);
    manager.add_backend(*process_faults);
    manager.add_backend(*disk_faults);
  } else {
    spdlog::warn("cgroupfs: {}; process and disk faults unavailable", cgfs.error().message());
  }

  // io_errno: a BPF LSM program scoped by the pods' cgroup v2 ids, loaded
  // on first use. Registered even where BPF LSM is missing, so an Apply is
  // refused naming the missing kernel feature (capability bpf_lsm).
  nq::io::IoErrnoFaults io_errno(
      [&manager_ptr](const nodequake::v1::journal::Record& r) {
        return manager_ptr->append_record(r);
      },
      nq::io::IoErrnoOptions::discover(cfg.host_root));
  manager.add_backend(io_errno);

  if (nq::Status st = manager.recover(); !st.ok()) {
    // Keep going: what could not be restored stays journaled for the next
    // start, and the operator sees it in the log; refusing to start would
    // also take away the kill switch.
    spdlog::error("start-up reconcile: {}", st.error().message());
  }

  nq::AgentService service(
      manager, caps,
      {cfg.node_name, kernel_release(), NQ_VERSION, runtime.name(), runtime.version()},
      cfg.controller_identities, &metrics);
  nq::ServerOptions sopts;
  sopts.unix_socket_path = cfg.socket;
  sopts.tcp_address = cfg.listen;
  sopts.tls_cert_file = cfg.tls_cert;
  sopts.tls_key_file = cfg.tls_key;
  sopts.tls_ca_file = cfg.tls_ca;
  sopts.mutating_identities = cfg.controller_identities;
  auto server = nq::GrpcServer::start(sopts, {&service});
  if (!server.ok()) return fail(server.error(), "grpc");

  std::unique_ptr<nq::MetricsEndpoint> endpoint;
  if (!cfg.metrics_address.empty()) {
    auto ep = nq::MetricsEndpoint::start(cfg.metrics_address, registry);
    if (!ep.ok()) return fail(ep.error(), "metrics");
    endpoint = std::move(*ep);
    endpoint->add(nq::stress_load_collector([&manager] { return manager.stress_loads(); }));
  }
  manager.start_expiry();
  spdlog::info("nodequake-agent {} on node {}: socket {}{}{}, runtime {}, attach {}", NQ_VERSION,
               cfg.node_name, cfg.socket, cfg.listen.empty() ? "" : ", mTLS ",
               cfg.listen.empty() ? "" : cfg.listen, runtime.name(),
               nopts.bpf.attach == nq::net::NetfaultLoadOptions::Attach::kTcx ? "tcx" : "clsact");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("signal {}: shutting down, reverting every injection", sig);
  (*server)->shutdown(std::chrono::seconds(2));
  manager.stop_expiry();
  manager.revert_everything_for_shutdown();
  spdlog::info("shutdown complete");
  return 0;
}

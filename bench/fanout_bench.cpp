// nq-bench-fanout: the controller's fan-out to N (default 100) real agent
// processes on loopback. Per run: (1) from submitting an experiment the way
// `nqctl apply` does (the controller's Submit RPC) until the controller
// reports it Running with every one of the N injections acknowledged, and
// (2) from engaging the kill switch over its HTTP endpoint until the answer
// says every agent has reverted; then release. Both are checked on the agents
// themselves (List) and in the kernel (sampled pods' qdiscs). Needs root.
// See docs/benchmarks.md, "Fan-out to 100 agents".
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "agent/runtime/local/registry.h"
#include "agent/server/tls.h"
#include "bench/bench_util.h"
#include "bench/effects.h"
#include "bench/fanout_cluster.h"
#include "bench/fanout_report.h"
#include "bench/proc_memory.h"
#include "bench/report.h"
#include "controller/killswitch/client.h"

extern char** environ;

namespace nq::bench {
namespace {

namespace fs = std::filesystem;
namespace v1 = nodequake::v1;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Options {
  int agents = 100;
  int runs = 20;
  int warmup = 1;
  int sample = 5;
  int setup_threads = 2;
  std::string submit = "api";
  std::string state_parent = "/var/tmp";
  std::string agent_binary, controller_binary, nqctl, nq_echo;
  std::string gen_certs = NQ_GEN_TEST_CERTS;
  bool json = false;
  std::string json_file;
};

void progress(const std::string& msg) {
  std::fprintf(stderr, "nq-bench-fanout: %s\n", msg.c_str());
}

double ms_since(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t).count();
}

// ------------------------------------------------------------ the runs

struct Bench {
  const Options& opts;
  const StopSignals& stop;
  FanoutCluster& cluster;
  std::string yaml;
  fs::path yaml_file;
  std::vector<std::pair<std::string, EffectProbe>> probes;  // pod key, probe
  FanoutReport& report;
};

std::unique_ptr<grpc::ClientContext> api_context(const Bench& b) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + 10s);
  ctx->AddMetadata("authorization", "Bearer " + b.cluster.operator_token());
  return ctx;
}

// `nqctl apply -f FILE --force`, as a user runs it; the experiment id.
Result<std::string> submit_with_nqctl(const Bench& b) {
  const fs::path out = b.yaml_file.parent_path() / "nqctl.out";
  std::vector<std::string> args = {b.opts.nqctl, "apply", "-f", b.yaml_file.string(), "--force"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store = {"NQ_CONTROLLER=unix://" + b.cluster.controller_socket(),
                                        "NQ_TOKEN_FILE=" + b.cluster.operator_token_file()};
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::from_errno(rc, "spawn " + b.opts.nqctl);
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return Error::from_errno(errno, "waitpid nqctl");
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  std::smatch m;
  const std::string s = text.str();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      !std::regex_search(s, m, std::regex("experiment (\\S+) submitted")))
    return Error::internal("nqctl apply failed: " + s);
  return m[1].str();
}

Result<std::string> submit(const Bench& b) {
  if (b.opts.submit == "nqctl") return submit_with_nqctl(b);
  v1::SubmitRequest req;
  req.set_yaml(b.yaml);
  req.set_file(b.yaml_file.string());
  req.set_force(true);  // mode all is above the default blast-radius ceiling
  v1::SubmitResponse resp;
  auto ctx = api_context(b);
  grpc::Status st = b.cluster.controller().Submit(ctx.get(), req, &resp);
  if (!st.ok()) return Error::internal("Submit: " + st.error_message());
  return resp.experiment().id();
}

Result<v1::ExperimentStatus> get(const Bench& b, const std::string& id) {
  v1::GetRequest req;
  req.set_id(id);
  v1::GetResponse resp;
  auto ctx = api_context(b);
  grpc::Status st = b.cluster.controller().Get(ctx.get(), req, &resp);
  if (!st.ok()) return Error::internal("Get " + id + ": " + st.error_message());
  if (resp.experiments_size() != 1) return Error::internal("Get " + id + ": no experiment");
  return resp.experiments(0);
}

bool ended(const v1::ExperimentStatus& s) {
  return s.state() != v1::EXPERIMENT_STATE_PENDING && s.state() != v1::EXPERIMENT_STATE_RUNNING;
}

// Every agent through its own Unix socket: `want` active injections of the
// experiment (0 or 1) and the kill switch as expected; sampled pods' qdiscs.
Status verify(Bench& b, const std::string& id, size_t want, bool engaged) {
  for (auto& n : b.cluster.nodes()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ListResponse list;
    grpc::Status st = n.agent->stub().List(&ctx, v1::ListRequest{}, &list);
    if (!st.ok()) return Error::internal("List on " + n.name + ": " + st.error_message());
    size_t mine = 0;
    for (const auto& inj : list.injections())
      if (inj.id().starts_with(id + "/")) ++mine;
    if (mine != want || static_cast<size_t>(list.injections_size()) != want)
      return Error::internal(n.name + " holds " + std::to_string(list.injections_size()) +
                             " injection(s) (" + std::to_string(mine) + " of " + id +
                             "), expected " + std::to_string(want));
    if (list.killswitch().engaged() != engaged)
      return Error::internal(n.name + ": kill switch " +
                             (engaged ? "not engaged" : "still engaged"));
    ++b.report.verifications;
  }
  for (auto& [key, probe] : b.probes) {
    NQ_ASSIGN_OR_RETURN(Observation seen, probe.observe(FaultKind::kBandwidth, Installer::kAgent));
    const Effect expected = want ? Effect::kActive : Effect::kGone;
    if (seen.effect != expected)
      return Error::internal("pod " + key + ": expected the bandwidth limit " +
                             effect_name(expected) + ", saw " + effect_name(seen.effect) + " (" +
                             seen.detail + ")");
    ++b.report.verifications;
  }
  return ok();
}

// Whether every agent holds no injection and has its kill switch engaged
// (one List each, through its Unix socket).
Result<bool> all_reverted(Bench& b) {
  for (auto& n : b.cluster.nodes()) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ListResponse list;
    grpc::Status st = n.agent->stub().List(&ctx, v1::ListRequest{}, &list);
    if (!st.ok()) return Error::internal("List on " + n.name + ": " + st.error_message());
    if (list.injections_size() > 0 || !list.killswitch().engaged()) return false;
  }
  return true;
}

Result<FanoutRun> one_run(Bench& b) {
  const size_t n = b.cluster.nodes().size();
  FanoutRun run;

  // (1) Submit until Running with all N injections acknowledged. The
  // controller sets `injections` once its Apply fan-out has returned with
  // every agent's answer, so polling Get (every 2 ms) sees it within ~2 ms.
  const auto t0 = SteadyClock::now();
  NQ_ASSIGN_OR_RETURN(const std::string id, submit(b));
  run.submit_ms = ms_since(t0);
  for (;;) {
    NQ_ASSIGN_OR_RETURN(v1::ExperimentStatus s, get(b, id));
    if (run.selecting_ms == 0 && s.phase().rfind("selecting", 0) != 0 &&
        s.state() != v1::EXPERIMENT_STATE_PENDING)
      run.selecting_ms = ms_since(t0);
    if (s.state() == v1::EXPERIMENT_STATE_RUNNING && s.injections() == n) break;
    if (ended(s)) return Error::internal("experiment " + id + " ended: " + s.message());
    if (ms_since(t0) > 60'000)
      return Error::status(Code::kDeadlineExceeded,
                           "experiment " + id + " not fully injected after 60 s (phase " +
                               s.phase() + ", " + std::to_string(s.injections()) + " injections)");
    std::this_thread::sleep_for(2ms);
  }
  run.apply_all_acked_ms = ms_since(t0);
  NQ_TRY(verify(b, id, 1, false));

  // (2) Kill switch: the answer carries every agent's outcome.
  const auto t1 = SteadyClock::now();
  NQ_ASSIGN_OR_RETURN(
      killswitch::HttpAnswer engaged,
      killswitch::request("POST", b.cluster.killswitch_url(), b.cluster.killswitch_token(),
                          R"({"reason": "nq-bench-fanout", "actor": "nq-bench-fanout"})", 30000));
  run.killswitch_ms = ms_since(t1);
  if (engaged.status != 200)
    return Error::internal("kill switch engage: HTTP " + std::to_string(engaged.status) + " " +
                           engaged.body);
  const auto j = nlohmann::json::parse(engaged.body, nullptr, false);
  if (j.is_discarded() || !j.contains("agents") || j["agents"].size() != n)
    return Error::internal("kill switch engage: not every agent in the answer: " + engaged.body);
  // An agent's `reverted` may be 0: the stopped run reverts its injections
  // itself at the same time, and whichever reaches the agent first wins. An
  // agent may also miss the controller's kill-switch deadline and go on
  // reverting: then the agents are polled until nothing is left.
  for (const auto& a : j["agents"]) {
    if (!a.value("ok", false)) {
      const std::string err = a.value("error", std::string());
      if (err.find("Deadline Exceeded") == std::string::npos)
        return Error::internal("kill switch on " + a.value("agent", std::string("?")) + ": " +
                               a.dump());
      run.agents_late += 1;
    }
    run.slowest_agent_ms = std::max(run.slowest_agent_ms, a.value("took_ms", 0.0));
  }
  run.killswitch_controller_ms = j.value("took_ms", 0.0);
  if (j.value("complete", false)) {
    run.all_reverted_ms = run.killswitch_ms;
  } else {
    for (;;) {
      NQ_ASSIGN_OR_RETURN(bool done, all_reverted(b));
      if (done) break;
      if (ms_since(t1) > 30'000)
        return Error::status(Code::kDeadlineExceeded,
                             "agents not reverted 30 s after the kill switch");
    }
    run.all_reverted_ms = ms_since(t1);
  }
  NQ_TRY(verify(b, id, 0, true));

  const auto t2 = SteadyClock::now();
  NQ_ASSIGN_OR_RETURN(
      killswitch::HttpAnswer released,
      killswitch::request("DELETE", b.cluster.killswitch_url(), b.cluster.killswitch_token(),
                          R"({"actor": "nq-bench-fanout"})", 30000));
  run.release_ms = ms_since(t2);
  if (released.status != 200)
    return Error::internal("kill switch release: HTTP " + std::to_string(released.status) + " " +
                           released.body);
  NQ_TRY(verify(b, id, 0, false));

  // The run itself was stopped by the kill switch: it must end as Reverted.
  const auto t3 = SteadyClock::now();
  for (;;) {
    NQ_ASSIGN_OR_RETURN(v1::ExperimentStatus s, get(b, id));
    if (ended(s)) {
      if (s.state() != v1::EXPERIMENT_STATE_REVERTED)
        return Error::internal("experiment " + id + " ended " +
                               v1::ExperimentState_Name(s.state()) + ": " + s.message());
      break;
    }
    if (ms_since(t3) > 30'000)
      return Error::status(Code::kDeadlineExceeded, "experiment " + id + " did not end");
    std::this_thread::sleep_for(10ms);
  }
  return run;
}

Result<GroupMemory> memory_of(const std::vector<pid_t>& pids) {
  GroupMemory g;
  for (pid_t pid : pids) {
    NQ_ASSIGN_OR_RETURN(ProcMemory m, read_proc_memory(pid));
    const fs::path rollup = "/proc/" + std::to_string(pid) + "/smaps_rollup";
    std::ifstream in(rollup);
    std::stringstream text;
    text << in.rdbuf();
    NQ_ASSIGN_OR_RETURN(uint64_t pss, parse_smaps_rollup_pss(text.str()));
    ++g.processes;
    g.rss_kib += m.rss_kib;
    g.anon_kib += m.anon_kib;
    g.pss_kib += pss;
  }
  return g;
}

// utime + stime of the processes, in milliseconds.
Result<double> cpu_ms(const std::vector<pid_t>& pids) {
  uint64_t ticks = 0;
  for (pid_t pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::stringstream text;
    text << in.rdbuf();
    NQ_ASSIGN_OR_RETURN(uint64_t t, parse_stat_cpu_ticks(text.str()));
    ticks += t;
  }
  return static_cast<double>(ticks) * 1000.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

Result<BenchPod> bench_pod(const FanoutNode& n, const std::string& ns) {
  NQ_ASSIGN_OR_RETURN(sandbox::PodRecord rec,
                      sandbox::Registry(n.sandbox.state_dir).get(ns, n.pod));
  if (rec.ips.empty() || rec.netns_path.empty() || rec.containers.empty())
    return Error::internal("pod " + rec.key() + " has no address, netns or container");
  return BenchPod{rec.namespace_name, rec.name, rec.ips[0], rec.netns_path, rec.containers[0].pid};
}

std::string kernel_release() {
  struct utsname u {};
  return ::uname(&u) == 0 ? u.release : "unknown";
}

double load_average() {
  double l[1] = {0};
  return ::getloadavg(l, 1) == 1 ? l[0] : 0.0;
}

Result<FanoutReport> run(const Options& o, const StopSignals& stop, const fs::path& work,
                         const fs::path& journals) {
  FanoutReport report;
  report.agents = o.agents;
  report.runs = o.runs;
  report.warmup = o.warmup;
  report.submit_via = o.submit == "nqctl" ? "nqctl apply (process)" : "Submit RPC (as nqctl apply)";
  report.fault = "NetworkChaos bandwidth 1mbps (tbf, egress), mode all: one injection per agent";
  report.kernel = kernel_release();
  report.cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));

  FanoutCluster cluster({o.agents, work, journals, o.agent_binary, o.controller_binary, o.nqctl,
                         o.nq_echo, o.gen_certs, o.setup_threads});
  const auto setup = SteadyClock::now();
  NQ_TRY(cluster.start([&] { return stop.check(); }, progress));
  report.setup_s = ms_since(setup) / 1000.0;

  Bench b{o, stop, cluster, "", work / "experiment.yaml", {}, report};
  b.yaml =
      "apiVersion: chaos-mesh.org/v1alpha1\n"
      "kind: NetworkChaos\n"
      "metadata: {name: fanout-bench, namespace: " +
      cluster.ns() +
      "}\n"
      "spec:\n"
      "  action: bandwidth\n"
      "  mode: all\n"
      "  selector:\n"
      "    namespaces: [" +
      cluster.ns() +
      "]\n"
      "    labelSelectors: {chaos-ready: \"true\"}\n"
      "  bandwidth: {rate: 1mbps}\n"
      "  duration: 10m\n";
  std::ofstream(b.yaml_file) << b.yaml;
  const int sample = std::min(o.sample, o.agents);
  for (int i = 0; i < sample; ++i) {
    const FanoutNode& n = cluster.nodes()[static_cast<size_t>(i * o.agents / sample)];
    NQ_ASSIGN_OR_RETURN(BenchPod pod, bench_pod(n, cluster.ns()));
    NQ_ASSIGN_OR_RETURN(EffectProbe probe, EffectProbe::open(pod, pod, "eth0", 200ms));
    b.probes.emplace_back(pod.key() + "@" + n.name, std::move(probe));
  }
  report.verified_agents = o.agents;
  report.verified_pods = sample;

  std::vector<pid_t> agents;
  for (auto& n : cluster.nodes()) agents.push_back(n.agent->pid());
  const std::vector<pid_t> controller = {cluster.controller_pid()};
  double agents_cpu = 0, controller_cpu = 0;
  report.load_before = load_average();
  for (int i = 0; i < o.warmup + o.runs; ++i) {
    NQ_TRY(stop.check());
    if (i == o.warmup) {
      NQ_ASSIGN_OR_RETURN(agents_cpu, cpu_ms(agents));
      NQ_ASSIGN_OR_RETURN(controller_cpu, cpu_ms(controller));
    }
    auto r = one_run(b);
    if (!r.ok()) return std::move(r).error().wrapped("run " + std::to_string(i));
    (i < o.warmup ? report.cold : report.measured).push_back(*r);
    progress("run " + std::to_string(i) + (i < o.warmup ? " (warm-up)" : "") +
             ": apply all acked " + format_ms(r->apply_all_acked_ms) + ", kill switch " +
             format_ms(r->killswitch_ms) + ", all reverted " + format_ms(r->all_reverted_ms) +
             " (" + std::to_string(static_cast<int>(r->agents_late)) + " agents late)");
  }
  report.load_after = load_average();
  NQ_ASSIGN_OR_RETURN(const double agents_cpu_after, cpu_ms(agents));
  NQ_ASSIGN_OR_RETURN(const double controller_cpu_after, cpu_ms(controller));
  report.agents_cpu_ms_per_run = (agents_cpu_after - agents_cpu) / o.runs;
  report.controller_cpu_ms_per_run = (controller_cpu_after - controller_cpu) / o.runs;
  NQ_ASSIGN_OR_RETURN(report.agents_memory, memory_of(agents));
  NQ_ASSIGN_OR_RETURN(report.controller_memory, memory_of(controller));

  b.probes.clear();  // their netns handles, before the pods go
  progress("taking the cluster down");
  NQ_TRY(cluster.teardown());
  return report;
}

Status validate(Options& o) {
  if (::geteuid() != 0)
    return Error::failed_precondition("needs root (netns, veth, cgroups, qdiscs, processes)");
  if (o.agents < 1 || o.agents > kMaxAgents)
    return Error::invalid_argument("--agents", "must be 1.." + std::to_string(kMaxAgents));
  if (o.runs < 1) return Error::invalid_argument("--runs", "must be at least 1");
  if (o.warmup < 0) return Error::invalid_argument("--warmup", "must not be negative");
  if (o.setup_threads < 1) return Error::invalid_argument("--setup-threads", "must be at least 1");
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return Error(ec, "readlink /proc/self/exe");
  struct Bin {
    std::string* path;
    const char* name;
    const char* flag;
  };
  for (const Bin& b : {Bin{&o.agent_binary, "nodequake-agent", "--agent-binary"},
                       Bin{&o.controller_binary, "nodequake-controller", "--controller-binary"},
                       Bin{&o.nqctl, "nqctl", "--nqctl"}, Bin{&o.nq_echo, "nq-echo", "--nq-echo"},
                       Bin{&o.gen_certs, "gen-test-certs.sh", "--gen-certs"}}) {
    if (b.path->empty()) *b.path = (self.parent_path() / b.name).string();
    if (::access(b.path->c_str(), X_OK) != 0)
      return Error::invalid_argument(b.flag, *b.path + " is not an executable (build it first)");
  }
  return ok();
}

}  // namespace
}  // namespace nq::bench

int main(int argc, char** argv) {
  using namespace nq::bench;
  const StopSignals stop;  // before any thread exists
  if (nq::Status st = nq::pin_grpc_tls13(); !st.ok()) {
    std::fprintf(stderr, "nq-bench-fanout: %s\n", st.error().message().c_str());
    return 1;
  }
  Options o;
  CLI::App app{"nq-bench-fanout: controller fan-out to N agents: apply-all-acked and kill switch"};
  app.add_option("--agents", o.agents, "Agent processes (one node and pod each)")
      ->capture_default_str();
  app.add_option("--runs", o.runs, "Measured runs")->capture_default_str();
  app.add_option("--warmup", o.warmup,
                 "Unmeasured runs first (the first pays the controller's TLS handshakes)")
      ->capture_default_str();
  app.add_option("--submit", o.submit, "api: the Submit RPC nqctl makes; nqctl: run nqctl apply")
      ->check(CLI::IsMember({"api", "nqctl"}))
      ->capture_default_str();
  app.add_option("--sample", o.sample, "Pods whose qdiscs are checked in the kernel every run")
      ->capture_default_str();
  app.add_option("--setup-threads", o.setup_threads, "Nodes brought up side by side")
      ->capture_default_str();
  app.add_option("--state-parent", o.state_parent, "Where the agents' journals are created")
      ->capture_default_str();
  app.add_option("--agent-binary", o.agent_binary, "nodequake-agent (default: next to this)");
  app.add_option("--controller-binary", o.controller_binary,
                 "nodequake-controller (default: next to this)");
  app.add_option("--nqctl", o.nqctl, "nqctl: the sandbox shim (default: next to this)");
  app.add_option("--nq-echo", o.nq_echo, "the pods' workload (default: next to this)");
  app.add_option("--gen-certs", o.gen_certs, "tests/support/certs/gen-test-certs.sh")
      ->capture_default_str();
  app.add_flag("--json", o.json, "Print JSON instead of the table");
  app.add_option("--json-file", o.json_file, "Also write the JSON figures to this file");
  CLI11_PARSE(app, argc, argv);
  if (nq::Status st = validate(o); !st.ok()) {
    std::fprintf(stderr, "nq-bench-fanout: %s\n", st.error().message().c_str());
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);

  const std::string tag = "nqf-" + std::to_string(::getpid()) + "-";
  auto work = TempDir::make(std::filesystem::temp_directory_path(), tag);
  auto journals = work.ok() ? TempDir::make(o.state_parent, tag + "journals-")
                            : nq::Result<TempDir>(work.error());
  if (!work.ok() || !journals.ok()) {
    std::fprintf(stderr, "nq-bench-fanout: %s\n",
                 (work.ok() ? journals.error() : work.error()).message().c_str());
    return 1;
  }
  auto report = run(o, stop, work->path(), journals->path());
  if (!report.ok()) {
    std::fprintf(stderr, "nq-bench-fanout: %s\n", report.error().message().c_str());
    return report.error().status_code() == nq::Code::kCancelled ? 130 : 1;
  }
  const FanoutGoals goals;
  const nlohmann::json j = fanout_to_json(*report, goals);
  if (o.json)
    std::printf("%s\n", j.dump(2).c_str());
  else
    std::printf("%s", render_fanout_table(*report, goals).c_str());
  if (!o.json_file.empty()) {
    std::ofstream out(o.json_file);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "nq-bench-fanout: cannot write %s\n", o.json_file.c_str());
      return 1;
    }
  }
  return 0;
}

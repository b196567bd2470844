// nq-bench-apply: Apply/Revert latency of nodequake's agent against the way
// peer tools inject the same faults (nsenter + tc / iptables as child
// processes), measured in the same run on the same sandbox pods; plus the
// agent's RSS. See docs/benchmarks.md. Needs root.
#include <linux/magic.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "agent/server/tls.h"
#include "bench/agent_path.h"
#include "bench/bench_sandbox.h"
#include "bench/bench_util.h"
#include "bench/effects.h"
#include "bench/peer_exec.h"
#include "bench/proc_memory.h"
#include "bench/report.h"
#include "bench/steps.h"
#include "tests/support/agent_process.h"

namespace nq::bench {
namespace {

namespace fs = std::filesystem;
using std::chrono::nanoseconds;

struct Options {
  int runs = 200;
  int warmup = 5;
  int check_every = 10;
  std::string agent_binary, nqctl, nq_echo;
  std::string state_parent = "/var/tmp";
  std::string rate = "1mbit";  // tc's spelling; the agent gets the same in bits/s
  uint64_t rate_bps = 1'000'000;
  bool json = false;
  std::string json_file;
  std::vector<std::string> agent_args;
  int step_runs = 20;
  std::chrono::milliseconds settle{1000};
};

std::string fs_type(const fs::path& p) {
  struct statfs st {};
  if (::statfs(p.c_str(), &st) < 0) return "unknown";
  switch (static_cast<unsigned long>(st.f_type)) {
    case TMPFS_MAGIC:
      return "tmpfs";
    case EXT4_SUPER_MAGIC:
      return "ext4";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case OVERLAYFS_SUPER_MAGIC:
      return "overlay";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "fs 0x%lx", static_cast<unsigned long>(st.f_type));
      return buf;
    }
  }
}

double load_average() {
  double l[1] = {0};
  return ::getloadavg(l, 1) == 1 ? l[0] : 0.0;
}

std::string kernel_release() {
  struct utsname u {};
  return ::uname(&u) == 0 ? u.release : "unknown";
}

const char* kind_name(FaultKind k) {
  return k == FaultKind::kPartition ? "partition" : "bandwidth";
}

void progress(const std::string& msg) {
  std::fprintf(stderr, "nq-bench-apply: %s\n", msg.c_str());
}

// Everything one run needs once the pods and the agent are up.
struct Context {
  const Options& opts;
  const StopSignals& stop;
  BenchSandbox& sandbox;
  testing::AgentProcess& agent;
  const PeerTools& tools;
  EffectProbe& probe;
  BenchReport& report;
};

// Checks what the client pod sees against what should be, and tallies it.
Status check_effect(Context& c, FaultKind kind, Installer who, Effect want,
                    const std::string& what) {
  NQ_ASSIGN_OR_RETURN(Observation seen, c.probe.observe(kind, who));
  const bool ok = seen.effect == want;
  CheckTally& tally = who == Installer::kAgent ? c.report.nodequake_checks : c.report.exec_checks;
  tally.record(ok, what + ": expected " + effect_name(want) + ", saw " + effect_name(seen.effect) +
                       " (" + seen.detail + ")");
  return nq::ok();
}

Status run_operation(Context& c, FaultKind kind) {
  const BenchPod& client = c.sandbox.client();
  const BenchPod& server = c.sandbox.server();
  const PeerCommands cmds = kind == FaultKind::kPartition
                                ? iptables_partition_commands(c.tools, client.pid, server.ip)
                                : tc_bandwidth_commands(c.tools, client.pid, "eth0", c.opts.rate);
  OperationSamples apply{std::string(kind_name(kind)) + " apply", {}, {}};
  OperationSamples revert{std::string(kind_name(kind)) + " revert", {}, {}};
  auto ms = [](nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); };

  for (int i = 0; i < c.opts.warmup + c.opts.runs; ++i) {
    NQ_TRY(c.stop.check());
    const bool measured = i >= c.opts.warmup;
    const bool check = measured && (i - c.opts.warmup) % c.opts.check_every == 0;
    const std::string run = std::string(kind_name(kind)) + " run " + std::to_string(i);

    // nodequake: one Apply and one Revert RPC.
    const std::string id =
        "nqb-" + std::to_string(::getpid()) + "-" + kind_name(kind) + "-" + std::to_string(i);
    const auto ttl = std::chrono::seconds(300);
    const nodequake::v1::ApplyRequest req =
        kind == FaultKind::kPartition ? partition_request(id, client, server.ip, ttl)
                                      : bandwidth_request(id, client, c.opts.rate_bps, ttl);
    NQ_ASSIGN_OR_RETURN(nanoseconds a, timed_apply(c.agent.stub(), req));
    ++c.report.injections;
    if (check) NQ_TRY(check_effect(c, kind, Installer::kAgent, Effect::kActive, run + " apply"));
    NQ_ASSIGN_OR_RETURN(nanoseconds r, timed_revert(c.agent.stub(), id));
    if (check) NQ_TRY(check_effect(c, kind, Installer::kAgent, Effect::kGone, run + " revert"));

    // The peer tools' way: two child processes.
    NQ_ASSIGN_OR_RETURN(nanoseconds ea, run_timed(cmds.apply));
    if (check) NQ_TRY(check_effect(c, kind, Installer::kExec, Effect::kActive, run + " apply"));
    NQ_ASSIGN_OR_RETURN(nanoseconds er, run_timed(cmds.revert));
    if (check) NQ_TRY(check_effect(c, kind, Installer::kExec, Effect::kGone, run + " revert"));

    if (!measured) continue;
    apply.nodequake_ms.push_back(ms(a));
    revert.nodequake_ms.push_back(ms(r));
    apply.exec_ms.push_back(ms(ea));
    revert.exec_ms.push_back(ms(er));
  }
  c.report.operations.push_back(std::move(apply));
  c.report.operations.push_back(std::move(revert));
  return ok();
}

Result<BenchReport> run(const Options& opts, const StopSignals& stop, const fs::path& work,
                        const fs::path& journal_dir) {
  NQ_ASSIGN_OR_RETURN(PeerTools tools,
                      find_peer_tools(std::string(std::getenv("PATH") ? std::getenv("PATH") : "") +
                                      // tc and iptables live in sbin, which a
                                      // non-login root shell may not have in PATH.
                                      ":/usr/sbin:/usr/bin:/sbin:/bin"));
  BenchReport report;
  report.runs = opts.runs;
  report.warmup = opts.warmup;
  report.check_every = opts.check_every;
  report.kernel = kernel_release();
  report.cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  report.journal_dir = journal_dir.string();
  report.journal_fs = fs_type(journal_dir);

  progress("bringing up sandbox pods client and server");
  NQ_ASSIGN_OR_RETURN(std::unique_ptr<BenchSandbox> sandbox,
                      BenchSandbox::up({work / "sandbox", opts.nqctl, opts.nq_echo}));
  NQ_TRY(stop.check());

  progress("starting " + opts.agent_binary + " (journal in " + journal_dir.string() + ", " +
           report.journal_fs + ")");
  testing::AgentProcessOptions aopts;
  aopts.binary = opts.agent_binary;
  aopts.state_dir = journal_dir.string();
  aopts.socket = (work / "agent.sock").string();
  aopts.sandbox_dir = sandbox->options().state_dir.string();
  aopts.extra_args = {"--node-name", "nq-bench", "--log-level", "warn"};
  aopts.extra_args.insert(aopts.extra_args.end(), opts.agent_args.begin(), opts.agent_args.end());
  aopts.log_file = (work / "agent.log").string();
  NQ_ASSIGN_OR_RETURN(std::unique_ptr<testing::AgentProcess> agent,
                      testing::AgentProcess::start(aopts));

  // Idle: started, answered Probe, nothing injected yet; let start-up
  // allocations (probes, first connection) settle first.
  std::this_thread::sleep_for(opts.settle);
  NQ_ASSIGN_OR_RETURN(report.rss_idle, read_proc_memory(agent->pid()));

  NQ_ASSIGN_OR_RETURN(EffectProbe probe, EffectProbe::open(sandbox->client(), sandbox->server(),
                                                           "eth0", std::chrono::milliseconds(200)));
  Context ctx{opts, stop, *sandbox, *agent, tools, probe, report};
  report.load_before = load_average();
  for (FaultKind kind : {FaultKind::kPartition, FaultKind::kBandwidth}) {
    progress(std::string(kind_name(kind)) + ": " + std::to_string(opts.warmup + opts.runs) +
             " apply/revert cycles each way");
    NQ_TRY(run_operation(ctx, kind));
  }
  report.load_after = load_average();
  NQ_ASSIGN_OR_RETURN(report.rss_after, read_proc_memory(agent->pid()));

  if (opts.step_runs > 0) {
    NQ_TRY(stop.check());
    progress("timing the agent's steps one by one (" + std::to_string(opts.step_runs) + " runs)");
    NQ_ASSIGN_OR_RETURN(Netns client_ns, Netns::open(sandbox->client().netns_path));
    NQ_ASSIGN_OR_RETURN(
        TempDir steps_dir,
        TempDir::make(journal_dir.parent_path(), journal_dir.filename().string() + "-steps-"));
    StepOptions so;
    so.runs = opts.step_runs;
    so.netns = &client_ns;
    so.journal_dir = steps_dir.path();
    so.stub = &agent->stub();
    NQ_ASSIGN_OR_RETURN(report.steps, measure_steps(so));
  }

  // An orderly stop is part of the run: the agent must revert and exit 0.
  NQ_ASSIGN_OR_RETURN(int status, agent->stop(SIGTERM));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error::internal("the agent did not exit cleanly on SIGTERM (wait status " +
                           std::to_string(status) + "); see its log");
  NQ_TRY(sandbox->down());
  return report;
}

void print_log_tail(const fs::path& log) {
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(std::move(line));
    if (lines.size() > 20) lines.erase(lines.begin());
  }
  if (lines.empty()) return;
  std::fprintf(stderr, "--- last lines of the agent's log (%s):\n", log.c_str());
  for (const auto& l : lines) std::fprintf(stderr, "%s\n", l.c_str());
}

Status validate(Options& o) {
  if (::geteuid() != 0)
    return Error::failed_precondition("needs root (netns, veth, cgroups, qdiscs, BPF)");
  if (o.runs < 1) return Error::invalid_argument("--runs", "must be at least 1");
  if (o.check_every < 1) return Error::invalid_argument("--check-every", "must be at least 1");
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return Error(ec, "readlink /proc/self/exe");
  // nq-bench-apply is built into <build>/bin next to the agent, nqctl and nq-echo.
  struct Bin {
    std::string* path;
    const char* name;
    const char* flag;
  };
  for (const Bin& b :
       {Bin{&o.agent_binary, "nodequake-agent", "--agent-binary"},
        Bin{&o.nqctl, "nqctl", "--nqctl"}, Bin{&o.nq_echo, "nq-echo", "--nq-echo"}}) {
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
  // Before any thread or gRPC object exists (see each).
  const StopSignals stop;
  if (nq::Status st = nq::pin_grpc_tls13(); !st.ok()) {
    std::fprintf(stderr, "nq-bench-apply: %s\n", st.error().message().c_str());
    return 1;
  }

  Options o;
  CLI::App app{
      "nq-bench-apply: Apply/Revert latency of the nodequake agent vs exec'ing tc/iptables"};
  app.add_option("--runs", o.runs, "Measured apply/revert cycles per fault and way")
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "Unmeasured cycles first")->capture_default_str();
  app.add_option("--check-every", o.check_every, "Verify the effect on every Nth measured run")
      ->capture_default_str();
  app.add_option("--agent-binary", o.agent_binary, "nodequake-agent (default: next to this)");
  app.add_option("--nqctl", o.nqctl, "nqctl, the sandbox shim (default: next to this)");
  app.add_option("--nq-echo", o.nq_echo, "the pods' workload (default: next to this)");
  app.add_option("--state-parent", o.state_parent,
                 "Where the agent's journal directory is created (/dev/shm: tmpfs, no fsync cost)")
      ->capture_default_str();
  app.add_option("--agent-arg", o.agent_args,
                 "Extra option for the agent, repeatable (e.g. --agent-arg=--attach=tc)");
  app.add_option("--step-runs", o.step_runs,
                 "Runs of the per-step timing of the agent's work (0: skip)")
      ->capture_default_str();
  app.add_flag("--json", o.json, "Print JSON instead of the table");
  app.add_option("--json-file", o.json_file, "Also write the JSON figures to this file");
  CLI11_PARSE(app, argc, argv);
  if (nq::Status st = validate(o); !st.ok()) {
    std::fprintf(stderr, "nq-bench-apply: %s\n", st.error().message().c_str());
    return 2;
  }

  const std::string tag = "nqb-" + std::to_string(::getpid()) + "-";
  auto work = TempDir::make(std::filesystem::temp_directory_path(), tag);
  auto journal = work.ok() ? TempDir::make(o.state_parent, tag + "journal-")
                           : nq::Result<TempDir>(work.error());
  if (!work.ok() || !journal.ok()) {
    std::fprintf(stderr, "nq-bench-apply: %s\n",
                 (work.ok() ? journal.error() : work.error()).message().c_str());
    return 1;
  }
  auto report = run(o, stop, work->path(), journal->path());
  if (!report.ok()) {
    std::fprintf(stderr, "nq-bench-apply: %s\n", report.error().message().c_str());
    print_log_tail(work->path() / "agent.log");
    return report.error().status_code() == nq::Code::kCancelled ? 130 : 1;
  }

  const Goals goals;
  const nlohmann::json j = to_json(*report, goals);
  if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s", render_table(*report, goals).c_str());
  }
  if (!o.json_file.empty()) {
    std::ofstream out(o.json_file);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "nq-bench-apply: cannot write %s\n", o.json_file.c_str());
      return 1;
    }
  }
  // A failed effect check means a latency figure may not be a time to effect.
  return report->nodequake_checks.all_passed() && report->exec_checks.all_passed() ? 0 : 3;
}

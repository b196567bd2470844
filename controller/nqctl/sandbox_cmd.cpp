// `nqctl sandbox`: local sandbox pods (real netns, veth, cgroups, processes).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "agent/runtime/local/process.h"
#include "agent/runtime/local/registry.h"
#include "agent/runtime/local/sandbox.h"
#include "agent/runtime/local/shim.h"
#include "common/duration.h"
#include "common/netns.h"
#include "controller/nqctl/command.h"
#include "controller/nqctl/measure.h"

namespace nq::nqctl {
namespace {

using nlohmann::json;
using namespace nq::sandbox;

struct Flags {
  std::string state_dir;
  std::string file;
  bool all = false;
  std::vector<std::string> pods;
  bool json = false;
  SandboxOptions opts;
  std::string from, to, throughput, timeout = "5s";
  int rtt = 0, udp = 0;
  bool connect = false;
  int ready_fd = -1;
  std::string shim_pod;
};

int fail(const Error& e) {
  std::fprintf(stderr, "nqctl: %s\n", e.message().c_str());
  return 1;
}

std::string default_state_dir() {
  const char* env = std::getenv(kStateDirEnv);
  return env && *env ? env : kDefaultStateDir;
}

// nqctl and nq-echo are built and installed side by side.
Result<SandboxOptions> options(const Flags& f) {
  SandboxOptions o = f.opts;
  o.state_dir = f.state_dir;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Error(ec, "readlink /proc/self/exe");
  o.nq_echo = self.parent_path() / "nq-echo";
  o.shim_command = {self.string(), "sandbox", "shim"};
  return o;
}

void add_state_dir(CLI::App* cmd, Flags& f) {
  cmd->add_option("--state-dir", f.state_dir,
                  "registry directory (env " + std::string(kStateDirEnv) + ")")
      ->capture_default_str();
}

Result<std::pair<std::string, std::string>> split_key(const std::string& key, const char* field) {
  const size_t slash = key.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == key.size())
    return Error::invalid_argument(field, "\"" + key + "\" is not NAMESPACE/NAME");
  return std::make_pair(key.substr(0, slash), key.substr(slash + 1));
}

std::string pod_status(const PodRecord& r) {
  if (!process_alive(r.shim_pid, r.shim_start_time)) return "ShimDown";
  for (const ContainerRecord& c : r.containers)
    if (!process_alive(c.pid, c.pid_start_time)) return "Restarting(" + c.last_exit + ")";
  return "Running";
}

int cmd_up(const Flags& f) {
  auto pods = load_pods_file(f.file);
  if (!pods.ok()) return fail(pods.error());
  auto o = options(f);
  if (!o.ok()) return fail(o.error());
  auto report = sandbox_up(*pods, *o);
  if (!report.ok()) return fail(report.error());
  for (const std::string& k : report->created) std::printf("created   %s\n", k.c_str());
  for (const std::string& k : report->unchanged) std::printf("unchanged %s\n", k.c_str());
  return 0;
}

int cmd_down(const Flags& f) {
  auto o = options(f);
  if (!o.ok()) return fail(o.error());
  Result<DownReport> report = DownReport{};
  if (f.all) {
    report = sandbox_down_all(*o);
  } else {
    std::vector<std::string> keys = f.pods;
    if (!f.file.empty()) {
      auto pods = load_pods_file(f.file);
      if (!pods.ok()) return fail(pods.error());
      for (const PodSpec& p : *pods) keys.push_back(p.key());
    }
    if (keys.empty())
      return fail(Error::invalid_argument("down", "name pods: -f FILE, --all or NAMESPACE/NAME"));
    report = sandbox_down(keys, *o);
  }
  if (!report.ok()) return fail(report.error());
  for (const std::string& k : report->removed) std::printf("removed %s\n", k.c_str());
  for (const std::string& k : report->absent) std::printf("absent  %s\n", k.c_str());
  return 0;
}

int cmd_list(const Flags& f) {
  auto records = Registry(f.state_dir).list();
  if (!records.ok()) return fail(records.error());
  if (f.json) {
    json out = json::array();
    for (const PodRecord& r : *records) {
      json j = json::parse(to_json(r));
      j["status"] = pod_status(r);
      out.push_back(std::move(j));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-18s %-22s %-12s %-14s %-8s %-22s %s\n", "NAMESPACE", "NAME", "IP", "PIDS",
              "RESTARTS", "STATUS", "LABELS");
  for (const PodRecord& r : *records) {
    std::string pids, labels;
    int restarts = 0;
    for (const ContainerRecord& c : r.containers) {
      pids += (pids.empty() ? "" : ",") + std::to_string(c.pid);
      restarts += c.restart_count;
    }
    for (const auto& [k, v] : r.labels) labels += (labels.empty() ? "" : ",") + k + "=" + v;
    const std::string ip = r.host_network ? "<host>" : (r.ips.empty() ? "-" : r.ips[0]);
    std::printf("%-18s %-22s %-12s %-14s %-8d %-22s %s\n", r.namespace_name.c_str(), r.name.c_str(),
                ip.c_str(), pids.c_str(), restarts, pod_status(r).c_str(), labels.c_str());
  }
  return 0;
}

int cmd_measure(const Flags& f) {
  const Registry registry(f.state_dir);
  auto from_key = split_key(f.from, "--from");
  if (!from_key.ok()) return fail(from_key.error());
  auto to_key = split_key(f.to, "--to");
  if (!to_key.ok()) return fail(to_key.error());
  auto from = registry.get(from_key->first, from_key->second);
  if (!from.ok()) return fail(from.error());
  auto to = registry.get(to_key->first, to_key->second);
  if (!to.ok()) return fail(to.error());
  if (to->ips.empty())
    return fail(Error::invalid_argument("--to", to->key() + " has host networking: no pod IP"));
  auto ns = from->host_network ? Netns::current() : Netns::open(from->netns_path);
  if (!ns.ok()) return fail(ns.error());

  MeasureRequest req;
  req.connect = f.connect;
  req.rtt = f.rtt;
  req.udp = f.udp;
  auto timeout = parse_duration(f.timeout);
  if (!timeout.ok()) return fail(std::move(timeout).error().wrapped("--timeout"));
  req.timeout = *timeout;
  if (!f.throughput.empty()) {
    auto d = parse_duration(f.throughput);
    if (!d.ok()) return fail(std::move(d).error().wrapped("--throughput"));
    req.throughput = *d;
  }
  if (!req.connect && req.rtt == 0 && !req.throughput && req.udp == 0) {
    req.connect = true;
    req.rtt = 20;
  }
  json m = measure(*ns, to->ips[0], req);
  m["from"] = from->key();
  m["to"] = to->key();
  if (f.json) {
    std::printf("%s\n", m.dump(2).c_str());
  } else {
    std::printf("%s -> %s (%s)\n%s", from->key().c_str(), to->key().c_str(), to->ips[0].c_str(),
                render_measurement(m).c_str());
  }
  return m.contains("error") ? 1 : 0;
}

int cmd_shim(const Flags& f) {
  auto key = split_key(f.shim_pod, "pod");
  if (!key.ok()) return fail(key.error());
  Status st = run_shim({f.state_dir, key->first, key->second, f.ready_fd});
  return st.ok() ? 0 : 1;  // run_shim logged the error and told `up`
}

}  // namespace

void add_sandbox_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<Flags>();
  f->state_dir = default_state_dir();
  CLI::App* sandbox =
      app.add_subcommand("sandbox", "local sandbox pods: real netns, veth, cgroups");
  sandbox->require_subcommand(1);
  const auto run = [&ctx, f](int (*cmd)(const Flags&)) {
    return [&ctx, f, cmd] { ctx.action = [f, cmd] { return cmd(*f); }; };
  };

  CLI::App* up = sandbox->add_subcommand("up", "create the pods of a pods file");
  up->add_option("-f,--file", f->file, "pods file (YAML, kind SandboxPod)")->required();
  add_state_dir(up, *f);
  up->add_option("--bridge", f->opts.bridge, "bridge in the host netns")->capture_default_str();
  up->add_option("--subnet", f->opts.subnet, "pod subnet (the bridge takes the first address)")
      ->capture_default_str();
  up->add_option("--cgroup-parent", f->opts.cgroup_parent, "cgroup under which pods are created")
      ->capture_default_str();
  up->add_option("--netns-prefix", f->opts.netns_prefix, "prefix of the /run/netns pins")
      ->capture_default_str();
  up->callback(run(cmd_up));

  CLI::App* down = sandbox->add_subcommand("down", "remove pods (idempotent)");
  down->add_option("-f,--file", f->file, "the pods of this file");
  down->add_flag("--all", f->all, "every pod in the registry");
  down->add_option("pods", f->pods, "NAMESPACE/NAME ...");
  add_state_dir(down, *f);
  down->callback(run(cmd_down));

  CLI::App* list = sandbox->add_subcommand("list", "show the pods");
  list->add_flag("--json", f->json, "the registry records as JSON");
  add_state_dir(list, *f);
  list->callback(run(cmd_list));

  CLI::App* measure = sandbox->add_subcommand(
      "measure", "probe from one pod's netns to another pod (default: --connect --rtt 20)");
  measure->add_option("--from", f->from, "NAMESPACE/NAME")->required();
  measure->add_option("--to", f->to, "NAMESPACE/NAME")->required();
  measure->add_option("--rtt", f->rtt, "TCP echo round trips");
  measure->add_option("--throughput", f->throughput, "download and upload for this long (2s)");
  measure->add_option("--udp", f->udp, "UDP echo datagrams (loss, duplicates, corruption)");
  measure->add_flag("--connect", f->connect, "TCP handshake time");
  measure->add_option("--timeout", f->timeout, "per exchange")->capture_default_str();
  measure->add_flag("--json", f->json, "print JSON");
  add_state_dir(measure, *f);
  measure->callback(run(cmd_measure));

  add_sandbox_load_command(*sandbox, ctx);

  // Started by `up` for each pod; not for people to run.
  CLI::App* shim = sandbox->add_subcommand("shim", "");
  shim->group("");
  shim->add_option("pod", f->shim_pod, "NAMESPACE/NAME")->required();
  shim->add_option("--ready-fd", f->ready_fd, "pipe to report readiness on");
  add_state_dir(shim, *f);
  shim->callback(run(cmd_shim));
}

}  // namespace nq::nqctl

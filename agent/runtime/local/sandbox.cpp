#include "agent/runtime/local/sandbox.h"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <thread>

#include "agent/net/links.h"
#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/ipam.h"
#include "agent/runtime/local/pod_cgroups.h"
#include "agent/runtime/local/pod_network.h"
#include "agent/runtime/local/process.h"
#include "agent/runtime/local/shim.h"
#include "common/netns.h"
#include "common/traffic.h"

namespace nq::sandbox {
namespace {

using std::chrono::milliseconds;

Result<std::string> random_hex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  size_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::getrandom(buf.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "getrandom");
    }
    got += static_cast<size_t>(n);
  }
  std::string out;
  char hex[3];
  for (unsigned char b : buf) {
    std::snprintf(hex, sizeof(hex), "%02x", b);
    out += hex;
  }
  return out;
}

bool is_executable_file(const std::filesystem::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

std::filesystem::path log_path(const SandboxOptions& o, const PodSpec& p) {
  return o.state_dir / "logs" / (p.namespace_name + "_" + p.name + ".log");
}

// The spec a record was made from, to tell "already up" from "changed".
bool same_spec(const PodRecord& r, const PodSpec& p,
               const std::vector<std::vector<std::string>>& argvs) {
  if (r.labels != p.labels || r.host_network != p.host_network ||
      r.containers.size() != p.containers.size())
    return false;
  for (size_t i = 0; i < p.containers.size(); ++i) {
    const ContainerRecord& c = r.containers[i];
    if (c.name != p.containers[i].name || c.argv != argvs[i] ||
        c.limits != p.containers[i].limits ||
        c.readiness_port != effective_readiness_port(p.containers[i]))
      return false;
  }
  return true;
}

// A pod ready to be created: everything decided before the kernel is touched.
struct Planned {
  const PodSpec* spec = nullptr;
  std::vector<std::vector<std::string>> argvs;
  bool replace_stale = false;  // a record exists whose shim is dead
};

// Removes the bridge and the cgroup parent when no pod in the registry uses
// them any more. Best effort on the parent: another registry (another state
// dir) may share it, which rmdir tells us with ENOTEMPTY/EBUSY.
Status cleanup_shared(const Registry& registry, const std::set<std::string>& bridges,
                      const std::set<std::string>& parent_dirs) {
  NQ_ASSIGN_OR_RETURN(std::vector<PodRecord> left, registry.list());
  std::set<std::string> used_bridges, used_parents;
  for (const PodRecord& r : left) {
    used_bridges.insert(r.bridge);
    for (const std::string& d : r.cgroup_dirs)
      used_parents.insert(std::filesystem::path(d).parent_path().string());
  }
  for (const std::string& b : bridges)
    if (!b.empty() && !used_bridges.count(b)) NQ_TRY(remove_bridge(b));
  for (const std::string& d : parent_dirs) {
    if (used_parents.count(d)) continue;
    if (::rmdir(d.c_str()) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EBUSY)
      return Error::from_errno(errno, "rmdir " + d);
  }
  return ok();
}

void collect_shared(const PodRecord& r, std::set<std::string>& bridges,
                    std::set<std::string>& parents) {
  if (!r.bridge.empty()) bridges.insert(r.bridge);
  for (const std::string& d : r.cgroup_dirs)
    parents.insert(std::filesystem::path(d).parent_path().string());
}

Result<PodRecord> create_pod(const Planned& plan, const std::vector<Hierarchy>& hierarchies,
                             const Cidr& subnet, std::set<std::string>& used_ips,
                             const Registry& registry, const SandboxOptions& o) {
  const PodSpec& spec = *plan.spec;
  PodRecord rec;
  rec.namespace_name = spec.namespace_name;
  rec.name = spec.name;
  NQ_ASSIGN_OR_RETURN(rec.uid, new_uid());
  rec.labels = spec.labels;
  rec.host_network = spec.host_network;
  rec.cgroup_parent = o.cgroup_parent;
  rec.log_path = log_path(o, spec).string();
  Cidr address;
  if (!spec.host_network) {
    NQ_ASSIGN_OR_RETURN(address, allocate_ip(subnet, used_ips));
    rec.ips = {host_part(address)};
    rec.ip_cidr = address.str();
    used_ips.insert(rec.ips[0]);
    rec.netns_path =
        (o.netns_dir / (o.netns_prefix + spec.namespace_name + "." + spec.name)).string();
    rec.host_veth = host_veth_name(rec.uid);
    rec.bridge = o.bridge;
  }
  std::vector<ContainerLimits> limits;
  for (const ContainerSpec& c : spec.containers) limits.push_back({c.name, c.limits});
  NQ_ASSIGN_OR_RETURN(PodCgroupPlan cg,
                      plan_pod_cgroups(hierarchies, o.cgroup_parent, rec.uid, limits));
  rec.cgroup_dirs = cg.pod_dirs;
  for (size_t i = 0; i < spec.containers.size(); ++i) {
    ContainerRecord c;
    c.name = spec.containers[i].name;
    NQ_ASSIGN_OR_RETURN(c.id, random_hex(16));
    c.argv = plan.argvs[i];
    c.limits = spec.containers[i].limits;
    c.readiness_port = effective_readiness_port(spec.containers[i]);
    c.cgroups = cg.containers[i].paths;
    c.cgroup_dirs = cg.containers[i].dirs;
    rec.containers.push_back(std::move(c));
  }

  // The record will own these names, and down/rollback remove what the record
  // names: a pin or device of the same name that is not ours must stop us here.
  if (!spec.host_network) {
    if (std::filesystem::exists(rec.netns_path))
      return Error::already_exists(rec.key() + ": netns pin " + rec.netns_path +
                                   " exists and is not a sandbox pod's");
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    if (net::link_index(sock, rec.host_veth).ok())
      return Error::already_exists(rec.key() + ": network device " + rec.host_veth + " exists");
  }
  // Intent first: from here on, `down` (or our rollback) can find everything.
  NQ_TRY(registry.put(rec));
  const auto step = [&](Status st, const char* what) -> Status {
    if (!st.ok()) return std::move(st).error().wrapped(rec.key() + ": " + what);
    return ok();
  };
  if (!spec.host_network)
    NQ_TRY(
        step(create_pod_network({rec.netns_path, rec.host_veth, rec.bridge, address}), "network"));
  NQ_TRY(step(apply_cgroup_plan(cg), "cgroups"));
  std::error_code ec;
  std::filesystem::create_directories(o.state_dir / "logs", ec);
  if (ec) return Error(ec, "mkdir " + (o.state_dir / "logs").string());
  NQ_ASSIGN_OR_RETURN(pid_t shim, launch_shim({o.shim_command, o.state_dir, rec.namespace_name,
                                               rec.name, rec.log_path, o.shim_ready_timeout}));
  (void)shim;
  // The shim wrote its pid and the containers' into the record.
  return registry.get(rec.namespace_name, rec.name);
}

// Like the kubelet's tcpSocket probe, from inside the pod's netns (the host's
// for hostNetwork) to its loopback, until every probed port accepts or time runs out.
Status wait_ready(const std::vector<PodRecord>& pods, const Registry& registry,
                  milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const PodRecord& pod : pods) {
    NQ_ASSIGN_OR_RETURN(Netns ns,
                        pod.host_network ? Netns::current() : Netns::open(pod.netns_path));
    for (const ContainerRecord& c : pod.containers) {
      if (c.readiness_port <= 0) continue;
      for (;;) {
        auto conn = run_in_netns(ns, [&] {
          return traffic::tcp_connect("127.0.0.1", static_cast<uint16_t>(c.readiness_port),
                                      milliseconds(200));
        });
        if (conn.ok()) break;
        if (std::chrono::steady_clock::now() >= deadline) {
          auto now = registry.get(pod.namespace_name, pod.name);
          std::string last;
          for (const ContainerRecord& n : now.ok() ? now->containers : pod.containers)
            if (n.name == c.name && !n.last_exit.empty()) last = "; last exit: " + n.last_exit;
          return Error::status(Code::kDeadlineExceeded,
                               pod.key() + " container " + c.name + " not ready: port " +
                                   std::to_string(c.readiness_port) + " not accepting after " +
                                   std::to_string(timeout.count()) + " ms (" +
                                   conn.error().message() + last + ")");
        }
        std::this_thread::sleep_for(milliseconds(50));
      }
    }
  }
  return ok();
}

}  // namespace

int effective_readiness_port(const ContainerSpec& c) {
  if (c.readiness_port) return *c.readiness_port;
  return c.command.empty() ? kNqEchoHttpPort : 0;
}

Result<std::string> new_uid() {
  NQ_ASSIGN_OR_RETURN(std::string h, random_hex(16));
  h[12] = '4';                                                            // version 4
  h[16] = "89ab"[std::strtol(h.substr(16, 1).c_str(), nullptr, 16) & 3];  // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

Result<std::vector<std::string>> resolve_command(const PodSpec& pod, size_t i,
                                                 const std::filesystem::path& nq_echo,
                                                 std::string_view path_env) {
  const ContainerSpec& c = pod.containers.at(i);
  const std::string field = c.where + ": spec.containers[" + std::to_string(i) + "].command[0]";
  std::vector<std::string> argv = c.command;
  if (argv.empty()) argv = {"nq-echo", "--name", pod.name};
  if (argv[0] == "nq-echo") {
    if (!is_executable_file(nq_echo))
      return Error::invalid_argument(field, "the bundled nq-echo is not at \"" + nq_echo.string() +
                                                "\" (build it next to nqctl)");
    argv[0] = nq_echo.string();
    return argv;
  }
  if (argv[0].find('/') != std::string::npos) {
    if (!is_executable_file(argv[0]))
      return Error::invalid_argument(field, "\"" + argv[0] + "\" is not an executable file");
    argv[0] = std::filesystem::absolute(argv[0]).string();
    return argv;
  }
  size_t start = 0;
  while (start <= path_env.size()) {
    size_t end = path_env.find(':', start);
    if (end == std::string_view::npos) end = path_env.size();
    const std::string_view dir = path_env.substr(start, end - start);
    const std::filesystem::path candidate =
        std::filesystem::path(dir.empty() ? "." : std::string(dir)) / argv[0];
    if (is_executable_file(candidate)) {
      argv[0] = std::filesystem::absolute(candidate).string();
      return argv;
    }
    start = end + 1;
  }
  return Error::invalid_argument(field, "no executable \"" + argv[0] + "\" found in PATH");
}

Status teardown_pod(const PodRecord& rec, const Registry& registry, const SandboxOptions& o) {
  std::optional<Error> first;
  const auto keep = [&](Status st, const std::string& what) {
    if (!st.ok() && !first) first = std::move(st).error().wrapped(rec.key() + ": " + what);
  };
  if (rec.shim_pid > 0)
    keep(stop_process(rec.shim_pid, rec.shim_start_time, o.stop_timeout), "stop shim");
  // Containers outlive a SIGKILLed shim, and a workload may have forked: the
  // cgroups know every process of the pod.
  std::vector<std::vector<std::string>> container_dirs;
  std::vector<std::string> all_dirs = rec.cgroup_dirs;
  for (const ContainerRecord& c : rec.containers) {
    container_dirs.push_back(c.cgroup_dirs);
    all_dirs.insert(all_dirs.end(), c.cgroup_dirs.begin(), c.cgroup_dirs.end());
  }
  keep(kill_cgroup_processes(all_dirs, std::chrono::seconds(5)), "kill processes");
  keep(remove_cgroup_dirs(removal_order(rec.cgroup_dirs, container_dirs), std::chrono::seconds(5)),
       "remove cgroups");
  if (!rec.host_network) keep(remove_pod_network(rec.host_veth, rec.netns_path), "network");
  if (!rec.log_path.empty() && ::unlink(rec.log_path.c_str()) < 0 && errno != ENOENT)
    keep(Error::from_errno(errno, "remove " + rec.log_path), "log");
  if (first) return std::move(*first);
  return registry.remove(rec.namespace_name, rec.name);
}

Result<UpReport> sandbox_up(const std::vector<PodSpec>& pods, const SandboxOptions& o) {
  if (o.shim_command.empty()) return Error::invalid_argument("shim_command", "is empty");
  NQ_ASSIGN_OR_RETURN(Cidr subnet, parse_cidr(o.subnet, "subnet"));
  NQ_ASSIGN_OR_RETURN(Cidr gateway, gateway_address(subnet));
  const Registry registry(o.state_dir);
  NQ_ASSIGN_OR_RETURN(RegistryLock lock, registry.lock());
  NQ_ASSIGN_OR_RETURN(std::vector<PodRecord> existing, registry.list());
  std::map<std::string, const PodRecord*> by_key;
  std::set<std::string> used_ips;
  for (const PodRecord& r : existing) {
    by_key[r.key()] = &r;
    used_ips.insert(r.ips.begin(), r.ips.end());
  }

  // Check everything before creating anything.
  const char* path_env = std::getenv("PATH");
  UpReport report;
  std::vector<Planned> plans;
  for (const PodSpec& p : pods) {
    Planned plan{&p, {}, false};
    for (size_t i = 0; i < p.containers.size(); ++i) {
      NQ_ASSIGN_OR_RETURN(std::vector<std::string> argv,
                          resolve_command(p, i, o.nq_echo, path_env ? path_env : "/usr/bin:/bin"));
      plan.argvs.push_back(std::move(argv));
    }
    if (auto it = by_key.find(p.key()); it != by_key.end()) {
      const PodRecord& r = *it->second;
      if (!process_alive(r.shim_pid, r.shim_start_time)) {
        plan.replace_stale = true;  // recreated below, like a kubelet recreating a dead sandbox
      } else if (same_spec(r, p, plan.argvs)) {
        report.unchanged.push_back(p.key());
        continue;
      } else {
        return Error::failed_precondition(p.where + ": pod " + p.key() +
                                          " is already up with a different spec; run `nqctl "
                                          "sandbox down` for it first");
      }
    }
    plans.push_back(std::move(plan));
  }
  if (plans.empty()) return report;

  NQ_ASSIGN_OR_RETURN(runtime::CgroupFs fs, runtime::CgroupFs::discover(o.host_root));
  NQ_ASSIGN_OR_RETURN(std::vector<Hierarchy> hierarchies, discover_hierarchies(fs));

  std::vector<PodRecord> created;
  std::set<std::string> bridges, parents;
  bool bridge_ready = false;
  const auto rollback = [&](Error e) -> Error {
    for (auto it = created.rbegin(); it != created.rend(); ++it) {
      if (Status st = teardown_pod(*it, registry, o); !st.ok())
        e.wrap("(rollback left state, run `nqctl sandbox down`: " + st.error().message() + ")");
    }
    if (Status st = cleanup_shared(registry, bridges, parents); !st.ok())
      e.wrap("(rollback: " + st.error().message() + ")");
    return e;
  };
  for (const Planned& plan : plans) {
    if (plan.replace_stale) {
      const PodRecord& stale = *by_key.at(plan.spec->key());
      collect_shared(stale, bridges, parents);
      if (Status st = teardown_pod(stale, registry, o); !st.ok())
        return rollback(std::move(st).error());
      for (const std::string& ip : stale.ips) used_ips.erase(ip);
    }
    if (!plan.spec->host_network && !bridge_ready) {
      bridge_ready = true;
      bridges.insert(o.bridge);
      if (Status st = ensure_bridge(o.bridge, gateway); !st.ok())
        return rollback(std::move(st).error().wrapped("bridge " + o.bridge));
    }
    auto rec = create_pod(plan, hierarchies, subnet, used_ips, registry, o);
    if (!rec.ok()) {
      // create_pod wrote the record before touching the kernel: undo from it.
      // (Any record under this key now is ours: a stale one was removed above,
      // and a live one would have been "unchanged" or refused.)
      if (auto partial = registry.get(plan.spec->namespace_name, plan.spec->name); partial.ok())
        created.push_back(std::move(*partial));
      for (const PodRecord& r : created) collect_shared(r, bridges, parents);
      return rollback(std::move(rec).error());
    }
    collect_shared(*rec, bridges, parents);
    created.push_back(std::move(*rec));
    report.created.push_back(plan.spec->key());
  }
  // All pods start in parallel; then wait until each is ready, like `kubectl wait`.
  if (Status st = wait_ready(created, registry, o.ready_timeout); !st.ok())
    return rollback(std::move(st).error());
  return report;
}

Result<DownReport> sandbox_down(const std::vector<std::string>& keys, const SandboxOptions& o) {
  const Registry registry(o.state_dir);
  NQ_ASSIGN_OR_RETURN(RegistryLock lock, registry.lock());
  DownReport report;
  std::set<std::string> bridges, parents;
  std::optional<Error> first;
  for (const std::string& key : keys) {
    const size_t slash = key.find('/');
    if (slash == std::string::npos)
      return Error::invalid_argument("pod", "\"" + key + "\" is not NAMESPACE/NAME");
    auto rec = registry.get(key.substr(0, slash), key.substr(slash + 1));
    if (!rec.ok()) {
      if (rec.error().status_code() == Code::kNotFound) {
        report.absent.push_back(key);
        continue;
      }
      return std::move(rec).error();
    }
    collect_shared(*rec, bridges, parents);
    if (Status st = teardown_pod(*rec, registry, o); !st.ok()) {
      if (!first) first = std::move(st).error();
      continue;  // the others still go
    }
    report.removed.push_back(key);
  }
  if (Status st = cleanup_shared(registry, bridges, parents); !st.ok() && !first)
    first = std::move(st).error();
  if (first) return std::move(*first);
  return report;
}

Result<DownReport> sandbox_down_all(const SandboxOptions& o) {
  const Registry registry(o.state_dir);
  NQ_ASSIGN_OR_RETURN(std::vector<PodRecord> all, registry.list());
  std::vector<std::string> keys;
  for (const PodRecord& r : all) keys.push_back(r.key());
  return sandbox_down(keys, o);
}

}  // namespace nq::sandbox

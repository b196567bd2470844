// `nqctl agent`: talk to one node agent directly (its Unix socket by default,
// or its mTLS TCP port). The controller drives agents the same way.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "agent/server/channel.h"
#include "agent/server/status.h"
#include "agent/server/tls.h"
#include "common/duration.h"
#include "common/units.h"
#include "controller/nqctl/command.h"
#include "nodequake/v1/agent.grpc.pb.h"

namespace nq::nqctl {
namespace {

namespace v1 = nodequake::v1;
using google::protobuf::util::TimeUtil;

struct AgentFlags {
  ChannelOptions channel{"unix:///run/nodequake/agent.sock", "", "", "", ""};
  std::string timeout = "30s";
  bool json = false;

  // apply
  std::string file, id, pod, ttl = "5m", lease_holder, lease = "30s";
  std::vector<std::string> containers;
  bool partition = false;
  std::string bandwidth, buffer, limit;
  std::string delay, jitter, distribution, engine;
  double correlation = 0, loss = -1, loss_correlation = 0, duplicate = 0, corrupt = 0, reorder = 0;
  unsigned gap = 0, queue_limit = 0;
  bool delay_each_direction = false;
  std::string direction = "to", protocol = "any", interface;
  std::vector<std::string> remote, local, remote_ports, local_ports;
  // workload faults
  double cpu_stress = 0;
  unsigned workers = 0;
  std::string memory_stress, io_errno, io_path, disk_fill;
  double io_percent = 0;
  std::vector<std::string> io_ops;
  bool container_kill = false, pod_kill = false, pod_failure = false, io_throttle = false;
  std::string read_bps, write_bps;
  uint64_t read_iops = 0, write_iops = 0;

  // targets
  std::vector<std::string> namespaces, labels;
  bool include_ineligible = false;

  // revert / renew / kill switch
  std::string target_id, holder, duration, reason, actor;
};

int fail(const Error& e) {
  std::fprintf(stderr, "nqctl: %s\n", e.message().c_str());
  return 1;
}

int fail_status(const grpc::Status& st, const char* rpc) {
  return fail(from_grpc_status(st, rpc));
}

void print_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  std::fputs(out.c_str(), stdout);
}

Result<std::unique_ptr<v1::Agent::Stub>> stub(const AgentFlags& f) {
  NQ_ASSIGN_OR_RETURN(auto channel, make_channel(f.channel));
  return v1::Agent::NewStub(channel);
}

Result<std::unique_ptr<grpc::ClientContext>> context(const AgentFlags& f) {
  NQ_ASSIGN_OR_RETURN(auto timeout, parse_duration(f.timeout));
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

google::protobuf::Duration proto_duration(std::chrono::nanoseconds d) {
  return TimeUtil::NanosecondsToDuration(d.count());
}

Result<v1::PortRange> parse_port_range(const std::string& text, const std::string& field) {
  v1::PortRange r;
  const auto dash = text.find('-');
  try {
    r.set_first(static_cast<uint32_t>(std::stoul(text.substr(0, dash))));
    r.set_last(dash == std::string::npos
                   ? r.first()
                   : static_cast<uint32_t>(std::stoul(text.substr(dash + 1))));
  } catch (const std::exception&) {
    return Error::invalid_argument(field,
                                   "\"" + text + "\" is not a port or port range (80, 8000-8080)");
  }
  return r;
}

Result<v1::NetworkPath> path_from_flags(const AgentFlags& f) {
  v1::NetworkPath p;
  if (f.direction == "to") {
    p.set_direction(v1::DIRECTION_TO);
  } else if (f.direction == "from") {
    p.set_direction(v1::DIRECTION_FROM);
  } else if (f.direction == "both") {
    p.set_direction(v1::DIRECTION_BOTH);
  } else {
    return Error::invalid_argument("--direction",
                                   "\"" + f.direction + "\" is not to, from or both");
  }
  p.set_interface(f.interface);
  auto* s = p.mutable_scope();
  for (const auto& c : f.remote) s->add_remote_cidrs(c);
  for (const auto& c : f.local) s->add_local_cidrs(c);
  for (const auto& r : f.remote_ports) {
    NQ_ASSIGN_OR_RETURN(*s->add_remote_ports(), parse_port_range(r, "--remote-port"));
  }
  for (const auto& r : f.local_ports) {
    NQ_ASSIGN_OR_RETURN(*s->add_local_ports(), parse_port_range(r, "--local-port"));
  }
  if (f.protocol == "tcp") {
    s->set_protocol(v1::PROTOCOL_TCP);
  } else if (f.protocol == "udp") {
    s->set_protocol(v1::PROTOCOL_UDP);
  } else if (f.protocol == "icmp") {
    s->set_protocol(v1::PROTOCOL_ICMP);
  } else if (f.protocol != "any") {
    return Error::invalid_argument("--protocol",
                                   "\"" + f.protocol + "\" is not tcp, udp, icmp or any");
  }
  return p;
}

// "30%" -> percent 30; anything else a size ("256Mi", "1G").
Status size_or_percent(const std::string& text, const std::string& flag, uint64_t& bytes,
                       double& percent) {
  if (!text.empty() && text.back() == '%') {
    try {
      percent = std::stod(text.substr(0, text.size() - 1));
    } catch (const std::exception&) {
      return Error::invalid_argument(flag, "\"" + text + "\" is not a percentage (30%)");
    }
    return ok();
  }
  NQ_ASSIGN_OR_RETURN(bytes, parse_bytes(text, flag));
  return ok();
}

// The workload fault the flags ask for, or nullopt when they ask for none.
Result<std::optional<v1::FaultSpec>> workload_from_flags(const AgentFlags& f) {
  std::vector<v1::FaultSpec> specs;
  if (f.cpu_stress > 0) {
    auto* c = specs.emplace_back().mutable_cpu_stress();
    c->set_load(f.cpu_stress);
    c->set_workers(f.workers);
  }
  if (!f.memory_stress.empty()) {
    uint64_t bytes = 0;
    double percent = 0;
    NQ_TRY(size_or_percent(f.memory_stress, "--memory-stress", bytes, percent));
    auto* m = specs.emplace_back().mutable_memory_stress();
    m->set_bytes(bytes);
    m->set_percent(percent);
  }
  if (f.container_kill) specs.emplace_back().mutable_container_kill();
  if (f.pod_kill) specs.emplace_back().mutable_pod_kill();
  if (f.pod_failure) specs.emplace_back().mutable_pod_failure();
  if (!f.io_errno.empty()) {
    auto* e = specs.emplace_back().mutable_io_errno();
    e->set_path(f.io_path);
    e->set_error(f.io_errno);
    e->set_percent(f.io_percent);
    for (const auto& op : f.io_ops) {
      if (op == "open") {
        e->add_operations(v1::IO_OPERATION_OPEN);
      } else if (op == "read") {
        e->add_operations(v1::IO_OPERATION_READ);
      } else if (op == "write") {
        e->add_operations(v1::IO_OPERATION_WRITE);
      } else {
        return Error::invalid_argument("--op", "\"" + op + "\" is not open, read or write");
      }
    }
  }
  if (f.io_throttle) {
    auto* t = specs.emplace_back().mutable_io_throttle();
    t->set_path(f.io_path);
    if (!f.read_bps.empty()) {
      NQ_ASSIGN_OR_RETURN(uint64_t v, parse_bytes(f.read_bps, "--read-bps"));
      t->set_read_bytes_per_second(v);
    }
    if (!f.write_bps.empty()) {
      NQ_ASSIGN_OR_RETURN(uint64_t v, parse_bytes(f.write_bps, "--write-bps"));
      t->set_write_bytes_per_second(v);
    }
    t->set_read_iops(f.read_iops);
    t->set_write_iops(f.write_iops);
  }
  if (!f.disk_fill.empty()) {
    uint64_t bytes = 0;
    double percent = 0;
    NQ_TRY(size_or_percent(f.disk_fill, "--disk-fill", bytes, percent));
    auto* d = specs.emplace_back().mutable_disk_fill();
    d->set_path(f.io_path);
    d->set_bytes(bytes);
    d->set_percent(percent);
  }
  if (specs.size() > 1) return Error::invalid_argument("fault", "choose one fault per injection");
  if (specs.empty()) return std::optional<v1::FaultSpec>();
  return std::optional<v1::FaultSpec>(std::move(specs.front()));
}

Result<v1::ApplyRequest> request_from_flags(const AgentFlags& f) {
  v1::ApplyRequest req;
  if (!f.file.empty()) {
    std::ifstream in(f.file);
    if (!in) return Error::from_errno(errno, "open " + f.file);
    std::stringstream text;
    text << in.rdbuf();
    auto st = google::protobuf::util::JsonStringToMessage(text.str(), &req);
    if (!st.ok()) return Error::invalid_argument(f.file, std::string(st.message()));
    return req;
  }
  req.set_id(f.id);
  const auto slash = f.pod.find('/');
  if (slash == std::string::npos)
    return Error::invalid_argument("--pod", "expected NAMESPACE/NAME");
  req.mutable_target()->mutable_pod()->set_namespace_(f.pod.substr(0, slash));
  req.mutable_target()->mutable_pod()->set_name(f.pod.substr(slash + 1));
  for (const auto& c : f.containers) req.mutable_target()->add_containers(c);
  NQ_ASSIGN_OR_RETURN(auto ttl, parse_duration(f.ttl));
  *req.mutable_ttl() = proto_duration(ttl);
  if (!f.lease_holder.empty()) {
    NQ_ASSIGN_OR_RETURN(auto lease, parse_duration(f.lease));
    req.mutable_lease()->set_holder(f.lease_holder);
    *req.mutable_lease()->mutable_duration() = proto_duration(lease);
  }
  NQ_ASSIGN_OR_RETURN(v1::NetworkPath path, path_from_flags(f));
  NQ_ASSIGN_OR_RETURN(auto workload, workload_from_flags(f));
  const bool netem =
      !f.delay.empty() || f.loss >= 0 || f.duplicate > 0 || f.corrupt > 0 || f.reorder > 0;
  const int kinds =
      int(f.partition) + int(!f.bandwidth.empty()) + int(netem) + int(workload.has_value());
  if (kinds != 1)
    return Error::invalid_argument(
        "fault",
        "choose exactly one of --partition, --bandwidth RATE, netem flags "
        "(--delay/--loss/--duplicate/--corrupt/--reorder), --cpu-stress, --memory-stress, "
        "--container-kill, --pod-kill, --pod-failure, --io-errno, --io-throttle, --disk-fill");
  if (!f.engine.empty() && !netem)
    return Error::invalid_argument("--engine", "applies to netem faults (--delay, --loss, ...)");
  if (workload) {
    *req.mutable_spec() = std::move(*workload);
    return req;
  }
  if (f.partition) {
    *req.mutable_spec()->mutable_partition()->mutable_path() = path;
  } else if (!f.bandwidth.empty()) {
    auto* b = req.mutable_spec()->mutable_bandwidth();
    *b->mutable_path() = path;
    NQ_ASSIGN_OR_RETURN(uint64_t rate, parse_rate(f.bandwidth, "--bandwidth"));
    b->set_rate_bps(rate);
    if (!f.buffer.empty()) {
      NQ_ASSIGN_OR_RETURN(uint64_t v, parse_bytes(f.buffer, "--buffer"));
      b->set_buffer_bytes(static_cast<uint32_t>(v));
    }
    if (!f.limit.empty()) {
      NQ_ASSIGN_OR_RETURN(uint64_t v, parse_bytes(f.limit, "--limit"));
      b->set_limit_bytes(static_cast<uint32_t>(v));
    }
  } else {
    auto* n = req.mutable_spec()->mutable_netem();
    *n->mutable_path() = path;
    if (!f.delay.empty()) {
      NQ_ASSIGN_OR_RETURN(auto d, parse_duration(f.delay));
      *n->mutable_delay() = proto_duration(d);
    }
    if (!f.jitter.empty()) {
      NQ_ASSIGN_OR_RETURN(auto j, parse_duration(f.jitter));
      *n->mutable_jitter() = proto_duration(j);
    }
    if (f.distribution == "normal") {
      n->set_distribution(v1::DELAY_DISTRIBUTION_NORMAL);
    } else if (f.distribution == "pareto") {
      n->set_distribution(v1::DELAY_DISTRIBUTION_PARETO);
    } else if (f.distribution == "paretonormal") {
      n->set_distribution(v1::DELAY_DISTRIBUTION_PARETONORMAL);
    } else if (!f.distribution.empty() && f.distribution != "uniform") {
      return Error::invalid_argument(
          "--distribution",
          "\"" + f.distribution + "\" is not uniform, normal, pareto or paretonormal");
    }
    n->set_delay_correlation(f.correlation);
    if (f.loss >= 0) n->set_loss(f.loss);
    n->set_loss_correlation(f.loss_correlation);
    n->set_duplicate(f.duplicate);
    n->set_corrupt(f.corrupt);
    n->set_reorder(f.reorder);
    n->set_gap(f.gap);
    n->set_limit(f.queue_limit);
    n->set_delay_each_direction(f.delay_each_direction);
    if (f.engine == "netem") {
      n->set_engine(v1::NETEM_ENGINE_NETEM);
    } else if (f.engine == "ebpf") {
      n->set_engine(v1::NETEM_ENGINE_EBPF);
    } else if (!f.engine.empty() && f.engine != "auto") {
      return Error::invalid_argument("--engine", "\"" + f.engine + "\" is not auto, netem or ebpf");
    }
  }
  return req;
}

std::string ts(const google::protobuf::Timestamp& t) {
  return TimeUtil::ToString(t);
}

void print_injection(const v1::Injection& inj) {
  const auto& pod = inj.target().pod();
  std::printf("%-28s %-10s %s/%s  %s", inj.id().c_str(), inj.kind().c_str(),
              pod.namespace_().c_str(), pod.name().c_str(),
              inj.state() == v1::INJECTION_STATE_ACTIVE
                  ? ("until " + ts(inj.expires_at())).c_str()
                  : ("reverted (" + inj.revert_reason() + ")").c_str());
  if (inj.has_lease()) std::printf("  lease %s", inj.lease().holder().c_str());
  std::printf("\n");
  for (const auto& [k, v] : inj.details()) std::printf("    %-14s %s\n", k.c_str(), v.c_str());
}

void print_killswitch(const v1::KillSwitchStatus& ks) {
  if (ks.engaged())
    std::printf("kill switch: ENGAGED by %s since %s (%s): new injections are refused\n",
                ks.actor().c_str(), ts(ks.since()).c_str(), ks.reason().c_str());
  else
    std::printf("kill switch: released\n");
}

template <class Req, class Resp, class Call, class Print>
int unary(const AgentFlags& f, const char* rpc, const Req& req, Call call, Print print) {
  auto s = stub(f);
  if (!s.ok()) return fail(s.error());
  auto ctx = context(f);
  if (!ctx.ok()) return fail(ctx.error());
  Resp resp;
  grpc::Status st = call(**s, ctx->get(), req, &resp);
  if (!st.ok()) return fail_status(st, rpc);
  if (f.json) {
    print_json(resp);
  } else {
    print(resp);
  }
  return 0;
}

}  // namespace

void add_agent_commands(CLI::App& app, Context& ctx) {
  auto f = std::make_shared<AgentFlags>();
  auto* agent = app.add_subcommand("agent", "Talk to a node agent (Unix socket or mTLS)");
  agent->require_subcommand(1);
  agent->add_option("--agent", f->channel.target, "unix:///path or host:port")
      ->capture_default_str();
  agent->add_option("--tls-cert", f->channel.tls_cert_file, "Client certificate for TCP (PEM)");
  agent->add_option("--tls-key", f->channel.tls_key_file, "Client key (PEM)");
  agent->add_option("--tls-ca", f->channel.tls_ca_file, "CA of the agent's certificate (PEM)");
  agent->add_option("--server-name", f->channel.tls_server_name, "Expected agent certificate name");
  agent->add_option("--timeout", f->timeout, "RPC deadline")->capture_default_str();
  agent->add_flag("--json", f->json, "Print responses as JSON");

  auto* probe = agent->add_subcommand("probe", "Node facts and kernel capabilities");
  probe->callback([f, &ctx] {
    ctx.action = [f] {
      return unary<v1::ProbeRequest, v1::ProbeResponse>(
          *f, "Probe", v1::ProbeRequest{},
          [](auto& s, auto* c, const auto& r, auto* o) { return s.Probe(c, r, o); },
          [](const v1::ProbeResponse& r) {
            std::printf("node %s, kernel %s, agent %s, runtime %s %s\n", r.node().c_str(),
                        r.kernel_release().c_str(), r.agent_version().c_str(),
                        r.runtime().name().c_str(), r.runtime().version().c_str());
            for (const auto& c : r.capabilities())
              std::printf("  %-3s %-22s %s\n", c.available() ? "yes" : "NO", c.name().c_str(),
                          c.detail().c_str());
            std::printf("delay engine (netem faults, engine auto): %s (%s)\n",
                        r.delay_engine().empty() ? "none" : r.delay_engine().c_str(),
                        r.delay_engine_reason().c_str());
            print_killswitch(r.killswitch());
          });
    };
  });

  auto* targets = agent->add_subcommand("targets", "Pods on the node that match a selector");
  targets->add_option("-n,--namespace", f->namespaces, "Namespace (repeatable; default all)");
  targets->add_option("-l,--label", f->labels, "key=value label to match (repeatable)");
  targets->add_flag("--all", f->include_ineligible, "Also show pods the agent refuses, with why");
  targets->callback([f, &ctx] {
    ctx.action = [f] {
      v1::ListTargetsRequest req;
      for (const auto& ns : f->namespaces) req.mutable_selector()->add_namespaces(ns);
      for (const auto& l : f->labels) {
        const auto eq = l.find('=');
        if (eq == std::string::npos)
          return fail(Error::invalid_argument("--label", "expected key=value"));
        (*req.mutable_selector()->mutable_match_labels())[l.substr(0, eq)] = l.substr(eq + 1);
      }
      req.set_include_ineligible(f->include_ineligible);
      return unary<v1::ListTargetsRequest, v1::ListTargetsResponse>(
          *f, "ListTargets", req,
          [](auto& s, auto* c, const auto& r, auto* o) { return s.ListTargets(c, r, o); },
          [](const v1::ListTargetsResponse& r) {
            for (const auto& p : r.pods()) {
              std::printf(
                  "%-20s %-24s %-15s %s\n", p.ref().namespace_().c_str(), p.ref().name().c_str(),
                  p.ips_size() ? p.ips(0).c_str() : "-",
                  p.eligible() ? "eligible" : ("refused: " + p.ineligible_reason()).c_str());
            }
          });
    };
  });

  auto* apply = agent->add_subcommand("apply", "Inject one fault into one pod");
  apply->add_option("-f,--file", f->file, "ApplyRequest as JSON (instead of the flags)");
  apply->add_option("--id", f->id, "Injection id (Apply is idempotent on it)");
  apply->add_option("--pod", f->pod, "NAMESPACE/NAME");
  apply->add_option("--container", f->containers, "Container (repeatable; default all)");
  apply->add_option("--ttl", f->ttl, "Hard limit enforced by the agent")->capture_default_str();
  apply->add_option("--lease-holder", f->lease_holder, "Lease holder that must renew");
  apply->add_option("--lease", f->lease, "Lease duration")->capture_default_str();
  apply->add_flag("--partition", f->partition, "Drop matching packets (eBPF)");
  apply->add_option("--bandwidth", f->bandwidth, "Limit to RATE (tbf): 1mbit, 500kbit, 2mbps");
  apply->add_option("--buffer", f->buffer, "tbf bucket size (bytes)");
  apply->add_option("--limit", f->limit, "tbf queue limit (bytes)");
  apply->add_option("--delay", f->delay, "netem delay (500ms)");
  apply->add_option("--jitter", f->jitter, "netem jitter (100ms)");
  apply->add_option("--distribution", f->distribution, "uniform, normal, pareto, paretonormal");
  apply->add_option("--correlation", f->correlation, "delay correlation %");
  apply->add_option("--loss", f->loss, "loss %");
  apply->add_option("--loss-correlation", f->loss_correlation, "loss correlation %");
  apply->add_option("--duplicate", f->duplicate, "duplicate %");
  apply->add_option("--corrupt", f->corrupt, "corrupt %");
  apply->add_option("--reorder", f->reorder, "reorder %");
  apply->add_option("--gap", f->gap, "reorder gap");
  apply->add_option("--queue-limit", f->queue_limit, "netem queue limit (packets)");
  apply->add_option("--engine", f->engine,
                    "What delays the packets: auto (netem where the kernel has it, else the "
                    "eBPF delay line), netem, ebpf");
  apply->add_flag("--delay-each-direction", f->delay_each_direction,
                  "With --direction both: full delay each way (round trip grows twice)");
  apply->add_option("--direction", f->direction, "to (egress), from (ingress), both")
      ->capture_default_str();
  apply->add_option("--remote", f->remote, "Peer CIDR (repeatable; default any)");
  apply->add_option("--local", f->local, "Pod-side CIDR (repeatable)");
  apply->add_option("--remote-port", f->remote_ports, "Peer port or range (repeatable)");
  apply->add_option("--local-port", f->local_ports, "Pod-side port or range (repeatable)");
  apply->add_option("--protocol", f->protocol, "tcp, udp, icmp, any")->capture_default_str();
  apply->add_option("--interface", f->interface, "Interface in the pod (default eth0)");
  apply->add_option("--cpu-stress", f->cpu_stress, "CPU load, % of the container's limit");
  apply->add_option("--workers", f->workers, "CPU stress threads (default: the limit's CPUs)");
  apply->add_option("--memory-stress", f->memory_stress, "Memory to hold: 256Mi or 50%");
  apply->add_flag("--container-kill", f->container_kill, "SIGKILL the container's processes");
  apply->add_flag("--pod-kill", f->pod_kill, "SIGKILL every container of the pod");
  apply->add_flag("--pod-failure", f->pod_failure, "Freeze the pod until revert");
  apply->add_option("--io-errno", f->io_errno, "Fail file calls under --path: EIO, ENOSPC, ...");
  apply->add_option("--percent", f->io_percent, "Share of matching calls that fail (--io-errno)");
  apply->add_option("--op", f->io_ops, "open, read, write (repeatable; --io-errno)");
  apply->add_flag("--io-throttle", f->io_throttle, "Throttle the block device behind --path");
  apply->add_option("--read-bps", f->read_bps, "Read bytes/s (--io-throttle): 1Mi");
  apply->add_option("--write-bps", f->write_bps, "Write bytes/s (--io-throttle)");
  apply->add_option("--read-iops", f->read_iops, "Read IOPS (--io-throttle)");
  apply->add_option("--write-iops", f->write_iops, "Write IOPS (--io-throttle)");
  apply->add_option("--disk-fill", f->disk_fill, "Fill the file system at --path: 1Gi or 90%");
  apply->add_option("--path", f->io_path, "Path inside the container (I/O faults)");
  apply->callback([f, &ctx] {
    ctx.action = [f] {
      auto req = request_from_flags(*f);
      if (!req.ok()) return fail(req.error());
      return unary<v1::ApplyRequest, v1::ApplyResponse>(
          *f, "Apply", *req,
          [](auto& s, auto* c, const auto& r, auto* o) { return s.Apply(c, r, o); },
          [](const v1::ApplyResponse& r) {
            std::printf("%s ", r.created() ? "applied" : "already active:");
            print_injection(r.injection());
          });
    };
  });

  auto* revert = agent->add_subcommand("revert", "Revert one injection");
  revert->add_option("id", f->target_id, "Injection id")->required();
  revert->callback([f, &ctx] {
    ctx.action = [f] {
      v1::RevertRequest req;
      req.set_id(f->target_id);
      return unary<v1::RevertRequest, v1::RevertResponse>(
          *f, "Revert", req,
          [](auto& s, auto* c, const auto& r, auto* o) { return s.Revert(c, r, o); },
          [](const v1::RevertResponse& r) { print_injection(r.injection()); });
    };
  });

  auto* list = agent->add_subcommand("list", "Active injections and the kill switch");
  list->callback([f, &ctx] {
    ctx.action = [f] {
      return unary<v1::ListRequest, v1::ListResponse>(
          *f, "List", v1::ListRequest{},
          [](auto& s, auto* c, const auto& r, auto* o) { return s.List(c, r, o); },
          [](const v1::ListResponse& r) {
            if (r.injections().empty()) std::printf("no active injections\n");
            for (const auto& inj : r.injections()) print_injection(inj);
            print_killswitch(r.killswitch());
          });
    };
  });

  auto* renew = agent->add_subcommand("renew", "Renew the lease of every injection of a holder");
  renew->add_option("holder", f->holder, "Lease holder")->required();
  renew->add_option("--duration", f->duration, "New lease duration (default: unchanged)");
  renew->callback([f, &ctx] {
    ctx.action = [f] {
      v1::RenewLeaseRequest req;
      req.set_holder(f->holder);
      if (!f->duration.empty()) {
        auto d = parse_duration(f->duration);
        if (!d.ok()) return fail(d.error());
        *req.mutable_duration() = proto_duration(*d);
      }
      return unary<v1::RenewLeaseRequest, v1::RenewLeaseResponse>(
          *f, "RenewLease", req,
          [](auto& s, auto* c, const auto& r, auto* o) { return s.RenewLease(c, r, o); },
          [](const v1::RenewLeaseResponse& r) {
            std::printf("renewed %u injection(s)\n", r.renewed());
          });
    };
  });

  auto* kill =
      agent->add_subcommand("revert-all", "Kill switch: revert everything, refuse new injections");
  kill->alias("killswitch");
  kill->add_option("--reason", f->reason, "Why (recorded)");
  kill->add_option("--actor", f->actor, "Who (recorded; default: the caller's identity)");
  kill->callback([f, &ctx] {
    ctx.action = [f] {
      v1::RevertAllRequest req;
      req.set_reason(f->reason);
      req.set_actor(f->actor);
      return unary<v1::RevertAllRequest, v1::RevertAllResponse>(
          *f, "RevertAll", req,
          [](auto& s, auto* c, const auto& r, auto* o) { return s.RevertAll(c, r, o); },
          [](const v1::RevertAllResponse& r) {
            std::printf("reverted %d injection(s)\n", r.reverted_size());
            for (const auto& inj : r.reverted()) print_injection(inj);
            for (const auto& fl : r.failures())
              std::printf("FAILED %s: %s\n", fl.id().c_str(), fl.error().c_str());
            print_killswitch(r.killswitch());
          });
    };
  });

  auto* release = agent->add_subcommand("release", "Lift the kill switch");
  release->add_option("--actor", f->actor, "Who (recorded)");
  release->callback([f, &ctx] {
    ctx.action = [f] {
      v1::ReleaseRequest req;
      req.set_actor(f->actor);
      return unary<v1::ReleaseRequest, v1::ReleaseResponse>(
          *f, "Release", req,
          [](auto& s, auto* c, const auto& r, auto* o) { return s.Release(c, r, o); },
          [](const v1::ReleaseResponse& r) { print_killswitch(r.killswitch()); });
    };
  });
}

}  // namespace nq::nqctl

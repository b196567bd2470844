// The spec of NetworkChaos, StressChaos, IOChaos and PodChaos.
#include <cstring>

#include "common/cidr.h"
#include "controller/experiment/parse_internal.h"

namespace nq::experiment::detail {
namespace {

std::optional<PercentWithCorrelation> parse_pwc(Fields& spec, std::string_view key) {
  YAML::Node n = spec.take(key);
  if (!n.IsDefined()) return std::nullopt;
  Fields f(spec.diag(), n, spec.path_of(key));
  PercentWithCorrelation out;
  // Chaos Mesh's own names: loss.loss, duplicate.duplicate, corrupt.corrupt.
  out.percent = f.percent(key, true).value_or(0);
  out.correlation = f.percent("correlation").value_or(0);
  f.finish();
  return out;
}

std::optional<Delay> parse_delay(Fields& spec) {
  YAML::Node n = spec.take("delay");
  if (!n.IsDefined()) return std::nullopt;
  Fields f(spec.diag(), n, "spec.delay");
  Delay d;
  d.latency = f.duration("latency", true).value_or(nanoseconds(0));
  d.jitter = f.duration("jitter").value_or(nanoseconds(0));
  d.correlation = f.percent("correlation").value_or(0);
  d.distribution =
      f.choice<Distribution>("distribution", {{"uniform", Distribution::kUniform},
                                              {"normal", Distribution::kNormal},
                                              {"pareto", Distribution::kPareto},
                                              {"paretonormal", Distribution::kParetoNormal}})
          .value_or(Distribution::kUniform);
  if (YAML::Node r = f.take("reorder"); r.IsDefined()) {
    Fields rf(spec.diag(), r, "spec.delay.reorder");
    Reorder ro;
    ro.percent = rf.percent("reorder", true).value_or(0);
    ro.correlation = rf.percent("correlation").value_or(0);
    ro.gap = static_cast<uint32_t>(rf.uint("gap", 0, 1u << 30).value_or(0));
    rf.finish();
    d.reorder = ro;
  }
  f.finish();
  return d;
}

bool parse_network(Fields& spec, NetworkSpec& net) {
  Diagnostics& diag = spec.diag();
  const size_t before = diag.size();
  net.action = spec.choice<NetworkAction>("action",
                                          {{"netem", NetworkAction::kNetem},
                                           {"delay", NetworkAction::kDelay},
                                           {"loss", NetworkAction::kLoss},
                                           {"duplicate", NetworkAction::kDuplicate},
                                           {"corrupt", NetworkAction::kCorrupt},
                                           {"partition", NetworkAction::kPartition},
                                           {"bandwidth", NetworkAction::kBandwidth}},
                                          true)
                   .value_or(NetworkAction::kNetem);
  const bool action_ok = diag.size() == before;
  net.direction = spec.choice<Direction>("direction", {{"to", Direction::kTo},
                                                       {"from", Direction::kFrom},
                                                       {"both", Direction::kBoth}})
                      .value_or(Direction::kTo);
  if (YAML::Node t = spec.take("target"); t.IsDefined()) {
    Fields tf(diag, t, "spec.target");
    PodTarget target;
    if (YAML::Node s = tf.take("selector"); s.IsDefined()) {
      if (auto sel = parse_selector(diag, s, "spec.target.selector")) target.selector = *sel;
    } else {
      tf.required("selector");
    }
    if (auto m = parse_mode(tf, true)) target.mode = *m;
    tf.finish();
    net.target = std::move(target);
  }
  if (auto ext = spec.str_list("externalTargets")) {
    YAML::Node list = spec.take("externalTargets");
    for (size_t i = 0; i < ext->size(); ++i) {
      auto cidr = parse_cidr((*ext)[i]);
      if (!cidr.ok()) {
        spec.error(list[i], "spec.externalTargets[" + std::to_string(i) + "]",
                   "\"" + (*ext)[i] +
                       "\" is not an IP address or CIDR (nodequake does not resolve host names: "
                       "the agents match packets by address)");
        continue;
      }
      net.external_targets.push_back(cidr->str());
    }
  }
  net.device = spec.str("device").value_or("");
  const bool engine_given = spec.has("engine");
  net.engine = spec.choice<NetemEngine>("engine", {{"auto", NetemEngine::kAuto},
                                                   {"netem", NetemEngine::kNetem},
                                                   {"ebpf", NetemEngine::kEbpf}})
                   .value_or(NetemEngine::kAuto);
  spec.reject("targetDevice", "the peers' interface is not shaped; use direction: both");
  spec.reject("remoteCluster", "one cluster per controller");
  net.delay = parse_delay(spec);
  net.loss = parse_pwc(spec, "loss");
  net.duplicate = parse_pwc(spec, "duplicate");
  net.corrupt = parse_pwc(spec, "corrupt");
  if (YAML::Node b = spec.take("bandwidth"); b.IsDefined()) {
    Fields bf(diag, b, "spec.bandwidth");
    Bandwidth bw;
    bw.rate_bps = bf.rate("rate", true).value_or(0);
    // Chaos Mesh gives limit and buffer in bytes (tc's tbf limit/burst).
    const YAML::Node limit_node = bf.take("limit");
    const YAML::Node buffer_node = bf.take("buffer");
    auto limit = bf.bytes("limit");
    auto buffer = bf.bytes("buffer");
    if (limit && *limit > UINT32_MAX) bf.error(limit_node, "spec.bandwidth.limit", "too large");
    if (buffer && *buffer > UINT32_MAX) bf.error(buffer_node, "spec.bandwidth.buffer", "too large");
    bw.limit_bytes = static_cast<uint32_t>(limit.value_or(0));
    bw.buffer_bytes = static_cast<uint32_t>(buffer.value_or(0));
    bf.reject("peakrate", "the agent's tbf has no peak rate");
    bf.reject("minburst", "the agent's tbf has no peak rate");
    bf.finish();
    net.bandwidth = bw;
  }
  if (!action_ok) return false;

  // Which blocks each action uses. Chaos Mesh ignores the others; here they
  // are errors, since a "loss" that silently does nothing misleads.
  struct Block {
    const char* name;
    bool present;
    bool allowed;
  };
  const NetworkAction a = net.action;
  const bool netem = a == NetworkAction::kNetem;
  const Block blocks[] = {
      {"delay", net.delay.has_value(), netem || a == NetworkAction::kDelay},
      {"loss", net.loss.has_value(), netem || a == NetworkAction::kLoss},
      {"duplicate", net.duplicate.has_value(), netem || a == NetworkAction::kDuplicate},
      {"corrupt", net.corrupt.has_value(), netem || a == NetworkAction::kCorrupt},
      {"bandwidth", net.bandwidth.has_value(), a == NetworkAction::kBandwidth},
  };
  bool any_netem = false;
  for (const Block& b : blocks) {
    if (b.present && !b.allowed) {
      const bool netem_block = std::strcmp(b.name, "bandwidth") != 0;
      spec.error(
          spec.take(b.name), std::string("spec.") + b.name,
          "not used by action " + std::string(network_action_name(a)) + "; set action: " + b.name +
              (netem_block ? " (or netem to combine delay, loss, duplicate and corrupt)" : ""));
    }
    if (b.present && std::strcmp(b.name, "bandwidth") != 0) any_netem = true;
  }
  auto need = [&](bool present, const char* block) {
    if (!present)
      diag.add(spec.line(), std::string("spec.") + block,
               std::string("is required by action ") + block);
  };
  switch (a) {
    case NetworkAction::kNetem:
      if (!any_netem)
        diag.add(spec.line(), "spec",
                 "action netem needs at least one of delay, loss, duplicate, corrupt");
      break;
    case NetworkAction::kDelay:
      need(net.delay.has_value(), "delay");
      break;
    case NetworkAction::kLoss:
      need(net.loss.has_value(), "loss");
      break;
    case NetworkAction::kDuplicate:
      need(net.duplicate.has_value(), "duplicate");
      break;
    case NetworkAction::kCorrupt:
      need(net.corrupt.has_value(), "corrupt");
      break;
    case NetworkAction::kBandwidth:
      need(net.bandwidth.has_value(), "bandwidth");
      break;
    case NetworkAction::kPartition:
      break;
  }
  if (engine_given && (a == NetworkAction::kPartition || a == NetworkAction::kBandwidth))
    spec.error(spec.take("engine"), "spec.engine",
               "not used by action " + std::string(network_action_name(a)) +
                   "; it chooses what delays netem-style actions (netem, delay, loss, "
                   "duplicate, corrupt)");
  if (net.delay && net.delay->reorder && net.delay->latency.count() == 0)
    diag.add(spec.line(), "spec.delay.reorder",
             "needs a latency: netem reorders by sending some packets without the delay");
  return diag.size() == before;
}

std::optional<std::string> errno_name(const std::string& text) {
  // glibc knows every errno's name; no table of our own to drift.
  if (auto n = parse_uint(text)) {
    if (*n == 0 || *n > 4095) return std::nullopt;
    const char* name = strerrorname_np(static_cast<int>(*n));
    if (name == nullptr) return std::nullopt;
    return std::string(name);
  }
  for (int e = 1; e < 200; ++e) {
    const char* name = strerrorname_np(e);
    if (name != nullptr && text == name) return text;
  }
  return std::nullopt;
}

bool valid_container_path(Fields& f, const YAML::Node& at, const std::string& field,
                          const std::string& path) {
  if (path.empty() || path.front() != '/') {
    f.error(at, field, "\"" + path + "\" must be an absolute path inside the container");
    return false;
  }
  if (path.find_first_of("*?[") != std::string::npos) {
    f.error(at, field,
            "not supported by nodequake: glob patterns; give the directory or file (everything "
            "below a directory is affected)");
    return false;
  }
  return true;
}

bool parse_io(Fields& spec, IoSpec& io) {
  Diagnostics& diag = spec.diag();
  const size_t before = diag.size();
  YAML::Node action_node = spec.take("action");
  bool action_ok = false;
  if (action_node.IsDefined() && action_node.IsScalar() &&
      (action_node.Scalar() == "latency" || action_node.Scalar() == "attrOverride" ||
       action_node.Scalar() == "mistake")) {
    const std::string& a = action_node.Scalar();
    spec.error(action_node, "spec.action",
               a == "latency" ? "not supported by nodequake: I/O latency needs a FUSE layer the "
                                "agent does not install; use action throttle to slow a volume down"
                              : "not supported by nodequake: " + a);
  } else {
    io.action = spec.choice<IoAction>("action",
                                      {{"fault", IoAction::kFault},
                                       {"throttle", IoAction::kThrottle},
                                       {"disk-fill", IoAction::kDiskFill}},
                                      true)
                    .value_or(IoAction::kFault);
    action_ok = diag.size() == before;
  }
  YAML::Node vp = spec.take("volumePath");
  if (auto v = spec.str("volumePath", true);
      v && valid_container_path(spec, vp, "spec.volumePath", *v))
    io.volume_path = *v;
  YAML::Node pn = spec.take("path");
  if (auto p = spec.str("path"); p && valid_container_path(spec, pn, "spec.path", *p)) {
    io.path = *p;
    const std::string& base = io.volume_path;
    if (!base.empty() &&
        !(io.path == base || io.path.rfind(base == "/" ? base : base + "/", 0) == 0))
      spec.error(pn, "spec.path", "\"" + io.path + "\" is not under volumePath " + base);
  }
  io.containers = spec.str_list("containerNames").value_or(std::vector<std::string>{});
  spec.reject("delay", "I/O latency (see action)");
  spec.reject("attr", "attrOverride");
  spec.reject("mistake", "mistake");

  const YAML::Node errno_node = spec.take("errno");
  auto err = spec.str("errno");
  auto percent = spec.uint("percent", 1, 100);
  const YAML::Node methods_node = spec.take("methods");
  auto methods = spec.str_list("methods");
  const YAML::Node throttle_node = spec.take("throttle");
  const YAML::Node fill_node = spec.take("fill");
  if (!action_ok) return false;

  auto only_for = [&](const YAML::Node& n, const char* field, const char* action) {
    if (n.IsDefined())
      spec.error(n, std::string("spec.") + field, std::string("only used by action ") + action);
  };
  if (io.action != IoAction::kFault) {
    only_for(errno_node, "errno", "fault");
    only_for(spec.take("percent"), "percent", "fault");
    only_for(methods_node, "methods", "fault");
  }
  if (io.action != IoAction::kThrottle) only_for(throttle_node, "throttle", "throttle");
  if (io.action != IoAction::kDiskFill) only_for(fill_node, "fill", "disk-fill");

  switch (io.action) {
    case IoAction::kFault: {
      if (!err) {
        if (!errno_node.IsDefined()) spec.required("errno");
      } else if (auto name = errno_name(*err)) {
        io.error = *name;
      } else {
        spec.error(errno_node, "spec.errno",
                   "\"" + *err + "\" is not an errno (a number like 5, or a name like EIO)");
      }
      io.percent = static_cast<double>(percent.value_or(100));
      if (methods) {
        for (size_t i = 0; i < methods->size(); ++i) {
          const std::string& m = (*methods)[i];
          if (m == "open")
            io.methods.push_back(IoMethod::kOpen);
          else if (m == "read")
            io.methods.push_back(IoMethod::kRead);
          else if (m == "write")
            io.methods.push_back(IoMethod::kWrite);
          else
            spec.error(methods_node[i], "spec.methods[" + std::to_string(i) + "]",
                       "not supported by nodequake: \"" + m +
                           "\" (the agent can fail open, read and write)");
        }
      }
      break;
    }
    case IoAction::kThrottle: {
      if (!throttle_node.IsDefined()) {
        spec.required("throttle");
        break;
      }
      Fields t(diag, throttle_node, "spec.throttle");
      io.throttle.read_bytes_per_second = t.bytes("readBytesPerSecond").value_or(0);
      io.throttle.write_bytes_per_second = t.bytes("writeBytesPerSecond").value_or(0);
      io.throttle.read_iops = t.uint("readIOPS", 1, UINT32_MAX).value_or(0);
      io.throttle.write_iops = t.uint("writeIOPS", 1, UINT32_MAX).value_or(0);
      t.finish();
      const IoThrottle& th = io.throttle;
      if (t.is_map() && th.read_bytes_per_second == 0 && th.write_bytes_per_second == 0 &&
          th.read_iops == 0 && th.write_iops == 0)
        diag.add(t.line(), "spec.throttle",
                 "needs at least one of readBytesPerSecond, writeBytesPerSecond, readIOPS, "
                 "writeIOPS");
      break;
    }
    case IoAction::kDiskFill: {
      if (!fill_node.IsDefined()) {
        spec.required("fill");
        break;
      }
      Fields f(diag, fill_node, "spec.fill");
      auto size = f.bytes("size");
      auto pct = f.percent("percent");
      f.finish();
      if (f.is_map() && size.has_value() == pct.has_value())
        diag.add(f.line(), "spec.fill", "needs exactly one of size and percent");
      io.fill.bytes = size.value_or(0);
      io.fill.percent = pct.value_or(0);
      if (pct && *pct <= 0) diag.add(f.line(), "spec.fill.percent", "must be above 0");
      break;
    }
  }
  return diag.size() == before;
}

bool parse_stress(Fields& spec, StressSpec& st) {
  Diagnostics& diag = spec.diag();
  const size_t before = diag.size();
  st.containers = spec.str_list("containerNames").value_or(std::vector<std::string>{});
  spec.reject("stressngStressors",
              "free-form stress-ng options; use stressors.cpu and stressors.memory");
  YAML::Node s = spec.take("stressors");
  if (!s.IsDefined()) {
    spec.required("stressors");
    return false;
  }
  Fields sf(diag, s, "spec.stressors");
  if (YAML::Node c = sf.take("cpu"); c.IsDefined()) {
    Fields cf(diag, c, "spec.stressors.cpu");
    CpuStress cpu;
    cpu.workers = static_cast<uint32_t>(cf.uint("workers", 0, 1024).value_or(0));
    const YAML::Node load_node = cf.take("load");
    cpu.load = cf.percent("load", true).value_or(0);
    if (load_node.IsDefined() && cpu.load <= 0)
      cf.error(load_node, "spec.stressors.cpu.load", "must be above 0");
    cf.reject("options", "free-form stress-ng options");
    cf.finish();
    st.cpu = cpu;
  }
  if (YAML::Node m = sf.take("memory"); m.IsDefined()) {
    Fields mf(diag, m, "spec.stressors.memory");
    MemoryStress mem;
    mem.workers = static_cast<uint32_t>(mf.uint("workers", 1, 64).value_or(1));
    // Chaos Mesh's size is "256MB" or a percentage "50%" (of the memory
    // limit here: the container's, not the node's).
    YAML::Node size = mf.take("size");
    if (!size.IsDefined()) {
      mf.required("size");
    } else if (!size.IsScalar()) {
      mf.error(size, "spec.stressors.memory.size", "must be a single value");
    } else if (const std::string& text = size.Scalar(); !text.empty() && text.back() == '%') {
      auto p = parse_percent(text);
      if (!p || *p <= 0)
        mf.error(size, "spec.stressors.memory.size",
                 "\"" + text + "\" is not a percentage in 1..100");
      else if (*p * mem.workers > 100)
        mf.error(size, "spec.stressors.memory.size",
                 "workers x size is above 100% of the container's memory limit");
      else
        mem.percent = *p;
    } else {
      mem.bytes = mf.bytes("size").value_or(0);
      if (mem.bytes == 0 && diag.size() == before)
        mf.error(size, "spec.stressors.memory.size", "must be above 0");
    }
    mf.reject("options", "free-form stress-ng options");
    mf.reject("oomScoreAdj", "the stressor's OOM score is the agent's choice");
    mf.finish();
    st.memory = mem;
  }
  sf.finish();
  if (sf.is_map() && !st.cpu && !st.memory)
    diag.add(sf.line(), "spec.stressors", "needs cpu, memory or both");
  return diag.size() == before;
}

bool parse_pod(Fields& spec, PodSpec& pod) {
  Diagnostics& diag = spec.diag();
  const size_t before = diag.size();
  pod.action = spec.choice<PodAction>("action",
                                      {{"pod-kill", PodAction::kPodKill},
                                       {"container-kill", PodAction::kContainerKill},
                                       {"pod-failure", PodAction::kPodFailure}},
                                      true)
                   .value_or(PodAction::kPodKill);
  const bool action_ok = diag.size() == before;
  const YAML::Node names_node = spec.take("containerNames");
  pod.containers = spec.str_list("containerNames").value_or(std::vector<std::string>{});
  const YAML::Node grace = spec.take("gracePeriod");
  if (auto g = spec.uint("gracePeriod", 0, UINT32_MAX); g && *g != 0)
    spec.error(grace, "spec.gracePeriod",
               "not supported by nodequake: the agent kills with SIGKILL (gracePeriod 0)");
  if (!action_ok) return false;
  if (pod.action == PodAction::kContainerKill && pod.containers.empty() && !names_node.IsDefined())
    spec.required("containerNames");
  if (pod.action != PodAction::kContainerKill && names_node.IsDefined())
    spec.error(names_node, "spec.containerNames",
               "only used by action container-kill (pod-kill and pod-failure take the whole pod)");
  return diag.size() == before;
}

}  // namespace

bool parse_chaos_spec(Fields& spec, Experiment& exp) {
  Diagnostics& diag = spec.diag();
  const size_t before = diag.size();
  if (YAML::Node s = spec.take("selector"); s.IsDefined()) {
    if (auto sel = parse_selector(diag, s, "spec.selector")) exp.selector = *sel;
  } else {
    spec.required("selector");
  }
  if (auto m = parse_mode(spec, true)) exp.mode = *m;
  exp.duration = spec.duration("duration");
  if (exp.duration && exp.duration->count() == 0)
    diag.add(spec.line(), "spec.duration", "must be above 0");
  exp.abort_when = parse_abort_rules(spec);
  spec.reject("scheduler", "schedule runs from outside (cron, CI) and apply the experiment");
  switch (exp.kind) {
    case Kind::kNetworkChaos:
      parse_network(spec, exp.spec.emplace<NetworkSpec>());
      break;
    case Kind::kStressChaos:
      parse_stress(spec, exp.spec.emplace<StressSpec>());
      break;
    case Kind::kIOChaos:
      parse_io(spec, exp.spec.emplace<IoSpec>());
      break;
    case Kind::kPodChaos:
      parse_pod(spec, exp.spec.emplace<PodSpec>());
      break;
  }
  spec.finish();
  return diag.size() == before;
}

}  // namespace nq::experiment::detail

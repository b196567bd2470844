#include "agent/net/delay_faults.h"

#include <spdlog/spdlog.h>

#include <cstdio>

#include "agent/net/links.h"
#include "agent/net/netlink.h"
#include "common/netns.h"

namespace nq::net {
namespace {

namespace jr = nodequake::v1::journal;

std::string key_for(const Netns& netns, const std::string& ifname) {
  return std::to_string(netns.id().dev) + ":" + std::to_string(netns.id().ino) + "/" + ifname +
         "/delay";
}

std::string count(uint64_t v) {
  return std::to_string(v);
}

}  // namespace

DelayLineFaults::DelayLineFaults(core::RecordSink journal, delay::DelayLineOptions options)
    : journal_(std::move(journal)), options_(std::move(options)) {}

DelayLineFaults::~DelayLineFaults() {
  for (auto& [id, held] : lines_) {
    if (Status st = held.line->stop(); !st.ok())
      spdlog::warn("delay line of {}: {}", id, st.error().message());
  }
}

std::string DelayLineFaults::tap_name_for(const std::string& id) {
  // FNV-1a: stable across builds, unlike std::hash.
  uint32_t h = 2166136261u;
  for (unsigned char c : id) h = (h ^ c) * 16777619u;
  char name[16];
  std::snprintf(name, sizeof(name), "nqdl%08x", h);
  return name;
}

std::string DelayLineFaults::ingress_tap_name(const std::string& tap) {
  if (tap.rfind("nqdl", 0) != 0) return "";
  return "nqdi" + tap.substr(4);
}

Result<core::Details> DelayLineFaults::apply(const std::string& id, const core::NetworkFault& fault,
                                             const runtime::PodInfo& pod) {
  if (!fault.delay_line)
    return Error::internal("netem fault " + id + " has engine ebpf but no delay line spec");
  if (pod.netns_path.empty())
    return Error::failed_precondition("pod " + pod.key() + " has no network namespace of its own");
  NQ_ASSIGN_OR_RETURN(delay::DelayLinePlan plan,
                      delay::plan_delay_line(*fault.delay_line, "spec.netem"));
  NQ_ASSIGN_OR_RETURN(Netns netns, Netns::open(pod.netns_path));
  const std::string key = key_for(netns, plan.ifname);
  for (const auto& [other, held] : lines_) {
    // Two TCX redirects on one interface would race for the same packets.
    if (held.key == key)
      return Error::failed_precondition("interface " + plan.ifname + " of pod " + pod.key() +
                                        " already carries the delay line of injection " + other +
                                        "; the eBPF engine does one netem fault per interface");
  }
  auto ifindex = run_in_netns(netns, [&]() -> Result<int> {
    NQ_ASSIGN_OR_RETURN(NlSocket sock, NlSocket::open_route());
    return link_index(sock, plan.ifname);
  });
  if (!ifindex.ok()) {
    if (ifindex.error().status_code() == Code::kNotFound)
      return Error::not_found("pod " + pod.key() + " has no interface " + plan.ifname);
    return std::move(ifindex).error();
  }

  delay::DelayLineOptions options = options_;
  options.tap_name = tap_name_for(id);
  options.ingress_tap_name = ingress_tap_name(options.tap_name);
  jr::Record owned;
  jr::LinkOwned* link = owned.mutable_link_owned();
  link->set_key(key);
  link->mutable_netns()->set_path(netns.path());
  link->mutable_netns()->set_dev(netns.id().dev);
  link->mutable_netns()->set_ino(netns.id().ino);
  link->set_ifname(plan.ifname);
  link->set_ifindex(*ifindex);
  link->set_delay_tap(options.tap_name);
  NQ_TRY(journal_(owned));

  auto line = delay::DelayLine::start(netns, plan, options);
  if (!line.ok()) {
    // start() leaves nothing behind: the TAP went with its fd.
    jr::Record released;
    released.mutable_link_released()->set_key(key);
    if (Status st = journal_(released); !st.ok())
      spdlog::warn("journal: {} (the next start checks for {} in vain)", st.error().message(),
                   options.tap_name);
    return std::move(line).error().wrapped("delay line on " + plan.ifname);
  }
  core::Details details;
  details["netns"] = netns.path();
  details["interface"] = plan.ifname;
  std::string taps;
  for (const std::string& t : (*line)->tap_names()) taps += (taps.empty() ? "" : ",") + t;
  details["tap"] = taps;
  details["attach"] = "tcx";
  lines_.emplace(id, Held{key, pod.key(), std::move(*line)});
  return details;
}

Status DelayLineFaults::release(const std::string& id, Held& held) {
  // stop() always removes the links and the TAP; an error is about frames
  // that could not be written out while draining.
  if (Status st = held.line->stop(); !st.ok())
    spdlog::warn("delay line of {} on {}: drain: {}", id, held.pod, st.error().message());
  jr::Record released;
  released.mutable_link_released()->set_key(held.key);
  return journal_(released);
}

Status DelayLineFaults::revert(const std::string& id) {
  auto it = lines_.find(id);
  if (it == lines_.end()) return ok();
  Status st = release(id, it->second);
  lines_.erase(it);
  if (!st.ok())
    spdlog::warn("journal: {} (the next start checks for the TAP of {} in vain)",
                 st.error().message(), id);
  return ok();
}

void DelayLineFaults::release_all() {
  for (auto& [id, held] : lines_) (void)release(id, held);
  lines_.clear();
}

core::Details DelayLineFaults::observe(const std::string& id) const {
  auto it = lines_.find(id);
  if (it == lines_.end()) return {};
  auto stats = it->second.line->stats();
  if (!stats.ok()) return {{"stats_error", stats.error().message()}};
  // Both directions' engines together (an engine a line lacks counts 0).
  const delay::EngineStats& out = stats->engine;
  const delay::EngineStats& in = stats->engine_ingress;
  delay::EngineStats e;
  e.frames_in = out.frames_in + in.frames_in;
  e.frames_out = out.frames_out + in.frames_out;
  e.held = out.held + in.held;
  e.dropped_full = out.dropped_full + in.dropped_full;
  e.cpu = out.cpu + in.cpu;
  for (size_t i = 0; i < e.lateness.size(); ++i) e.lateness[i] = out.lateness[i] + in.lateness[i];
  core::Details d;
  d["frames"] = count(e.frames_in);
  d["frames_out"] = count(e.frames_out);
  d["held"] = count(e.held);
  d["dropped_over_limit"] = count(e.dropped_full);
  d["late_p99_us"] = "<" + std::to_string(e.lateness_percentile(99).count());
  d["engine_cpu_ms"] =
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(e.cpu).count());
  d["engine_realtime"] = (out.realtime || in.realtime) ? "true" : "false";
  d["matched"] = count(stats->bpf.matched);
  d["lost"] = count(stats->bpf.lost);
  d["bypassed"] = count(stats->bpf.bypassed);
  d["duplicated"] = count(stats->bpf.duplicated);
  d["corrupted"] = count(stats->bpf.corrupted);
  return d;
}

Status DelayLineFaults::reconcile(const jr::LinkOwned& link) {
  if (link.delay_tap().empty()) return ok();
  auto netns = Netns::open(link.netns().path());
  if (!netns.ok()) {
    if (netns.error().status_code() == Code::kNotFound) return ok();  // the pod is gone
    return std::move(netns).error().wrapped("reconcile delay line " + link.delay_tap());
  }
  if (netns->id() != NsId{link.netns().dev(), link.netns().ino()}) return ok();  // replaced
  return run_in_netns(*netns, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(NlSocket sock, NlSocket::open_route());
    for (const std::string& tap : {link.delay_tap(), ingress_tap_name(link.delay_tap())}) {
      if (tap.empty()) continue;
      auto index = link_index(sock, tap);
      if (!index.ok()) {
        if (index.error().status_code() == Code::kNotFound) continue;  // gone with its fd
        return std::move(index).error();
      }
      // Something kept the TAP's fd open (a forked child?): the device
      // goes, and with it the TAP-side program's link.
      spdlog::warn("reconcile: delay-line TAP {} still exists in {}; deleting it", tap,
                   link.netns().path());
      NQ_TRY(delete_link(sock, tap));
    }
    return ok();
  });
}

}  // namespace nq::net

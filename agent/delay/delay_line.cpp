#include "agent/delay/delay_line.h"

#include "agent/net/netlink.h"

namespace nq::delay {
namespace {

struct Device {
  int ifindex = 0;
  unsigned mtu = 0;
};

Result<Device> device(const std::string& name) {
  NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
  rtnl_link* raw = nullptr;
  if (int rc = rtnl_link_get_kernel(sock.get(), 0, name.c_str(), &raw); rc < 0)
    return Error::from_netlink(rc, "interface " + name);
  net::LinkPtr link(raw);
  return Device{rtnl_link_get_ifindex(link.get()), rtnl_link_get_mtu(link.get())};
}

}  // namespace

Result<std::unique_ptr<DelayLine>> DelayLine::start(const Netns& netns, const DelayLinePlan& plan,
                                                    const DelayLineOptions& options) {
  if (plan.dirs == 0 || (plan.dirs & ~net::kBoth) != 0)
    return Error::invalid_argument("plan.dirs", "no direction to delay");
  std::unique_ptr<DelayLine> line(new DelayLine());
  DelaylineProgram::Options prog_options;
  prog_options.stale_after = plan.stale_after;
  // Verified outside the namespace: loading does not depend on it.
  NQ_ASSIGN_OR_RETURN(DelaylineProgram prog, DelaylineProgram::load(prog_options));
  NQ_TRY(prog.set_rules(plan.rules));
  const auto wanted = [&](Direction d) {
    return (plan.dirs & (d == Direction::kEgress ? net::kEgress : net::kIngress)) != 0;
  };
  for (Direction d : kDirections)
    if (wanted(d)) prog.configure(d, plan.rolls);
  line->prog_ = std::make_unique<DelaylineProgram>(std::move(prog));

  // The TAPs are created on a thread inside the pod's namespace, so they
  // live there; their fds work from any thread afterwards.
  NQ_ASSIGN_OR_RETURN(Device dev, run_in_netns(netns, [&]() -> Result<Device> {
                        NQ_ASSIGN_OR_RETURN(Device d, device(plan.ifname));
                        for (Direction dir : kDirections) {
                          if (!wanted(dir)) continue;
                          TapOptions tap_options;
                          tap_options.name = dir == Direction::kEgress ? options.tap_name
                                                                       : options.ingress_tap_name;
                          tap_options.vnet_hdr = options.vnet_hdr;
                          tap_options.mtu = d.mtu;
                          NQ_ASSIGN_OR_RETURN(TapDevice tap, TapDevice::create(tap_options));
                          line->taps_[static_cast<size_t>(dir)] =
                              std::make_unique<TapDevice>(std::move(tap));
                        }
                        return d;
                      }));
  line->ifindex_ = dev.ifindex;
  DelaylineProgram* p = line->prog_.get();
  for (Direction d : kDirections) {
    const size_t i = static_cast<size_t>(d);
    if (!line->taps_[i]) continue;
    line->tap_names_.push_back(line->taps_[i]->name());
    line->tap_ifindex_[i] = line->taps_[i]->ifindex();
    // The engines run (and beat) before the program can send them anything.
    EngineConfig config;
    config.model = plan.model;
    config.limit = plan.limit;
    config.preserve_order = plan.preserve_order;
    config.heartbeat_period = plan.heartbeat_period;
    config.vnet_hdr_len = line->taps_[i]->vnet_hdr_len();
    // Two directions, two independent streams of samples (as two qdiscs).
    config.seed = options.seed ? options.seed + i : 0;
    config.realtime_priority = options.realtime_priority;
    NQ_ASSIGN_OR_RETURN(line->engines_[i],
                        DelayEngine::start(line->taps_[i]->fd(), config,
                                           [p, d](uint64_t now_ns) { p->beat(d, now_ns); }));
  }
  const auto& taps = line->tap_ifindex_;
  NQ_TRY(run_in_netns(netns, [&]() -> Status {
    return line->prog_->attach(line->ifindex_, taps[NQ_IDX_EGRESS], taps[NQ_IDX_INGRESS]);
  }));
  return line;
}

DelayLine::~DelayLine() {
  (void)stop();
}

Status DelayLine::stop() {
  if (prog_) prog_->detach_interface();
  // Kept (stopped) for their counters.
  for (auto& engine : engines_)
    if (engine) (void)engine->drain_and_stop();
  if (prog_) prog_->detach();
  for (auto& tap : taps_) tap.reset();
  return ok();
}

Result<DelayLineStats> DelayLine::stats() const {
  DelayLineStats s;
  if (engines_[NQ_IDX_EGRESS]) s.engine = engines_[NQ_IDX_EGRESS]->stats();
  if (engines_[NQ_IDX_INGRESS]) s.engine_ingress = engines_[NQ_IDX_INGRESS]->stats();
  if (prog_) {
    for (Direction d : kDirections) {
      NQ_ASSIGN_OR_RETURN(nq_dl_stats one, prog_->stats(d));
      s.bpf_dir[static_cast<size_t>(d)] = one;
      s.bpf.matched += one.matched;
      s.bpf.redirected += one.redirected;
      s.bpf.lost += one.lost;
      s.bpf.bypassed += one.bypassed;
      s.bpf.returned += one.returned;
      s.bpf.duplicated += one.duplicated;
      s.bpf.corrupted += one.corrupted;
    }
  }
  return s;
}

}  // namespace nq::delay

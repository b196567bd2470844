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
  std::unique_ptr<DelayLine> line(new DelayLine());
  DelaylineProgram::Options prog_options;
  prog_options.stale_after = plan.stale_after;
  // Verified outside the namespace: loading does not depend on it.
  NQ_ASSIGN_OR_RETURN(DelaylineProgram prog, DelaylineProgram::load(prog_options));
  NQ_TRY(prog.set_rules(plan.rules));
  prog.configure(plan.loss, plan.redirect);
  line->prog_ = std::make_unique<DelaylineProgram>(std::move(prog));

  // The TAP is created on a thread inside the pod's namespace, so it lives
  // there; its fd works from any thread afterwards.
  NQ_ASSIGN_OR_RETURN(Device dev, run_in_netns(netns, [&]() -> Result<Device> {
                        NQ_ASSIGN_OR_RETURN(Device d, device(plan.ifname));
                        TapOptions tap_options;
                        tap_options.name = options.tap_name;
                        tap_options.vnet_hdr = options.vnet_hdr;
                        tap_options.mtu = d.mtu;
                        NQ_ASSIGN_OR_RETURN(TapDevice tap, TapDevice::create(tap_options));
                        line->tap_ = std::make_unique<TapDevice>(std::move(tap));
                        return d;
                      }));
  line->ifindex_ = dev.ifindex;
  line->tap_name_ = line->tap_->name();
  line->tap_ifindex_ = line->tap_->ifindex();

  // The engine runs (and beats) before the program can send it anything.
  EngineConfig config;
  config.model = plan.model;
  config.limit = plan.limit;
  config.preserve_order = plan.preserve_order;
  config.heartbeat_period = plan.heartbeat_period;
  config.vnet_hdr_len = line->tap_->vnet_hdr_len();
  config.seed = options.seed;
  config.realtime_priority = options.realtime_priority;
  DelaylineProgram* p = line->prog_.get();
  NQ_ASSIGN_OR_RETURN(line->engine_, DelayEngine::start(line->tap_->fd(), config,
                                                        [p](uint64_t now_ns) { p->beat(now_ns); }));
  NQ_TRY(run_in_netns(
      netns, [&]() -> Status { return line->prog_->attach(line->ifindex_, line->tap_ifindex_); }));
  return line;
}

DelayLine::~DelayLine() {
  (void)stop();
}

Status DelayLine::stop() {
  if (prog_) prog_->detach_egress();
  Status st;
  if (engine_) {
    // Kept (stopped) for its counters.
    st = engine_->drain_and_stop();
  }
  if (prog_) prog_->detach();
  tap_.reset();
  return st;
}

Result<DelayLineStats> DelayLine::stats() const {
  DelayLineStats s;
  if (engine_) s.engine = engine_->stats();
  if (prog_) {
    NQ_ASSIGN_OR_RETURN(s.bpf, prog_->stats());
  }
  return s;
}

}  // namespace nq::delay

// netem faults on the eBPF delay line, through the nodequake-agent binary and
// its API, between sandbox pods: on this kernel (no sch_netem) `engine: auto`
// takes the delay line; List and Probe say so and why; revert, SIGTERM and
// kill -9 leave traffic undelayed and nothing behind; a restarted agent
// reconciles to a clean journal.
//
// The measuring end (the server pod's UDP echo and the probes) runs under
// SCHED_FIFO, as in tests/node/delay: on a loaded 2-core machine a normal
// thread wakes up milliseconds late, which would be charged to the line.
#include <fcntl.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/journal/journal.h"
#include "common/netns.h"
#include "common/traffic.h"
#include "tests/node/core/agent_harness.h"
#include "tests/node/delay/delay_env.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;

class AgentDelayTest : public ::testing::Test {
 protected:
  static constexpr const char* kClient = "client";
  static constexpr const char* kServer = "server";

  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    // The server pod only idles: its echo server is ours, under SCHED_FIFO.
    auto up = env_.up({env_.pod(kClient), env_.pod(kServer, {"/bin/sleep", "3600"})});
    ASSERT_TRUE(up.ok()) << up.error().message();
    for (const char* name : {kClient, kServer}) {
      auto netns = env_.netns(name);
      ASSERT_TRUE(netns.ok()) << netns.error().message();
      netns_.emplace(name, std::move(*netns));
      ips_[name] = env_.ip(name).value();
    }
    auto server = run_in_netns(netns_.at(kServer), [] {
      return traffic::Server::create("0.0.0.0", traffic::Ports{}, "server");
    });
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
    server_thread_ = std::thread([s = server_.get()] {
      sched_param param{};
      param.sched_priority = 2;
      (void)::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param);
      (void)s->run();
    });
    auto states = capture_pods(env_, {kClient, kServer});
    ASSERT_TRUE(states.ok()) << states.error().message();
    baseline_ = *states;
    ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
  }

  void TearDown() override {
    if (agent_.running()) {
      auto status = agent_.stop(SIGTERM);
      ASSERT_TRUE(status.ok()) << status.error().message();
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << agent_.log_tail();
    }
    if (server_) server_->stop();
    if (server_thread_.joinable()) server_thread_.join();
    if (!baseline_.empty()) {
      auto after = capture_pods(env_, {kClient, kServer});
      ASSERT_TRUE(after.ok());
      EXPECT_EQ(diff(baseline_, *after), "") << "kernel state left behind";
    }
    if (HasFailure()) std::cerr << "agent log:\n" << agent_.log_tail(20000);
  }

  v1::ApplyRequest delay_request(const std::string& id, std::chrono::milliseconds d,
                                 v1::NetemEngine engine = v1::NETEM_ENGINE_AUTO) {
    v1::FaultSpec spec = netem_delay(d, v1::DIRECTION_TO);
    spec.mutable_netem()->mutable_path()->mutable_scope()->add_remote_cidrs(ips_.at(kServer) +
                                                                            "/32");
    spec.mutable_netem()->set_engine(engine);
    return apply_request(id, env_.ns(), kClient, spec);
  }
  // Probe: which engine `auto` gets here; skips where that is netem.
  bool auto_is_ebpf() {
    v1::ProbeResponse probe;
    EXPECT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &probe).ok());
    return probe.delay_engine() == "ebpf";
  }
  // Measures `spec` (a netem fault from the client to the server) with
  // `count` pipelined probes, then reverts it. Mean minus the unshaped RTT.
  struct Measured {
    // Over the unshaped RTT's mean: every probe, and the probes whose flight
    // no stall of the machine overlapped (WatchedProbes).
    traffic::Summary all, clean;
    std::string watch;  // WatchedProbes::describe()
    std::string engine;
    std::string figures() const {
      char buf[320];
      std::snprintf(buf, sizeof buf,
                    "n=%zu mean %.3f ms sd %.3f ms p50 %.3f max %.3f; undisturbed mean %.3f ms sd "
                    "%.3f ms; %s",
                    all.n, all.mean, all.stddev, all.p50, all.max, clean.mean, clean.stddev,
                    watch.c_str());
      return buf;
    }
  };
  void measure(const std::string& id, v1::FaultSpec spec, int count,
               std::chrono::milliseconds interval, int min_undisturbed, Measured& out) {
    auto control = watched(50, 5ms, 200ms, 25);
    ASSERT_TRUE(control.ok()) << control.error().message();
    const traffic::Summary unshaped = control->undisturbed_ms();
    ASSERT_GE(unshaped.n, 25u) << control->describe();
    spec.mutable_netem()->mutable_path()->mutable_scope()->add_remote_cidrs(ips_.at(kServer) +
                                                                            "/32");
    v1::ApplyResponse applied;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply,
                          apply_request(id, env_.ns(), kClient, spec), &applied);
    ASSERT_TRUE(st.ok()) << st.error_message();
    out.engine = applied.injection().details().at("engine");
    const std::chrono::nanoseconds linger =
        spec.netem().delay().seconds() > 0 || spec.netem().delay().nanos() > 200'000'000 ? 1500ms
                                                                                         : 300ms;
    auto shaped = watched(count, interval, linger, min_undisturbed);
    ASSERT_TRUE(shaped.ok()) << shaped.error().message();
    ASSERT_GE(shaped->all.received, shaped->all.sent * 97 / 100);
    const auto over = [&](traffic::Summary s) {
      for (double* v : {&s.mean, &s.min, &s.max, &s.p50, &s.p99}) *v -= unshaped.mean;
      return s;
    };
    out.all = over(rtt_ms(shaped->all));
    out.clean = over(shaped->undisturbed_ms());
    out.watch = shaped->describe();
    v1::RevertRequest rreq;
    rreq.set_id(id);
    v1::RevertResponse rresp;
    ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Revert, rreq, &rresp).ok());
  }
  // The bounds, for either engine: 100 ms fixed within 1 ms; 500 +-
  // 100 ms normal with the mean within 5 % and sigma within 20 %. What is
  // held to them is the delay the spec adds over the same engine at 1 us:
  // the engine's own path (netem's qdisc; the line's TAP, engine thread and
  // back) is measured first and subtracted. On hardware that path costs
  // ~0.03 ms (the absolute figures are asserted by AutoUsesTheDelayLine...
  // and nq_node_delay); in the vm tier's emulated CPU the line's round trip
  // through a user-space thread costs ~0.9 ms by itself, which is the
  // emulator's speed, not the delay's accuracy. The path is bounded too.
  //
  // The fixed delay and the path are judged by the probes no stall of the
  // machine overlapped (StallWatch; all the figures are printed). Under TCG
  // a stall of the vCPU thread makes every probe in flight late by its
  // length: netem, alone in a CI boot, measured a mean of 102.27 ms (sd 4.3
  // ms) while the line in the same boot had sd 0.35 ms; here, with the
  // hypervisor taking 3-7 % of the host, the line's 1 us path had a p99 of
  // 16.5 ms. Probing goes on until 100 probes flew undisturbed (at most
  // ten rounds of 200). The 500 +- 100 ms run is judged on every probe: its
  // bounds are wide enough, and its long flights would rarely be undisturbed.
  void side_by_side(v1::NetemEngine engine, const std::string& want) {
    // 1 us: the API refuses a netem spec that asks for nothing.
    Measured path;
    v1::FaultSpec tiny = engine_spec(0ms, 0ms, engine);
    tiny.mutable_netem()->mutable_delay()->set_nanos(1000);
    ASSERT_NO_FATAL_FAILURE(measure(want + "-path", tiny, 200, 5ms, 100, path));
    std::printf("engine %s, 1 us (the engine's own path): %s\n", want.c_str(),
                path.figures().c_str());
    ASSERT_GE(path.clean.n, 100u) << path.watch;
    EXPECT_LT(path.clean.mean, 2.0) << "the engine's path alone costs more than 2 ms";
    Measured fixed;
    ASSERT_NO_FATAL_FAILURE(
        measure(want + "-fixed", engine_spec(100ms, 0ms, engine), 200, 5ms, 100, fixed));
    EXPECT_EQ(fixed.engine, want);
    std::printf("engine %s, 100 ms fixed: %s; over its path %.3f ms\n", want.c_str(),
                fixed.figures().c_str(), fixed.clean.mean - path.clean.mean);
    ASSERT_GE(fixed.clean.n, 100u) << fixed.watch;
    EXPECT_NEAR(fixed.clean.mean - path.clean.mean, 100.0, 1.0);
    Measured normal;
    ASSERT_NO_FATAL_FAILURE(
        measure(want + "-normal", engine_spec(500ms, 100ms, engine), 250, 20ms, 0, normal));
    std::printf("engine %s, 500 +- 100 ms normal: %s; over its path %.1f ms\n", want.c_str(),
                normal.figures().c_str(), normal.all.mean - path.clean.mean);
    EXPECT_NEAR(normal.all.mean - path.clean.mean, 500.0, 25.0);
    EXPECT_NEAR(normal.all.stddev, 100.0, 20.0);
  }
  static v1::FaultSpec engine_spec(std::chrono::milliseconds delay,
                                   std::chrono::milliseconds jitter, v1::NetemEngine engine) {
    v1::FaultSpec spec = netem_delay(delay, v1::DIRECTION_TO);
    if (jitter.count() > 0) {
      spec.mutable_netem()->mutable_jitter()->set_nanos(
          static_cast<int32_t>(std::chrono::nanoseconds(jitter).count()));
      spec.mutable_netem()->set_distribution(v1::DELAY_DISTRIBUTION_NORMAL);
    }
    spec.mutable_netem()->set_engine(engine);
    return spec;
  }
  void apply_measure_revert(const std::string& id, v1::Direction direction);
  bool probe_has(const std::string& cap) {
    v1::ProbeResponse probe;
    EXPECT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &probe).ok());
    for (const auto& c : probe.capabilities())
      if (c.name() == cap) return c.available();
    return false;
  }

  Result<traffic::UdpProbeResult> probes(int count, std::chrono::nanoseconds interval,
                                         std::chrono::nanoseconds linger) {
    return udp_probes(netns_.at(kClient), ips_.at(kServer), count, interval, linger);
  }
  // probes() with a StallWatch: the latencies of the undisturbed ones are
  // what a delay bound is held to (WatchedProbes, delay_env.h).
  Result<WatchedProbes> watched(int count, std::chrono::nanoseconds interval,
                                std::chrono::nanoseconds linger, int min_undisturbed) {
    return watched_udp_probes(netns_.at(kClient), ips_.at(kServer), count, interval, linger,
                              min_undisturbed);
  }
  const v1::Injection* listed(const v1::ListResponse& list, const std::string& id) {
    for (const auto& i : list.injections())
      if (i.id() == id) return &i;
    return nullptr;
  }

  SandboxEnv env_;
  AgentHarness agent_{env_};
  std::map<std::string, Netns> netns_;
  std::map<std::string, std::string> ips_;
  std::unique_ptr<traffic::Server> server_;
  std::thread server_thread_;
  PodStates baseline_;
};

// A node whose kernel has sch_netem on disk but not loaded (issue 8): the
// agent's start-up probe loads it from /lib/modules with finit_module, and
// `engine: auto` gets netem, not the line. Needs a kernel with module
// support, sch_netem not loaded yet, and no modprobe the kernel could run
// for it: the vm tier boots 6.12 that way (vm.agent_delay: NOLOAD
// sch_netem), and this suite is registered before AgentDelayTest so that it
// runs first in that boot. What the agent loaded is unloaded again at the
// end (nothing may still use it by then).
class AgentModuleTest : public AgentDelayTest {
 protected:
  void SetUp() override {
    auto loaded = module_loaded("sch_netem");
    if (!loaded.ok()) GTEST_SKIP() << loaded.error().message();
    if (*loaded)
      GTEST_SKIP() << "sch_netem is loaded already: nothing for the agent to load (the vm "
                      "tier boots 6.12 without it)";
    // Where the kernel can run a modprobe, its own request_module() loads
    // sch_netem as soon as the probe asks for a netem qdisc; the agent's
    // finit_module is for nodes where it cannot.
    std::ifstream helper("/proc/sys/kernel/modprobe");
    std::string modprobe;
    std::getline(helper, modprobe);
    if (!modprobe.empty() && ::access(modprobe.c_str(), X_OK) == 0)
      GTEST_SKIP() << "the kernel loads sch_netem by itself here (kernel.modprobe " << modprobe
                   << "); the vm tier boots with kernel.modprobe empty";
    AgentDelayTest::SetUp();
  }
  void TearDown() override {
    AgentDelayTest::TearDown();
    auto loaded = module_loaded("sch_netem");
    if (loaded.ok() && *loaded) {
      EXPECT_EQ(::syscall(SYS_delete_module, "sch_netem", O_NONBLOCK), 0)
          << "sch_netem still in use after the agent exited: " << std::strerror(errno);
    }
  }
  // Whether /proc/modules lists `name`; an error where the kernel has no
  // loadable modules.
  static Result<bool> module_loaded(const std::string& name) {
    std::ifstream in("/proc/modules");
    if (!in)
      return Error::failed_precondition("kernel built without loadable modules (no /proc/modules)");
    for (std::string line; std::getline(in, line);)
      if (line.compare(0, name.size() + 1, name + " ") == 0) return true;
    return false;
  }
};

TEST_F(AgentModuleTest, ProbeLoadsSchNetemFromTheModuleTreeAndAutoPicksNetem) {
  v1::ProbeResponse probe;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &probe).ok());
  const v1::Capability* netem = nullptr;
  for (const auto& c : probe.capabilities())
    if (c.name() == "sch_netem") netem = &c;
  ASSERT_NE(netem, nullptr);
  std::printf("Probe: sch_netem %s: %s\nProbe: delay_engine %s (%s)\n",
              netem->available() ? "available" : "unavailable", netem->detail().c_str(),
              probe.delay_engine().c_str(), probe.delay_engine_reason().c_str());
  EXPECT_TRUE(netem->available());
  EXPECT_NE(netem->detail().find("with finit_module"), std::string::npos) << netem->detail();
  auto loaded = module_loaded("sch_netem");
  ASSERT_TRUE(loaded.ok() && *loaded) << "/proc/modules does not list sch_netem";
  EXPECT_EQ(probe.delay_engine(), "netem") << probe.delay_engine_reason();

  // That the fault delays: every probe at least the 100 ms netem holds it.
  // How precisely netem keeps 100 ms is side_by_side()'s question, in the
  // same boot; right after the guest booted it stalls too often for a 1 ms
  // bound (611 stalls > 1 ms in 8 s once).
  v1::ApplyResponse applied;
  grpc::Status st =
      rpc(agent_.stub(), &v1::Agent::Stub::Apply, delay_request("delay", 100ms), &applied);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(applied.injection().details().at("engine"), "netem");
  auto shaped = probes(50, 5ms, 300ms);
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  ASSERT_GE(shaped->received, 48);
  const traffic::Summary s = rtt_ms(*shaped);
  std::printf("engine auto after the load: netem, 100 ms: n=%zu min %.3f ms mean %.3f ms\n", s.n,
              s.min, s.mean);
  EXPECT_GE(s.min, 100.0);
  v1::RevertRequest rreq;
  rreq.set_id("delay");
  v1::RevertResponse rresp;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Revert, rreq, &rresp).ok());
}

TEST_F(AgentDelayTest, AutoUsesTheDelayLineWithoutNetem) {
  if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
  v1::ProbeResponse probe;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &probe).ok());
  std::printf("Probe: delay_engine %s (%s)\n", probe.delay_engine().c_str(),
              probe.delay_engine_reason().c_str());
  if (probe.delay_engine() == "netem")
    GTEST_SKIP() << "kernel has sch_netem: auto picks netem (nq_node_agent_netem covers it)";
  ASSERT_EQ(probe.delay_engine(), "ebpf") << probe.delay_engine_reason();
  EXPECT_NE(probe.delay_engine_reason().find("sch_netem"), std::string::npos);

  auto control = watched(100, 5ms, 200ms, 50);
  ASSERT_TRUE(control.ok()) << control.error().message();
  const double base = control->undisturbed_ms().mean;

  v1::ApplyResponse applied;
  grpc::Status st =
      rpc(agent_.stub(), &v1::Agent::Stub::Apply, delay_request("delay", 100ms), &applied);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const auto& details = applied.injection().details();
  EXPECT_EQ(details.at("engine"), "ebpf");
  EXPECT_EQ(details.at("engine_reason"), "kernel lacks sch_netem");
  const std::string tap = details.at("tap");
  auto exists = link_exists(netns_.at(kClient), tap);
  ASSERT_TRUE(exists.ok() && *exists) << tap;

  // 200 probes, pipelined (one every 5 ms, 20 in flight).
  auto shaped = watched(200, 5ms, 300ms, 100);
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  ASSERT_GE(shaped->all.received, shaped->all.sent * 97 / 100);
  const traffic::Summary s = shaped->undisturbed_ms();
  std::printf(
      "delay line 100ms through the agent: n=%zu mean %.3f ms (unshaped %.3f) sd %.3f; %s\n", s.n,
      s.mean - base, base, s.stddev, shaped->describe().c_str());
  ASSERT_GE(shaped->undisturbed.received, 100) << shaped->describe();
  EXPECT_NEAR(s.mean - base, 100.0, 1.0);

  v1::ListResponse list;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  const v1::Injection* inj = listed(list, "delay");
  ASSERT_NE(inj, nullptr);
  std::ostringstream shown;
  for (const auto& [k, v] : inj->details()) shown << k << "=" << v << " ";
  std::printf("List details: %s\n", shown.str().c_str());
  EXPECT_EQ(inj->details().at("engine"), "ebpf");
  EXPECT_EQ(inj->details().at("engine_reason"), "kernel lacks sch_netem");
  EXPECT_GE(std::stoull(inj->details().at("frames")), 195u);
  EXPECT_EQ(inj->details().at("held"), "0");
  EXPECT_TRUE(inj->details().count("late_p99_us"));

  v1::RevertRequest rreq;
  rreq.set_id("delay");
  v1::RevertResponse rresp;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Revert, rreq, &rresp).ok());
  auto after = watched(50, 5ms, 200ms, 25);
  ASSERT_TRUE(after.ok());
  EXPECT_LT(after->undisturbed_ms().max, base + 10)
      << "still delayed after revert; " << after->describe();
  exists = link_exists(netns_.at(kClient), tap);
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(*exists) << tap << " left behind";
  auto progs = tcx_programs(netns_.at(kClient), "eth0", true);
  ASSERT_TRUE(progs.ok());
  EXPECT_EQ(*progs, 0u);
}

// An ingress line through the agent: applied, measured, reverted, and
// nothing left (no TAP, no TCX program on either hook; TearDown compares
// the pods' kernel state with the baseline).
void AgentDelayTest::apply_measure_revert(const std::string& id, v1::Direction direction) {
  auto control = watched(50, 5ms, 200ms, 25);
  ASSERT_TRUE(control.ok()) << control.error().message();
  const double base = control->undisturbed_ms().mean;
  v1::ApplyRequest req = delay_request(id, 100ms, v1::NETEM_ENGINE_EBPF);
  req.mutable_spec()->mutable_netem()->mutable_path()->set_direction(direction);
  v1::ApplyResponse applied;
  grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply, req, &applied);
  // agent/core/spec_engine.cpp hands the line only the egress leaf so far.
  if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
      st.error_message().find("egress (TO) only so far") != std::string::npos)
    GTEST_SKIP() << "the agent core still refuses this direction for the delay line "
                    "(agent/core/spec_engine.cpp: delay_line_spec() takes fault.egress only): "
                 << st.error_message();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(applied.injection().details().at("engine"), "ebpf");
  std::vector<std::string> taps;
  std::stringstream names(applied.injection().details().at("tap"));
  for (std::string t; std::getline(names, t, ',');) taps.push_back(t);
  EXPECT_EQ(taps.size(), direction == v1::DIRECTION_BOTH ? 2u : 1u);
  for (const std::string& tap : taps) EXPECT_TRUE(link_exists(netns_.at(kClient), tap).value());
  EXPECT_EQ(tcx_programs(netns_.at(kClient), "eth0", false).value(), 1u);

  auto shaped = watched(200, 5ms, 300ms, 100);
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  ASSERT_GE(shaped->all.received, shaped->all.sent * 97 / 100);
  const traffic::Summary s = shaped->undisturbed_ms();
  std::printf("%s 100ms through the agent: n=%zu mean %.3f ms (unshaped %.3f) sd %.3f; %s\n",
              id.c_str(), s.n, s.mean - base, base, s.stddev, shaped->describe().c_str());
  ASSERT_GE(shaped->undisturbed.received, 100) << shaped->describe();
  // FROM: the answers wait 100 ms; BOTH: 50 ms each way (the netem path's split).
  EXPECT_NEAR(s.mean - base, 100.0, 1.0);

  v1::RevertRequest rreq;
  rreq.set_id(id);
  v1::RevertResponse rresp;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Revert, rreq, &rresp).ok());
  auto after = watched(50, 5ms, 200ms, 25);
  ASSERT_TRUE(after.ok());
  EXPECT_LT(after->undisturbed_ms().max, base + 10)
      << "still delayed after revert; " << after->describe();
  for (const std::string& tap : taps)
    EXPECT_FALSE(link_exists(netns_.at(kClient), tap).value()) << tap << " left behind";
  EXPECT_EQ(tcx_programs(netns_.at(kClient), "eth0", false).value(), 0u);
  EXPECT_EQ(tcx_programs(netns_.at(kClient), "eth0", true).value(), 0u);
  v1::ListResponse list;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  EXPECT_EQ(list.injections_size(), 0);
}

TEST_F(AgentDelayTest, FromDelayOnTheLineIsAppliedAndRevertedLeavingNothing) {
  if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
  apply_measure_revert("from", v1::DIRECTION_FROM);
}

TEST_F(AgentDelayTest, BothDelayOnTheLineIsAppliedAndRevertedLeavingNothing) {
  if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
  apply_measure_revert("both", v1::DIRECTION_BOTH);
}

TEST_F(AgentDelayTest, RefusalsNameTheFieldAndTheEngine) {
  if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
  if (!auto_is_ebpf()) GTEST_SKIP() << "kernel has sch_netem";
  struct Case {
    v1::ApplyRequest req;
    std::vector<std::string> needles;
  };
  std::vector<Case> cases;
  cases.push_back({delay_request("forced-netem", 100ms, v1::NETEM_ENGINE_NETEM),
                   {"sch_netem", "spec.netem.engine"}});
  cases.push_back({delay_request("reorder", 100ms), {"spec.netem.reorder", "delay line"}});
  cases.back().req.mutable_spec()->mutable_netem()->set_reorder(10);
  cases.push_back({delay_request("reorder-ebpf", 100ms, v1::NETEM_ENGINE_EBPF),
                   {"spec.netem.reorder", "ebpf"}});
  cases.back().req.mutable_spec()->mutable_netem()->set_reorder(10);
  for (const Case& c : cases) {
    v1::ApplyResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply, c.req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << c.req.id() << ": " << st.error_message();
    for (const auto& n : c.needles)
      EXPECT_NE(st.error_message().find(n), std::string::npos)
          << c.req.id() << ": '" << n << "' not in " << st.error_message();
  }
  // One line per interface: the second is refused, the first stays.
  v1::ApplyResponse resp;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Apply, delay_request("one", 50ms), &resp).ok());
  grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply, delay_request("two", 50ms), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find("one netem fault per interface"), std::string::npos)
      << st.error_message();
  v1::ListResponse list;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  ASSERT_EQ(list.injections_size(), 1);
  EXPECT_EQ(list.injections(0).id(), "one");
  // Left active: TearDown's SIGTERM must revert it (detach, drain) and leave
  // the pod's kernel state as it was.
}

TEST_F(AgentDelayTest, KillNineLeavesTrafficUndelayedAndRestartReconciles) {
  if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
  v1::ApplyResponse applied;
  grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply,
                        delay_request("crash", 100ms, v1::NETEM_ENGINE_EBPF), &applied);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string tap = applied.injection().details().at("tap");
  auto delayed = probes(10, 10ms, 300ms);
  ASSERT_TRUE(delayed.ok());
  ASSERT_GE(rtt_ms(*delayed).min, 99.0) << "not delayed before the kill";

  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(agent_.stop(SIGKILL).ok());
  auto undelayed = time_until_fast(netns_.at(kClient), ips_.at(kServer), killed_at, 20ms, 2s);
  ASSERT_TRUE(undelayed.ok()) << undelayed.error().message();
  const double ms = std::chrono::duration<double, std::milli>(*undelayed).count();
  std::printf("kill -9 of the agent with a 100 ms delay line: undelayed after %.1f ms\n", ms);
  EXPECT_LT(ms, 250.0);
  auto exists = link_exists(netns_.at(kClient), tap);
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(*exists) << tap << " outlived the agent";

  // The journal still names the line (the agent died with it active).
  {
    std::ifstream in(agent_.journal_file(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), {});
    const JournalState state = reduce(decode_records(data).records);
    ASSERT_EQ(state.injections.count("crash"), 1u);
    bool tap_journaled = false;
    for (const auto& [key, link] : state.links) tap_journaled |= link.delay_tap() == tap;
    EXPECT_TRUE(tap_journaled) << "LinkOwned.delay_tap " << tap << " not journaled";
  }

  ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
  v1::ListResponse list;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  EXPECT_EQ(list.injections_size(), 0);
  std::ifstream in(agent_.journal_file(), std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), {});
  const JournalState state = reduce(decode_records(data).records);
  EXPECT_TRUE(state.injections.empty());
  EXPECT_TRUE(state.links.empty()) << "journal still names links after reconcile";
  EXPECT_NE(agent_.log_tail(20000).find("reconcile: injection crash"), std::string::npos);

  // The restarted agent can delay again on the same interface.
  ASSERT_TRUE(
      rpc(agent_.stub(), &v1::Agent::Stub::Apply, delay_request("again", 20ms), &applied).ok());
  auto again = probes(20, 5ms, 100ms);
  ASSERT_TRUE(again.ok());
  EXPECT_GE(rtt_ms(*again).min, 19.5);
}

// The agent's own TTL reverts a line like any fault: detach, drain, no TAP.
TEST_F(AgentDelayTest, TtlExpiryRevertsTheLine) {
  if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
  v1::ApplyRequest req = delay_request("short", 100ms, v1::NETEM_ENGINE_EBPF);
  *req.mutable_ttl() = google::protobuf::util::TimeUtil::MillisecondsToDuration(1500);
  v1::ApplyResponse applied;
  // The TTL runs from when the agent took the request: the clock starts
  // before Apply is sent (setting a line up takes ~0.3 s in a TCG guest).
  const auto applied_at = std::chrono::steady_clock::now();
  grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply, req, &applied);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const std::string tap = applied.injection().details().at("tap");
  auto delayed = probes(5, 10ms, 300ms);
  ASSERT_TRUE(delayed.ok());
  EXPECT_GE(rtt_ms(*delayed).min, 99.0);
  auto undelayed = time_until_fast(netns_.at(kClient), ips_.at(kServer), applied_at, 20ms, 5s);
  ASSERT_TRUE(undelayed.ok()) << undelayed.error().message();
  const double s = std::chrono::duration<double>(*undelayed).count();
  std::printf("ttl 1.5 s: undelayed %.2f s after Apply\n", s);
  EXPECT_GE(s, 1.45);  // not before the TTL (less a probe interval and some)
  EXPECT_LT(s, 2.5);
  v1::ListResponse list;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  EXPECT_EQ(list.injections_size(), 0);
  auto exists = link_exists(netns_.at(kClient), tap);
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(*exists) << tap << " left after the TTL";
}

// The vm tier's side-by-side (tests/vm): the same specs with engine netem and
// engine ebpf, each within the bounds. Each half skips, with the
// reason, where its engine cannot run: netem here (no sch_netem), the delay
// line in Debian's 6.1 guest (no TCX; see docs/delay-line.md).
TEST_F(AgentDelayTest, SideBySideNetemEngine) {
  if (!probe_has("sch_netem")) GTEST_SKIP() << "kernel lacks sch_netem (the vm tier runs this)";
  side_by_side(v1::NETEM_ENGINE_NETEM, "netem");
}

TEST_F(AgentDelayTest, SideBySideEbpfEngine) {
  if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
  side_by_side(v1::NETEM_ENGINE_EBPF, "ebpf");
}

// Where TCX is missing (kernels before 6.6) the delay line is refused, not
// attached with tc filters that would outlive the agent.
TEST_F(AgentDelayTest, EbpfEngineRefusedWithoutTcx) {
  if (probe_has("bpf_tcx")) GTEST_SKIP() << "kernel has TCX links: nothing to refuse";
  v1::ApplyResponse resp;
  grpc::Status st = rpc(
      agent_.stub(), &v1::Agent::Stub::Apply,
      apply_request("no-tcx", env_.ns(), kClient, engine_spec(100ms, 0ms, v1::NETEM_ENGINE_EBPF)),
      &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find("bpf_tcx"), std::string::npos) << st.error_message();
}

}  // namespace
}  // namespace nq::testing

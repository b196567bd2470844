// The delay line's netem features beyond egress delay and loss, on this
// kernel: ingress (FROM) and BOTH delay, scope in both directions,
// duplication, corruption as the receiver sees it, and netem's correlated
// loss.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>

#include "agent/delay/delay_line.h"
#include "agent/net/netem.h"
#include "nodequake/v1/agent.pb.h"
#include "tests/node/delay/delay_fixture.h"

namespace nq::testing {
namespace {

using delay::DelayLine;
using delay::DelayLineSpec;
using delay::Direction;

constexpr const char* kB = NetnsPair::kIpB;
constexpr uint16_t kSinkPort = 9999;

// A UDP socket bound in b: what a receiver in the peer's stack gets.
class Sink {
 public:
  static Result<Sink> open(const Netns& ns) {
    return run_in_netns(ns, []() -> Result<Sink> {
      UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd) return Error::from_errno(errno, "socket");
      // Everything is read after the burst: room for all of it.
      const int size = 16 << 20;
      if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        return Error::from_errno(errno, "SO_RCVBUFFORCE");
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(kSinkPort);
      if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
        return Error::from_errno(errno, "bind");
      return Sink(std::move(fd));
    });
  }
  // Every datagram that arrives within `quiet` of the previous one.
  std::vector<std::vector<uint8_t>> drain(std::chrono::milliseconds quiet) {
    std::vector<std::vector<uint8_t>> out;
    for (;;) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(quiet.count())) != 1) return out;
      std::vector<uint8_t> buf(2048);
      const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n < 0) continue;
      buf.resize(static_cast<size_t>(n));
      out.push_back(std::move(buf));
    }
  }

 private:
  explicit Sink(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// `count` datagrams of `size` bytes from a to b's sink, built by `fill`,
// paced so that no queue on the way overflows (a drop there would read as
// loss).
Status send_datagrams(const Netns& from, int count, size_t size,
                      const std::function<void(int, std::vector<uint8_t>&)>& fill) {
  return run_in_netns(from, [&]() -> Status {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno(errno, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(kSinkPort);
    ::inet_pton(AF_INET, kB, &addr.sin_addr);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
      return Error::from_errno(errno, "connect");
    std::vector<uint8_t> buf(size);
    for (int i = 0; i < count; ++i) {
      fill(i, buf);
      if (::send(fd.get(), buf.data(), buf.size(), 0) < 0) return Error::from_errno(errno, "send");
      if (i % 50 == 49) std::this_thread::sleep_for(1ms);
    }
    return ok();
  });
}

using DelayNetemFeatures = DelayLineFixture;

TEST_F(DelayNetemFeatures, FromDelaysTheAnswersBy100msWithinAMillisecond) {
  DelayLineSpec spec;
  spec.dirs = net::kIngress;
  spec.netem.delay = 100ms;
  auto line = start(spec);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->tap_ifindex(Direction::kEgress), 0);
  EXPECT_EQ(tcx_programs(env_->a(), "eth0", false).value(), 1u);
  EXPECT_EQ(tcx_programs(env_->a(), "eth0", true).value(), 0u);
  auto r = watched_udp_probes(env_->a(), kB, 200, 5ms, 400ms, 100);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->all.received, r->all.sent);
  const auto s = r->undisturbed_ms();
  std::printf("FROM 100ms fixed: mean %.3f sd %.3f min %.3f max %.3f ms; %s\n", s.mean, s.stddev,
              s.min, s.max, r->describe().c_str());
  ASSERT_GE(r->undisturbed.received, 100) << r->describe();
  EXPECT_NEAR(s.mean, 100.0, 1.0);
  EXPECT_GE(rtt_ms(r->all).min, 100.0);
  auto st = line->stats();
  ASSERT_TRUE(st.ok()) << st.error().message();
  const nq_dl_stats& in = st->bpf_dir[NQ_IDX_INGRESS];
  EXPECT_EQ(in.redirected, unsigned(r->all.sent));
  EXPECT_EQ(in.returned, unsigned(r->all.sent))
      << "frames sent back into eth0 must be recognised, once each";
  EXPECT_EQ(st->bpf_dir[NQ_IDX_EGRESS].matched, 0u);
  EXPECT_EQ(st->engine_ingress.frames_out, unsigned(r->all.sent));
}

// The netem path's BOTH: plan_netem() splits the delay (half each way,
// jitter / sqrt 2) so the round trip grows by the requested delay once
// (NetemNode.SplitForBothGivesTheRequestedRoundTrip). The line is given the
// same leaves.
TEST_F(DelayNetemFeatures, BothGivesTheRequestedRoundTripLikeTheNetemPath) {
  nodequake::v1::NetemFault proto;
  proto.mutable_path()->set_direction(nodequake::v1::DIRECTION_BOTH);
  proto.mutable_path()->mutable_scope()->add_remote_cidrs("10.77.0.2/32");
  proto.mutable_delay()->set_nanos(100'000'000);
  auto shaping = net::plan_netem(proto, "spec.netem");
  ASSERT_TRUE(shaping.ok()) << shaping.error().message();
  auto spec =
      delay::spec_from_netem_leaves(shaping->egress, shaping->ingress, shaping->path, "spec.netem");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  auto plan = delay::plan_delay_line(*spec, "spec.netem");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  auto line = DelayLine::start(env_->a(), *plan);
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_EQ((*line)->tap_names().size(), 2u);
  auto r = watched_udp_probes(env_->a(), kB, 200, 5ms, 400ms, 100);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->all.received, r->all.sent);
  const auto s = r->undisturbed_ms();
  std::printf("BOTH 100ms (50 + 50): mean %.3f sd %.3f min %.3f max %.3f ms; %s\n", s.mean,
              s.stddev, s.min, s.max, r->describe().c_str());
  ASSERT_GE(r->undisturbed.received, 100) << r->describe();
  EXPECT_NEAR(s.mean, 100.0, 1.0);
  auto st = (*line)->stats();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->bpf_dir[NQ_IDX_EGRESS].redirected, unsigned(r->all.sent));
  EXPECT_EQ(st->bpf_dir[NQ_IDX_INGRESS].redirected, unsigned(r->all.sent));
  ASSERT_TRUE((*line)->stop().ok());
  for (const std::string& tap : (*line)->tap_names())
    EXPECT_EQ(link_exists(env_->a(), tap).value(), false) << tap;
  EXPECT_EQ(tcx_programs(env_->a(), "eth0", true).value(), 0u);
  EXPECT_EQ(tcx_programs(env_->a(), "eth0", false).value(), 0u);
}

TEST_F(DelayNetemFeatures, UnmatchedTrafficIsNotDelayedInEitherDirection) {
  DelayLineSpec spec;
  spec.dirs = net::kBoth;
  spec.netem.delay = 50ms;
  auto line = start(spec, std::string(DelayEnv::kIpB2) + "/32");
  ASSERT_TRUE(line);
  Scoped r;
  ASSERT_NO_FATAL_FAILURE(probe_scoped(r));
  const auto& so = r.unmatched;
  const auto& sm = r.matched;
  std::printf("BOTH 50ms each way: unmatched max %.3f ms; matched TCP echo p50 %.3f ms\n", so.max,
              sm.p50);
  ASSERT_EQ(r.unmatched_received, 50);
  EXPECT_LT(so.max, 20.0) << r.unmatched_stalls;
  EXPECT_NEAR(sm.p50, 100.0, 2.0);  // 50 ms out, 50 ms back
  auto st = line->stats();
  ASSERT_TRUE(st.ok());
  EXPECT_GE(st->bpf_dir[NQ_IDX_EGRESS].redirected, 10u);
  EXPECT_GE(st->bpf_dir[NQ_IDX_INGRESS].redirected, 10u);
}

// netem's duplicate: 30 % of the packets arrive twice. Egress without a
// delay (no engine: a clone straight out), ingress with one (both copies
// through the engine).
TEST_F(DelayNetemFeatures, Duplicate30PercentArrivesTwice) {
  for (uint8_t dirs : {uint8_t(net::kEgress), uint8_t(net::kIngress)}) {
    DelayLineSpec spec;
    spec.dirs = dirs;
    spec.netem.duplicate = 30;
    if (dirs == net::kIngress) spec.netem.delay = 5ms;
    auto line = start(spec);
    ASSERT_TRUE(line);
    auto r = udp_probes(env_->a(), kB, 1000, 1ms, 300ms);
    ASSERT_TRUE(r.ok()) << r.error().message();
    const double dup = double(r->duplicates) / r->received;
    std::printf("duplicate 30%% (%s): %.1f%% of %d answers came twice\n",
                dirs == net::kEgress ? "TO, no delay" : "FROM, 5ms", 100 * dup, r->received);
    EXPECT_EQ(r->received, 1000);
    EXPECT_GE(dup, 0.25);
    EXPECT_LE(dup, 0.35);
    auto st = line->stats();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(int(st->bpf.duplicated), r->duplicates);
    ASSERT_TRUE(line->stop().ok());
  }
}

// What a receiver sees of netem's corruption done in BPF: see
// docs/delay-line.md. Datagrams of 0xa5 bytes, the sequence number twice
// at the front, so any single flipped bit is found.
TEST_F(DelayNetemFeatures, CorruptFlipsOneBitThatTheReceiverGets) {
  constexpr int kCount = 1000;
  constexpr size_t kSize = 1000;
  DelayLineSpec spec;
  spec.netem.corrupt = 50;
  auto line = start(spec);
  ASSERT_TRUE(line);
  auto sink = Sink::open(env_->b());
  ASSERT_TRUE(sink.ok()) << sink.error().message();
  ASSERT_TRUE(send_datagrams(env_->a(), kCount, kSize, [](int i, std::vector<uint8_t>& b) {
                std::memset(b.data(), 0xa5, b.size());
                const uint32_t seq = uint32_t(i);
                std::memcpy(b.data(), &seq, 4);
                std::memcpy(b.data() + 4, &seq, 4);
              }).ok());
  int intact = 0, one_bit = 0, more = 0, short_len = 0;
  for (const auto& d : sink->drain(300ms)) {
    if (d.size() != kSize) {
      ++short_len;
      continue;
    }
    uint32_t a, b;
    std::memcpy(&a, d.data(), 4);
    std::memcpy(&b, d.data() + 4, 4);
    int bits = std::popcount(a ^ b);
    for (size_t i = 8; i < kSize; ++i) bits += std::popcount(unsigned(d[i] ^ 0xa5));
    (bits == 0 ? intact : bits == 1 ? one_bit : more)++;
  }
  const int missing = kCount - intact - one_bit - more - short_len;
  auto st = line->stats();
  ASSERT_TRUE(st.ok());
  std::printf(
      "corrupt 50%%: %d sent, %llu corrupted by the line; received intact %d, with one bit "
      "flipped %d, other size %d; missing %d\n",
      kCount, (unsigned long long)st->bpf.corrupted, intact, one_bit, short_len, missing);
  EXPECT_EQ(more, 0) << "netem flips one bit per packet";
  EXPECT_NEAR(double(st->bpf.corrupted) / kCount, 0.5, 0.06);
  // The checksum of a CHECKSUM_PARTIAL datagram is filled in after the
  // flip (or never, veth to veth): payload flips are delivered as data.
  EXPECT_GT(one_bit, int(0.8 * st->bpf.corrupted));
  // Flips in the Ethernet/IP/UDP headers (42 of 1042 bytes) lose the
  // datagram; the rest arrived intact.
  EXPECT_EQ(intact + one_bit + short_len + missing, kCount);
  EXPECT_NEAR(intact, kCount - int(st->bpf.corrupted), 10);
}

// netem's get_crandom() on the loss roll: the expected rate and the chance
// of a loss after a loss, from the same formula.
struct LossModel {
  double rate = 0, after_loss = 0;
};
LossModel netem_loss(double p, double rho, int n) {
  std::mt19937 rng(42);
  const uint64_t P = net::percent_to_probability(p), R = net::percent_to_probability(rho);
  uint64_t last = 0;
  int lost = 0, pairs = 0, prev = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t v = rng();
    if (R) v = last = (v * ((uint64_t(1) << 32) - (R + 1)) + last * (R + 1)) >> 32;
    const int l = P >= v;
    lost += l;
    pairs += l && prev;
    prev = l;
  }
  return {double(lost) / n, double(pairs) / lost};
}

// Sequence numbers that b's sink received of `count`: which ones were lost.
LossModel measure_loss(DelayEnv& env, int count) {
  auto sink = Sink::open(env.b());
  EXPECT_TRUE(sink.ok());
  if (!sink.ok()) return {};
  EXPECT_TRUE(send_datagrams(env.a(), count, 64, [](int i, std::vector<uint8_t>& b) {
                std::memcpy(b.data(), &i, sizeof(i));
              }).ok());
  std::vector<bool> got(size_t(count), false);
  for (const auto& d : sink->drain(200ms)) {
    int seq = -1;
    std::memcpy(&seq, d.data(), sizeof(seq));
    if (seq >= 0 && seq < count) got[size_t(seq)] = true;
  }
  int lost = 0, pairs = 0;
  for (int i = 0; i < count; ++i) {
    lost += !got[size_t(i)];
    pairs += i > 0 && !got[size_t(i)] && !got[size_t(i - 1)];
  }
  return {double(lost) / count, lost ? double(pairs) / lost : 0};
}

TEST_F(DelayNetemFeatures, CorrelatedLossHasNetemsRateAndLongerRuns) {
  constexpr int kCount = 4000;
  const LossModel want = netem_loss(50, 50, 200000);
  LossModel got[2];
  for (int correlated = 0; correlated < 2; ++correlated) {
    DelayLineSpec spec;
    spec.netem.loss = 50;
    spec.netem.loss_correlation = correlated ? 50 : 0;
    auto line = start(spec);
    ASSERT_TRUE(line);
    got[correlated] = measure_loss(*env_, kCount);
    ASSERT_TRUE(line->stop().ok());
  }
  std::printf(
      "loss 50%%: uncorrelated rate %.3f, P(loss | loss before) %.3f; correlation 50%%: rate %.3f "
      "(netem's formula %.3f), P(loss | loss before) %.3f (netem's formula %.3f)\n",
      got[0].rate, got[0].after_loss, got[1].rate, want.rate, got[1].after_loss, want.after_loss);
  EXPECT_NEAR(got[0].rate, 0.50, 0.05);
  EXPECT_NEAR(got[0].after_loss, got[0].rate, 0.05);
  EXPECT_NEAR(got[1].rate, want.rate, 0.05);
  EXPECT_NEAR(got[1].after_loss, want.after_loss, 0.05);
  EXPECT_GT(got[1].after_loss, got[0].after_loss + 0.07);
}

}  // namespace
}  // namespace nq::testing

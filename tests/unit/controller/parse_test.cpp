// Every seed-style field of the four chaos kinds, parsed from the files in
// tests/data/experiments (the seed's experiments) and from inline YAML.
#include "controller/experiment/parse.h"

#include <dirent.h>

#include <chrono>

#include "tests/unit/controller/test_util.h"

namespace nq::experiment {
namespace {

using namespace std::chrono_literals;
using testing::all_diagnostics;
using testing::experiment_at;
using testing::load_ok;

TEST(ParseExperiments, EverySampleFileIsValid) {
  DIR* dir = opendir(NQ_EXPERIMENT_DATA);
  ASSERT_NE(dir, nullptr);
  int files = 0;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".yaml") continue;
    ++files;
    Parsed p = parse_experiment_file(testing::data(name));
    EXPECT_TRUE(p.ok()) << name << ":\n" << all_diagnostics(p);
    EXPECT_FALSE(p.documents.empty()) << name;
  }
  closedir(dir);
  EXPECT_GE(files, 8);
}

TEST(ParseExperiments, NetworkLatencyAsChaosMeshWroteIt) {
  auto docs = load_ok("network-latency.yaml");
  ASSERT_EQ(docs.size(), 1u);
  const Experiment& e = experiment_at(docs, 0);
  EXPECT_EQ(e.api_version, "chaos-mesh.org/v1alpha1");
  EXPECT_EQ(e.kind, Kind::kNetworkChaos);
  EXPECT_EQ(e.name, "network-latency");
  EXPECT_EQ(e.namespace_, "chaos-testing");
  EXPECT_EQ(e.where.line, 3);
  EXPECT_EQ(e.selector.namespaces, std::vector<std::string>{"llm-marketplace"});
  EXPECT_EQ(e.selector.labels.at("app"), "graphql-gateway");
  EXPECT_EQ(e.selector.labels.at("chaos-ready"), "true");
  EXPECT_EQ(e.mode.mode, selection::Mode::kOne);
  EXPECT_EQ(e.duration, 5min);
  const auto& net = std::get<NetworkSpec>(e.spec);
  EXPECT_EQ(net.action, NetworkAction::kDelay);
  EXPECT_EQ(net.direction, Direction::kTo);
  ASSERT_TRUE(net.target);
  EXPECT_EQ(net.target->mode.mode, selection::Mode::kAll);
  EXPECT_EQ(net.target->selector.labels.at("app"), "postgres");
  ASSERT_TRUE(net.delay);
  EXPECT_EQ(net.delay->latency, 500ms);
  EXPECT_EQ(net.delay->jitter, 100ms);
  EXPECT_DOUBLE_EQ(net.delay->correlation, 25);
  EXPECT_FALSE(net.loss || net.duplicate || net.corrupt || net.bandwidth);
}

TEST(ParseExperiments, BothApiVersionsGiveTheSameModel) {
  const std::string body = R"(
kind: PodChaos
metadata: {name: p}
spec:
  action: pod-failure
  mode: fixed
  value: "2"
  duration: 45s
  selector: {namespaces: [a], labelSelectors: {app: x}}
)";
  auto a = load_experiments("apiVersion: chaos-mesh.org/v1alpha1" + body, "a.yaml");
  auto b = load_experiments("apiVersion: nodequake.io/v1alpha1" + body, "b.yaml");
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_TRUE(b.ok()) << b.error().message();
  const auto& ea = std::get<Experiment>(a->at(0));
  const auto& eb = std::get<Experiment>(b->at(0));
  EXPECT_EQ(ea.api_version, "chaos-mesh.org/v1alpha1");
  EXPECT_EQ(eb.api_version, "nodequake.io/v1alpha1");
  EXPECT_EQ(ea.selector, eb.selector);
  EXPECT_EQ(ea.mode, eb.mode);
  EXPECT_EQ(ea.mode, (selection::ModeSpec{selection::Mode::kFixed, 2}));
  EXPECT_EQ(ea.duration, eb.duration);
  EXPECT_EQ(std::get<PodSpec>(ea.spec).action, std::get<PodSpec>(eb.spec).action);
}

TEST(ParseExperiments, EveryNetemKnobAndAbortRules) {
  auto docs = load_ok("network-degraded.yaml");
  const Experiment& e = experiment_at(docs, 0);
  EXPECT_EQ(e.namespace_, "");
  EXPECT_EQ(e.mode, (selection::ModeSpec{selection::Mode::kFixed, 2}));
  EXPECT_EQ(e.duration, 90s);
  const auto& net = std::get<NetworkSpec>(e.spec);
  EXPECT_EQ(net.action, NetworkAction::kNetem);
  EXPECT_EQ(net.direction, Direction::kBoth);
  EXPECT_EQ(net.device, "eth0");
  EXPECT_EQ(net.external_targets, (std::vector<std::string>{"192.168.10.7/32", "fd00::/64"}));
  EXPECT_EQ(net.delay->latency, 100ms);
  EXPECT_EQ(net.delay->jitter, 10ms);
  EXPECT_DOUBLE_EQ(net.delay->correlation, 50);  // "50%"
  EXPECT_EQ(net.delay->distribution, Distribution::kNormal);
  ASSERT_TRUE(net.delay->reorder);
  EXPECT_DOUBLE_EQ(net.delay->reorder->percent, 10);
  EXPECT_DOUBLE_EQ(net.delay->reorder->correlation, 20);
  EXPECT_EQ(net.delay->reorder->gap, 5u);
  EXPECT_DOUBLE_EQ(net.loss->percent, 2.5);
  EXPECT_DOUBLE_EQ(net.loss->correlation, 25);
  EXPECT_DOUBLE_EQ(net.duplicate->percent, 1);
  EXPECT_DOUBLE_EQ(net.corrupt->percent, 0.5);
  EXPECT_DOUBLE_EQ(net.corrupt->correlation, 10);

  ASSERT_EQ(e.abort_when.size(), 2u);
  EXPECT_EQ(e.abort_when[0].name, "error-rate");
  EXPECT_EQ(e.abort_when[0].query, "chaos:slo:error_rate:1m");
  EXPECT_EQ(e.abort_when[0].comparison, Comparison::kGreater);  // the default
  EXPECT_DOUBLE_EQ(e.abort_when[0].threshold, 0.05);
  EXPECT_EQ(e.abort_when[0].for_duration, 2min);
  EXPECT_EQ(e.abort_when[1].name, e.abort_when[1].query);  // name defaults to the query
  EXPECT_EQ(e.abort_when[1].comparison, Comparison::kGreaterEqual);
  EXPECT_EQ(e.abort_when[1].for_duration, 0s);
  EXPECT_TRUE(prom::compare(5, e.abort_when[1].comparison, 5));
  EXPECT_FALSE(prom::compare(0.05, e.abort_when[0].comparison, 0.05));
}

TEST(ParseExperiments, PartitionWithExpressionsAndExternalTargets) {
  auto docs = load_ok("network-partition.yaml");
  const Experiment& e = experiment_at(docs, 0);
  EXPECT_EQ(e.mode.mode, selection::Mode::kAll);
  const auto& net = std::get<NetworkSpec>(e.spec);
  EXPECT_EQ(net.action, NetworkAction::kPartition);
  EXPECT_EQ(net.direction, Direction::kBoth);
  ASSERT_EQ(net.target->selector.expressions.size(), 1u);
  EXPECT_EQ(net.target->selector.expressions[0],
            (LabelRequirement{"tier", "In", {"backend", "api"}}));
  EXPECT_EQ(net.external_targets, std::vector<std::string>{"10.96.0.0/12"});
}

TEST(ParseExperiments, BandwidthRateUsesTcUnits) {
  auto docs = load_ok("network-bandwidth.yaml");
  const Experiment& e = experiment_at(docs, 0);
  EXPECT_EQ(e.mode, (selection::ModeSpec{selection::Mode::kFixedPercent, 30}));
  const auto& bw = *std::get<NetworkSpec>(e.spec).bandwidth;
  EXPECT_EQ(bw.rate_bps, 8000000u);  // "1mbps" is a megaBYTE per second in tc and Chaos Mesh
  EXPECT_EQ(bw.limit_bytes, 20971520u);
  EXPECT_EQ(bw.buffer_bytes, 10000u);
}

TEST(ParseExperiments, PodChaosThreeDocuments) {
  auto docs = load_ok("pod-chaos.yaml");
  ASSERT_EQ(docs.size(), 3u);
  const Experiment& kill = experiment_at(docs, 0);
  EXPECT_EQ(std::get<PodSpec>(kill.spec).action, PodAction::kPodKill);
  EXPECT_EQ(kill.mode, (selection::ModeSpec{selection::Mode::kFixedPercent, 30}));
  EXPECT_FALSE(kill.duration);  // one-shot: no duration needed
  EXPECT_TRUE(is_one_shot(kill));
  const Experiment& ckill = experiment_at(docs, 1);
  EXPECT_EQ(ckill.where.line, 18);
  EXPECT_EQ(std::get<PodSpec>(ckill.spec).action, PodAction::kContainerKill);
  EXPECT_EQ(std::get<PodSpec>(ckill.spec).containers, std::vector<std::string>{"graphql-gateway"});
  const Experiment& fail = experiment_at(docs, 2);
  EXPECT_EQ(std::get<PodSpec>(fail.spec).action, PodAction::kPodFailure);
  EXPECT_EQ(fail.mode, (selection::ModeSpec{selection::Mode::kRandomMaxPercent, 50}));
  EXPECT_EQ(fail.duration, 30s);
  EXPECT_FALSE(is_one_shot(fail));
}

TEST(ParseExperiments, StressCpuAndMemory) {
  auto docs = load_ok("stress-chaos.yaml");
  ASSERT_EQ(docs.size(), 2u);
  const auto& cpu = std::get<StressSpec>(experiment_at(docs, 0).spec);
  ASSERT_TRUE(cpu.cpu);
  EXPECT_EQ(cpu.cpu->workers, 2u);
  EXPECT_DOUBLE_EQ(cpu.cpu->load, 80);
  EXPECT_FALSE(cpu.memory);
  const auto& mem = std::get<StressSpec>(experiment_at(docs, 1).spec);
  ASSERT_TRUE(mem.memory);
  EXPECT_EQ(mem.memory->workers, 2u);
  EXPECT_EQ(mem.memory->bytes, 256ull << 20);  // "256Mi"
  EXPECT_EQ(mem.containers, std::vector<std::string>{"inference"});
}

TEST(ParseExperiments, MemorySizeAsPercentAndDecimalUnits) {
  auto docs = load_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: StressChaos
metadata: {name: m}
spec:
  mode: all
  duration: 1m
  selector: {namespaces: [a]}
  stressors:
    memory: {size: "40%"}
---
apiVersion: nodequake.io/v1alpha1
kind: StressChaos
metadata: {name: m2}
spec:
  mode: all
  duration: 1m
  selector: {namespaces: [a]}
  stressors:
    memory: {size: 256MB}
    cpu: {load: "50%"}
)",
                               "inline.yaml");
  ASSERT_TRUE(docs.ok()) << docs.error().message();
  const auto& a = std::get<StressSpec>(std::get<Experiment>(docs->at(0)).spec);
  EXPECT_DOUBLE_EQ(a.memory->percent, 40);
  EXPECT_EQ(a.memory->bytes, 0u);
  const auto& b = std::get<StressSpec>(std::get<Experiment>(docs->at(1)).spec);
  EXPECT_EQ(b.memory->bytes, 256000000u);  // MB is decimal
  EXPECT_DOUBLE_EQ(b.cpu->load, 50);
}

TEST(ParseExperiments, IoFaultThrottleAndFill) {
  auto docs = load_ok("io-chaos.yaml");
  ASSERT_EQ(docs.size(), 3u);
  const auto& fault = std::get<IoSpec>(experiment_at(docs, 0).spec);
  EXPECT_EQ(fault.action, IoAction::kFault);
  EXPECT_EQ(fault.volume_path, "/var/lib/postgresql/data");
  EXPECT_EQ(fault.path, "/var/lib/postgresql/data/pg_wal");
  EXPECT_EQ(fault.error, "EIO");  // errno 5, as Chaos Mesh writes it
  EXPECT_DOUBLE_EQ(fault.percent, 50);
  EXPECT_EQ(fault.methods, (std::vector<IoMethod>{IoMethod::kWrite, IoMethod::kOpen}));
  EXPECT_EQ(fault.containers, std::vector<std::string>{"postgres"});
  const auto& throttle = std::get<IoSpec>(experiment_at(docs, 1).spec);
  EXPECT_EQ(throttle.action, IoAction::kThrottle);
  EXPECT_EQ(throttle.effective_path(), "/var/lib/postgresql/data");
  EXPECT_EQ(throttle.throttle.read_bytes_per_second, 1u << 20);
  EXPECT_EQ(throttle.throttle.write_bytes_per_second, 512u << 10);
  EXPECT_EQ(throttle.throttle.read_iops, 0u);
  EXPECT_EQ(throttle.throttle.write_iops, 100u);
  const auto& fill = std::get<IoSpec>(experiment_at(docs, 2).spec);
  EXPECT_EQ(fill.action, IoAction::kDiskFill);
  EXPECT_DOUBLE_EQ(fill.fill.percent, 90);
  EXPECT_EQ(fill.fill.bytes, 0u);
}

TEST(ParseExperiments, ErrnoByName) {
  auto docs = load_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: IOChaos
metadata: {name: e}
spec:
  action: fault
  mode: one
  duration: 1m
  selector: {labelSelectors: {app: db}}
  volumePath: /data
  errno: ENOSPC
)",
                               "inline.yaml");
  ASSERT_TRUE(docs.ok()) << docs.error().message();
  const auto& io = std::get<IoSpec>(std::get<Experiment>(docs->at(0)).spec);
  EXPECT_EQ(io.error, "ENOSPC");
  EXPECT_DOUBLE_EQ(io.percent, 100);  // the default
  EXPECT_TRUE(io.methods.empty());
}

TEST(ParseExperiments, EmptyDocumentsAreSkipped) {
  auto docs = load_experiments(R"(---
---
apiVersion: nodequake.io/v1alpha1
kind: PodChaos
metadata: {name: k}
spec: {action: pod-kill, mode: one, selector: {namespaces: [a]}}
---
)",
                               "inline.yaml");
  ASSERT_TRUE(docs.ok()) << docs.error().message();
  EXPECT_EQ(docs->size(), 1u);
}

}  // namespace
}  // namespace nq::experiment

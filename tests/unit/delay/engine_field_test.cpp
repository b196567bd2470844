// The `engine` field of experiment files (a nodequake extension of
// NetworkChaos): parsed, refused where it means nothing, lowered into the
// NetemFault the agents validate.
#include <gtest/gtest.h>

#include "agent/core/spec.h"
#include "controller/experiment/lower.h"
#include "controller/experiment/parse.h"

namespace nq::experiment {
namespace {

namespace v1 = nodequake::v1;

std::string latency(const std::string& extra, const std::string& action = "delay") {
  return R"(apiVersion: nodequake.io/v1alpha1
kind: NetworkChaos
metadata:
  name: latency
  namespace: chaos-testing
spec:
  action: )" +
         action +
         R"(
  mode: one
  selector:
    namespaces: [llm-marketplace]
    labelSelectors:
      app: graphql-gateway
  direction: to
  externalTargets: ["10.213.0.3"]
  delay:
    latency: "100ms"
  duration: "1m"
)" + extra;
}

v1::NetemFault lowered_netem(const std::string& text) {
  Parsed p = parse_experiments(text, "latency.yaml");
  EXPECT_TRUE(p.ok()) << (p.diagnostics.empty() ? "" : p.diagnostics[0].message);
  if (!p.ok() || p.documents.empty()) return {};
  const Lowered l = lower(std::get<Experiment>(p.documents[0]));
  EXPECT_EQ(l.faults.size(), 1u);
  return l.faults.empty() ? v1::NetemFault{} : l.faults[0].netem();
}

TEST(EngineField, DefaultsToAuto) {
  EXPECT_EQ(lowered_netem(latency("")).engine(), v1::NETEM_ENGINE_AUTO);
}

TEST(EngineField, LoweredIntoTheSpecTheAgentValidates) {
  for (auto [name, want] :
       {std::pair{"auto", v1::NETEM_ENGINE_AUTO}, std::pair{"netem", v1::NETEM_ENGINE_NETEM},
        std::pair{"ebpf", v1::NETEM_ENGINE_EBPF}}) {
    const v1::NetemFault n = lowered_netem(latency(std::string("  engine: ") + name + "\n"));
    EXPECT_EQ(n.engine(), want) << name;
    v1::ApplyRequest req;
    req.set_id("x");
    req.mutable_target()->mutable_pod()->set_namespace_("llm-marketplace");
    req.mutable_target()->mutable_pod()->set_name("graphql-gateway-0");
    *req.mutable_spec()->mutable_netem() = n;
    req.mutable_ttl()->set_seconds(60);
    auto v = core::validate_apply(req, core::Limits{});
    ASSERT_TRUE(v.ok()) << v.error().message();
    EXPECT_EQ(core::engine_name(std::get<core::NetworkFault>(v->fault).engine), name);
  }
}

TEST(EngineField, UnknownValueNamesFieldAndChoices) {
  Parsed p = parse_experiments(latency("  engine: tc\n"), "latency.yaml");
  ASSERT_FALSE(p.ok());
  const Diagnostic& d = p.diagnostics[0];
  EXPECT_EQ(d.field, "spec.engine");
  EXPECT_NE(d.message.find("ebpf"), std::string::npos) << d.message;
}

TEST(EngineField, RefusedWhereNothingIsDelayed) {
  std::string text = latency("  engine: ebpf\n", "partition");
  // A partition has no delay block.
  text.replace(text.find("  delay:\n    latency: \"100ms\"\n"),
               std::string("  delay:\n    latency: \"100ms\"\n").size(), "");
  Parsed p = parse_experiments(text, "partition.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.diagnostics[0].field, "spec.engine") << p.diagnostics[0].message;
}

}  // namespace
}  // namespace nq::experiment

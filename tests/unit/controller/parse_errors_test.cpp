// Every error path of the experiment parser: each error names file, line and
// field, and one pass reports all of them.
#include "controller/experiment/parse.h"
#include "tests/unit/controller/test_util.h"

namespace nq::experiment {
namespace {

using testing::all_diagnostics;

// True when `p` has a diagnostic at `line` for `field` whose message contains `what`.
::testing::AssertionResult has(const Parsed& p, int line, const std::string& field,
                               const std::string& what) {
  for (const Diagnostic& d : p.diagnostics)
    if (d.line == line && d.field == field && d.message.find(what) != std::string::npos)
      return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "no " << line << ": " << field << ": ..." << what << "... in:\n"
         << all_diagnostics(p);
}

// A minimal valid NetworkChaos (lines 1-10) followed by `extra` spec fields
// at line 11 onwards.
Parsed network_with(const std::string& extra) {
  return parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: NetworkChaos
metadata:
  name: n
spec:
  action: delay
  mode: one
  duration: 1m
  selector: {namespaces: [a]}
  delay: {latency: 10ms}
)" + extra,
                           "n.yaml");
}

TEST(ParseErrors, BaseOfTheFixtureIsValid) {
  Parsed p = network_with("");
  EXPECT_TRUE(p.ok()) << all_diagnostics(p);
}

TEST(ParseErrors, UnknownFieldsWithSuggestionsAndLines) {
  Parsed p = parse_experiment_file(testing::data("invalid/unknown-fields.yaml"));
  EXPECT_TRUE(p.documents.empty());
  ASSERT_EQ(p.diagnostics.size(), 4u) << all_diagnostics(p);
  EXPECT_TRUE(
      has(p, 10, "spec.selector.labelSelector", "unknown field; did you mean labelSelectors?"));
  EXPECT_TRUE(has(p, 13, "spec.delay.latncy", "unknown field; did you mean latency?"));
  EXPECT_TRUE(has(p, 13, "spec.delay.latency", "is required"));
  EXPECT_TRUE(has(p, 16, "spec.colour", "unknown field"));
  EXPECT_EQ(p.diagnostics[0].str(),
            testing::data("invalid/unknown-fields.yaml") +
                ":10: spec.selector.labelSelector: unknown field; did you mean labelSelectors?");
  // Sorted by line, as a reader goes through the file.
  for (size_t i = 1; i < p.diagnostics.size(); ++i)
    EXPECT_LE(p.diagnostics[i - 1].line, p.diagnostics[i].line);
}

TEST(ParseErrors, BadUnitsAndEnumsAllReported) {
  Parsed p = parse_experiment_file(testing::data("invalid/bad-values.yaml"));
  EXPECT_TRUE(p.documents.empty());
  EXPECT_EQ(p.diagnostics.size(), 10u) << all_diagnostics(p);
  EXPECT_TRUE(has(p, 8, "spec.value", "percentage in 1..100"));
  EXPECT_TRUE(has(p, 11, "spec.direction", "\"sideways\" is not one of: to, from, both"));
  EXPECT_TRUE(has(p, 13, "spec.delay.latency", "\"500\": missing or unknown unit"));
  EXPECT_TRUE(has(p, 14, "spec.delay.jitter", "\"1parsec\""));
  EXPECT_TRUE(has(p, 15, "spec.delay.correlation", "not a percentage"));
  EXPECT_TRUE(has(p, 16, "spec.duration", "\"5 minutes\""));
  EXPECT_TRUE(has(p, 28, "spec.bandwidth.rate", "unknown unit"));
  EXPECT_TRUE(has(p, 29, "spec.bandwidth.limit", "is not a size"));
  EXPECT_TRUE(has(p, 37, "spec.mode", "did you mean one?"));
  EXPECT_TRUE(has(p, 42, "spec.stressors.memory.size", "unknown unit"));
}

TEST(ParseErrors, UnsupportedChaosMeshFeaturesAreRejectedNotIgnored) {
  Parsed p = parse_experiment_file(testing::data("invalid/unsupported.yaml"));
  EXPECT_TRUE(p.documents.empty());
  EXPECT_TRUE(has(p, 6, "spec.action", "not supported by nodequake: I/O latency"));
  EXPECT_TRUE(has(p, 11, "spec.path", "glob patterns"));
  EXPECT_TRUE(has(p, 12, "spec.delay", "not supported by nodequake"));
  EXPECT_TRUE(has(p, 16, "kind", "not supported by nodequake: DNSChaos"));
  EXPECT_TRUE(has(p, 29, "spec.gracePeriod", "SIGKILL"));
  EXPECT_TRUE(has(p, 32, "spec.selector.pods", "not supported by nodequake"));
  EXPECT_TRUE(has(p, 43, "spec.externalTargets[0]", "does not resolve host names"));
  EXPECT_TRUE(has(p, 47, "spec.delay", "not used by action loss"));
}

TEST(ParseErrors, YamlSyntaxErrorHasALine) {
  Parsed p = parse_experiment_file(testing::data("invalid/syntax.yaml"));
  ASSERT_EQ(p.diagnostics.size(), 1u);
  EXPECT_GT(p.diagnostics[0].line, 0);
  EXPECT_NE(p.diagnostics[0].message.find("YAML syntax"), std::string::npos);
}

TEST(ParseErrors, MissingFileIsOneDiagnostic) {
  Parsed p = parse_experiment_file("/nonexistent/nodequake.yaml");
  ASSERT_EQ(p.diagnostics.size(), 1u);
  EXPECT_NE(p.diagnostics[0].str().find("No such file"), std::string::npos);
}

TEST(ParseErrors, DocumentLevel) {
  Parsed p = parse_experiments(R"(apiVersion: chaos-mesh.org/v2
kind: NetworkChaoss
metadata: {namespace: x}
extra: 1
)",
                               "d.yaml");
  EXPECT_TRUE(
      has(p, 1, "apiVersion", "is not one of: nodequake.io/v1alpha1, chaos-mesh.org/v1alpha1"));
  EXPECT_TRUE(has(p, 2, "kind", "\"NetworkChaoss\" is not one of"));
  EXPECT_TRUE(has(p, 3, "metadata.name", "is required"));
  EXPECT_TRUE(has(p, 1, "spec", "is required"));
  EXPECT_TRUE(has(p, 4, "extra", "unknown field"));
  EXPECT_FALSE(parse_experiments("", "e.yaml").ok());
  EXPECT_TRUE(has(parse_experiments("- a\n- b\n", "l.yaml"), 1, "document", "must be a mapping"));
}

TEST(ParseErrors, DuplicateKeysAreErrors) {
  Parsed p = network_with("  mode: all\n");
  EXPECT_TRUE(has(p, 11, "spec.mode", "duplicate field"));
}

TEST(ParseErrors, ModeAndValue) {
  EXPECT_TRUE(has(network_with("  value: \"3\"\n"), 11, "spec.value", "not used by mode one"));
  auto fixed = [](const std::string& value) {
    return parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: PodChaos
metadata: {name: p}
spec:
  action: pod-kill
  selector: {namespaces: [a]}
  mode: fixed
)" + value,
                             "m.yaml");
  };
  EXPECT_TRUE(has(fixed(""), 5, "spec.value", "is required by mode fixed"));
  EXPECT_TRUE(has(fixed("  value: \"0\"\n"), 8, "spec.value", "at least 1"));
  EXPECT_TRUE(has(fixed("  value: \"30%\"\n"), 8, "spec.value", "not a whole number"));
  EXPECT_TRUE(has(fixed("  value: 1.5\n"), 8, "spec.value", "not a whole number"));
  EXPECT_TRUE(fixed("  value: 3\n").ok());
}

TEST(ParseErrors, SelectorRules) {
  auto with_selector = [](const std::string& sel) {
    return parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: PodChaos
metadata: {name: p}
spec:
  action: pod-kill
  mode: one
  selector:
)" + sel,
                             "s.yaml");
  };
  EXPECT_TRUE(has(with_selector("    nodes: [n1]\n"), 8, "spec.selector.nodes", "not supported"));
  EXPECT_TRUE(
      has(with_selector("    namespaces: a\n"), 8, "spec.selector.namespaces", "must be a list"));
  EXPECT_TRUE(has(with_selector("    expressionSelectors:\n      - {key: k, operator: In}\n"), 9,
                  "spec.selector.expressionSelectors[0].values", "needs at least one value"));
  EXPECT_TRUE(has(
      with_selector("    expressionSelectors:\n      - {key: k, operator: Exists, values: [v]}\n"),
      9, "spec.selector.expressionSelectors[0].values", "takes no values"));
  EXPECT_TRUE(
      has(with_selector("    expressionSelectors:\n      - {key: k, operator: in, values: [v]}\n"),
          9, "spec.selector.expressionSelectors[0].operator", "did you mean In?"));
  EXPECT_TRUE(has(with_selector("    labelSelectors: {}\n"), 8, "spec.selector",
                  "must name namespaces or labels"));
}

TEST(ParseErrors, NetworkActionsNeedTheirBlocks) {
  EXPECT_TRUE(
      has(network_with("  loss: {loss: \"5\"}\n"), 11, "spec.loss", "not used by action delay"));
  EXPECT_TRUE(has(network_with("  bandwidth: {rate: 1mbit}\n"), 11, "spec.bandwidth",
                  "not used by action delay; set action: bandwidth"));
  Parsed p = parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: NetworkChaos
metadata: {name: n}
spec:
  action: netem
  mode: one
  duration: 1m
  selector: {namespaces: [a]}
)",
                               "n.yaml");
  EXPECT_TRUE(has(p, 5, "spec", "action netem needs at least one of"));
  EXPECT_TRUE(
      has(network_with("  target: {mode: all}\n"), 11, "spec.target.selector", "is required"));
  EXPECT_TRUE(
      has(network_with("  bandwidth2: {}\n"), 11, "spec.bandwidth2", "did you mean bandwidth?"));
}

TEST(ParseErrors, DurationRequiredUnlessOneShot) {
  Parsed p = parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: PodChaos
metadata: {name: p}
spec:
  action: pod-failure
  mode: one
  selector: {namespaces: [a]}
)",
                               "d.yaml");
  EXPECT_TRUE(has(p, 5, "spec.duration", "is required"));
}

TEST(ParseErrors, IoRules) {
  auto io = [](const std::string& rest) {
    return parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: IOChaos
metadata: {name: i}
spec:
  mode: one
  duration: 1m
  selector: {namespaces: [a]}
  volumePath: /data
)" + rest,
                             "i.yaml");
  };
  EXPECT_TRUE(has(io("  action: fault\n  errno: EWHAT\n"), 10, "spec.errno", "is not an errno"));
  EXPECT_TRUE(has(io("  action: fault\n"), 5, "spec.errno", "is required"));
  EXPECT_TRUE(has(io("  action: fault\n  errno: 5\n  methods: [mkdir]\n"), 11, "spec.methods[0]",
                  "not supported by nodequake"));
  EXPECT_TRUE(has(io("  action: fault\n  errno: 5\n  path: /etc\n"), 11, "spec.path",
                  "not under volumePath"));
  EXPECT_TRUE(has(io("  action: fault\n  errno: 5\n  percent: 0\n"), 11, "spec.percent", "1..100"));
  EXPECT_TRUE(has(io("  action: throttle\n  errno: 5\n  throttle: {readIOPS: 10}\n"), 10,
                  "spec.errno", "only used by action fault"));
  EXPECT_TRUE(
      has(io("  action: throttle\n  throttle: {}\n"), 10, "spec.throttle", "needs at least one"));
  EXPECT_TRUE(has(io("  action: disk-fill\n  fill: {size: 1Gi, percent: 50}\n"), 10, "spec.fill",
                  "exactly one of size and percent"));
  EXPECT_TRUE(has(io("  action: fault\n  errno: 5\n  volumePath2: x\n"), 11, "spec.volumePath2",
                  "did you mean volumePath?"));
}

TEST(ParseErrors, StressRules) {
  auto stress = [](const std::string& rest) {
    return parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: StressChaos
metadata: {name: s}
spec:
  mode: one
  duration: 1m
  selector: {namespaces: [a]}
)" + rest,
                             "s.yaml");
  };
  EXPECT_TRUE(has(stress(""), 5, "spec.stressors", "is required"));
  EXPECT_TRUE(has(stress("  stressors: {}\n"), 8, "spec.stressors", "needs cpu, memory or both"));
  EXPECT_TRUE(
      has(stress("  stressors:\n    cpu: {load: 0}\n"), 9, "spec.stressors.cpu.load", "above 0"));
  EXPECT_TRUE(has(stress("  stressors:\n    cpu: {load: 80, options: [\"--cpu-method all\"]}\n"), 9,
                  "spec.stressors.cpu.options", "not supported by nodequake"));
  EXPECT_TRUE(has(stress("  stressors:\n    memory: {size: 60%, workers: 2}\n"), 9,
                  "spec.stressors.memory.size", "above 100%"));
  EXPECT_TRUE(has(stress("  stressngStressors: \"--cpu 1\"\n  stressors: {cpu: {load: 5}}\n"), 8,
                  "spec.stressngStressors", "not supported by nodequake"));
}

TEST(ParseErrors, PodRules) {
  auto pod = [](const std::string& rest) {
    return parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: PodChaos
metadata: {name: p}
spec:
  mode: one
  selector: {namespaces: [a]}
)" + rest,
                             "p.yaml");
  };
  EXPECT_TRUE(has(pod("  action: container-kill\n"), 5, "spec.containerNames", "is required"));
  EXPECT_TRUE(has(pod("  action: pod-kill\n  containerNames: [a]\n"), 8, "spec.containerNames",
                  "only used by action container-kill"));
  EXPECT_TRUE(has(pod("  action: pod-kil\n"), 7, "spec.action", "did you mean pod-kill?"));
}

TEST(ParseErrors, AbortRules) {
  Parsed p = network_with(
      "  abortWhen:\n    - {query: up, threshold: high, operator: \"=>\"}\n    - {threshold: 1}\n");
  EXPECT_TRUE(has(p, 12, "spec.abortWhen[0].threshold", "is not a number"));
  EXPECT_TRUE(has(p, 12, "spec.abortWhen[0].operator", "is not one of"));
  EXPECT_TRUE(has(p, 13, "spec.abortWhen[1].query", "is required"));
  EXPECT_TRUE(
      has(network_with("  abortWhen: {query: up}\n"), 11, "spec.abortWhen", "must be a list"));
}

TEST(ParseErrors, LoadExperimentsJoinsEveryDiagnostic) {
  auto r = load_experiments("apiVersion: x\nkind: y\n", "j.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("j.yaml:1: apiVersion"), std::string::npos);
  EXPECT_NE(r.error().message().find("\nj.yaml:2: kind"), std::string::npos);
}

}  // namespace
}  // namespace nq::experiment

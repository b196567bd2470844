#include "agent/runtime/local/pods_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nq::sandbox {
namespace {

using ::testing::HasSubstr;

constexpr const char* kTwoPods = R"(apiVersion: nodequake.io/v1alpha1
kind: SandboxPod
metadata:
  name: postgres-0
  namespace: llm-marketplace
  labels: {app: postgres, chaos-ready: "true"}
spec:
  hostNetwork: false
  containers:
  - name: postgres
    command: []
    resources: {limits: {cpu: "500m", memory: "128Mi"}}
---
apiVersion: nodequake.io/v1alpha1
kind: SandboxPod
metadata: {name: exporter}
spec:
  hostNetwork: true
  containers:
  - name: a
    command: [/bin/sleep, infinity]
  - name: b
    resources: {limits: {cpu: "2"}}
---
)";

std::string error_of(std::string_view yaml) {
  auto r = parse_pods(yaml, "pods.yaml");
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.error().status_code(), Code::kInvalidArgument);
  return r.error().message();
}

TEST(PodsFile, ParsesPodsWithDefaults) {
  auto pods = parse_pods(kTwoPods, "pods.yaml");
  ASSERT_TRUE(pods.ok()) << pods.error().message();
  ASSERT_EQ(pods->size(), 2u);  // the empty trailing document is skipped
  const PodSpec& pg = (*pods)[0];
  EXPECT_EQ(pg.key(), "llm-marketplace/postgres-0");
  EXPECT_EQ(pg.labels,
            (std::map<std::string, std::string>{{"app", "postgres"}, {"chaos-ready", "true"}}));
  EXPECT_FALSE(pg.host_network);
  ASSERT_EQ(pg.containers.size(), 1u);
  EXPECT_TRUE(pg.containers[0].command.empty());
  EXPECT_EQ(pg.containers[0].limits.cpu_millis, 500);
  EXPECT_EQ(pg.containers[0].limits.memory_bytes, 128LL << 20);
  EXPECT_EQ(pg.where, "pods.yaml:1");
  EXPECT_EQ(pg.containers[0].where, "pods.yaml:10");

  const PodSpec& ex = (*pods)[1];
  EXPECT_EQ(ex.namespace_name, "default");
  EXPECT_TRUE(ex.host_network);
  ASSERT_EQ(ex.containers.size(), 2u);
  EXPECT_EQ(ex.containers[0].command, (std::vector<std::string>{"/bin/sleep", "infinity"}));
  EXPECT_EQ(ex.containers[1].limits.cpu_millis, 2000);
  EXPECT_FALSE(ex.containers[1].limits.memory_bytes.has_value());
}

TEST(PodsFile, UnknownFieldsNameFileLineAndField) {
  EXPECT_EQ(error_of("apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\nmetadata: {name: a}\n"
                     "spec:\n  containers:\n  - name: c\n    image: postgres\n"),
            "pods.yaml:7: spec.containers[0].image: unknown field \"image\"");
  EXPECT_EQ(error_of("apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\nmetadata: {name: a}\n"
                     "spec:\n  containers: [{name: c}]\n  restartPolicy: Never\n"),
            "pods.yaml:6: spec.restartPolicy: unknown field \"restartPolicy\"");
  EXPECT_EQ(error_of("apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\n"
                     "metadata: {name: a, annotations: {}}\nspec: {containers: [{name: c}]}\n"),
            "pods.yaml:3: metadata.annotations: unknown field \"annotations\"");
}

TEST(PodsFile, ValidatesNamesKindAndValues) {
  const std::string head = "apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\n";
  EXPECT_THAT(error_of(head + "metadata: {name: Postgres_0}\nspec: {containers: [{name: c}]}\n"),
              HasSubstr("pods.yaml:3: metadata.name: \"Postgres_0\" is not a DNS label"));
  EXPECT_THAT(
      error_of(head + "metadata: {name: a, namespace: -x}\nspec: {containers: [{name: c}]}\n"),
      HasSubstr("pods.yaml:3: metadata.namespace:"));
  EXPECT_THAT(error_of("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n"),
              HasSubstr("pods.yaml:1: apiVersion: \"v1\" is not supported"));
  EXPECT_THAT(error_of(head + "metadata: {name: a}\nspec: {containers: []}\n"),
              HasSubstr("pods.yaml:4: spec.containers: needs at least one container"));
  EXPECT_THAT(error_of(head + "metadata: {name: a}\nspec: {containers: [{name: c}, {name: c}]}\n"),
              HasSubstr("spec.containers[1].name: duplicate container name \"c\""));
  EXPECT_THAT(error_of(head + "metadata: {name: a}\nspec: {containers: [{command: [x]}]}\n"),
              HasSubstr("spec.containers[0].name: is required"));
  EXPECT_THAT(
      error_of(head + "metadata: {name: a}\nspec: {hostNetwork: yes, containers: [{name: c}]}\n"),
      HasSubstr("spec.hostNetwork: must be true or false"));
  // A shell line where argv is expected.
  EXPECT_THAT(
      error_of(head +
               "metadata: {name: a}\nspec: {containers: [{name: c, command: \"sleep 1\"}]}\n"),
      HasSubstr("spec.containers[0].command: must be a list of strings"));
}

TEST(PodsFile, LabelValuesMustBeStringsLikeTheApiServer) {
  const std::string head = "apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\n";
  EXPECT_EQ(error_of(head + "metadata:\n  name: a\n  labels:\n    chaos-ready: true\n"
                            "spec: {containers: [{name: c}]}\n"),
            "pods.yaml:6: metadata.labels.chaos-ready: must be a string: quote it (\"true\")");
  EXPECT_THAT(error_of(head + "metadata: {name: a, labels: {v: \"has space\"}}\n"
                              "spec: {containers: [{name: c}]}\n"),
              HasSubstr("metadata.labels.v: \"has space\" is not a label value"));
  EXPECT_THAT(error_of(head + "metadata: {name: a, labels: {\"-bad\": x}}\n"
                              "spec: {containers: [{name: c}]}\n"),
              HasSubstr("is not a label key"));
  auto ok = parse_pods(head +
                           "metadata: {name: a, labels: {app.kubernetes.io/name: x, e: \"\"}}\n"
                           "spec: {containers: [{name: c}]}\n",
                       "p.yaml");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ((*ok)[0].labels.at("app.kubernetes.io/name"), "x");
}

TEST(PodsFile, ReadinessProbe) {
  const std::string head =
      "apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\nmetadata: {name: a}\nspec:\n"
      "  containers:\n  - name: c\n";
  auto ok = parse_pods(head + "    readinessProbe: {tcpSocket: {port: 8080}}\n", "p.yaml");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ((*ok)[0].containers[0].readiness_port, 8080);
  EXPECT_EQ(error_of(head + "    readinessProbe: {httpGet: {port: 80}}\n"),
            "pods.yaml:7: spec.containers[0].readinessProbe.httpGet: unknown field \"httpGet\"");
  EXPECT_EQ(error_of(head + "    readinessProbe: {tcpSocket: {port: 70000}}\n"),
            "pods.yaml:7: spec.containers[0].readinessProbe.tcpSocket.port: \"70000\" is not a "
            "port number (1-65535)");
}

TEST(PodsFile, DuplicatePodsAreErrors) {
  const std::string pod =
      "apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\nmetadata: {name: a, namespace: n}\n"
      "spec: {containers: [{name: c}]}\n";
  EXPECT_EQ(error_of(pod + "---\n" + pod), "pods.yaml:8: metadata.name: duplicate pod n/a");
}

TEST(PodsFile, SyntaxErrorsNameTheLine) {
  EXPECT_THAT(error_of("apiVersion: x\nmetadata: {name: [\n"), HasSubstr("pods.yaml:"));
}

TEST(PodsFile, Quantities) {
  EXPECT_EQ(*parse_cpu_millis("500m", "f"), 500);
  EXPECT_EQ(*parse_cpu_millis("2", "f"), 2000);
  EXPECT_EQ(*parse_cpu_millis("0.25", "f"), 250);
  EXPECT_EQ(*parse_cpu_millis("1.5", "f"), 1500);
  EXPECT_FALSE(parse_cpu_millis("5m", "f").ok());      // under the kernel's 1ms quota
  EXPECT_FALSE(parse_cpu_millis("0.0001", "f").ok());  // not whole millicores
  EXPECT_FALSE(parse_cpu_millis("1 cpu", "f").ok());
  EXPECT_FALSE(parse_cpu_millis("", "f").ok());
  EXPECT_EQ(parse_cpu_millis("x", "spec.cpu").error().message(),
            "spec.cpu: \"x\" is not a CPU quantity (e.g. \"500m\", \"2\")");

  EXPECT_EQ(*parse_memory_bytes("128Mi", "f"), 128LL << 20);
  EXPECT_EQ(*parse_memory_bytes("1Gi", "f"), 1LL << 30);
  EXPECT_EQ(*parse_memory_bytes("1.5Gi", "f"), 3LL << 29);
  EXPECT_EQ(*parse_memory_bytes("64M", "f"), 64'000'000);
  EXPECT_EQ(*parse_memory_bytes("8388608", "f"), 8388608);
  EXPECT_FALSE(parse_memory_bytes("1Ki", "f").ok());  // below the 4Mi floor
  EXPECT_FALSE(parse_memory_bytes("12MB", "f").ok());
  EXPECT_FALSE(parse_memory_bytes("-5Mi", "f").ok());
  EXPECT_FALSE(parse_memory_bytes("99999999999Ei", "f").ok());  // overflow
}

TEST(PodsFile, LimitErrorsNameTheirLine) {
  EXPECT_EQ(error_of("apiVersion: nodequake.io/v1alpha1\nkind: SandboxPod\nmetadata: {name: a}\n"
                     "spec:\n  containers:\n  - name: c\n    resources:\n      limits:\n"
                     "        memory: 12MB\n"),
            "pods.yaml:9: spec.containers[0].resources.limits.memory: \"12MB\" is not a whole "
            "number of bytes (e.g. \"128Mi\", \"1G\", \"65536\")");
}

TEST(PodsFile, NameRules) {
  EXPECT_TRUE(is_dns_label("postgres-0"));
  EXPECT_FALSE(is_dns_label("postgres-"));
  EXPECT_FALSE(is_dns_label(std::string(64, 'a')));
  EXPECT_TRUE(is_label_key("nodequake.io/owner"));
  EXPECT_FALSE(is_label_key("a/b/c"));
  EXPECT_TRUE(is_label_value(""));
  EXPECT_FALSE(is_label_value("x-"));
}

TEST(PodsFile, TheDefaultPodsFileIsValid) {
  auto pods = load_pods_file(NQ_SOURCE_DIR "/experiments/sandbox/pods.yaml");
  ASSERT_TRUE(pods.ok()) << pods.error().message();
  int opted_in = 0, host_network = 0;
  for (const PodSpec& p : *pods) {
    if (p.labels.count("chaos-ready") && p.labels.at("chaos-ready") == "true") ++opted_in;
    if (p.host_network) ++host_network;
  }
  EXPECT_EQ(pods->size(), 5u);
  EXPECT_EQ(opted_in, 4);
  EXPECT_EQ(host_network, 1);
  EXPECT_EQ((*pods)[1].key(), "llm-marketplace/postgres-0");
}

}  // namespace
}  // namespace nq::sandbox

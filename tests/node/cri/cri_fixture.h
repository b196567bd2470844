// What the cri node tests share: one containerd of the suite's own
// (tests/support/containerd/), pods made per test and removed at its end,
// and small measurements on real pods.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/runtime.h"
#include "common/result.h"
#include "tests/support/containerd/containerd_env.h"

namespace nq::testing {

// The suite's containerd, started once (images built and imported once);
// a reason to skip when it cannot run here, a failure when it should but
// does not.
class CriSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  void TearDown() override;

  ContainerdEnv& env() { return *env_; }
  // Runs a pod and removes it in TearDown (also when the test failed).
  PodHandle run(const PodSpec& spec);
  // Removes it now (the test's "pod deleted"), not again in TearDown.
  void remove(const PodHandle& pod);
  // A unique pod name for this test.
  std::string pod_name(const std::string& base) const;

  static std::unique_ptr<ContainerdEnv> env_;
  static std::string skip_reason_;
  static std::string fail_reason_;
  std::vector<std::string> pods_;
};

PodSpec labeled_pod(const std::string& ns, const std::string& name,
                    std::map<std::string, std::string> labels = {{"chaos-ready", "true"}});

// TCP handshake from inside `netns_path` to ip:port.
Status connect_from(const std::string& netns_path, const std::string& ip, uint16_t port,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(1500));

// CPU the cgroup of `container` used over `window`, in percent of one CPU
// (v1 cpuacct.usage, v2 cpu.stat usage_usec).
Result<double> cpu_percent(const runtime::ContainerInfo& container,
                           std::chrono::milliseconds window);

// The container's cgroup directory (v1 pids hierarchy or v2).
Result<std::filesystem::path> cgroup_dir(const runtime::ContainerInfo& container);
// The pids in it.
Result<std::vector<pid_t>> cgroup_pids(const runtime::ContainerInfo& container);

}  // namespace nq::testing

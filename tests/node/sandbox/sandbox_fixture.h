// A sandbox of the test's own (tests/support/sandbox_env.h): a temporary
// registry, bridge, subnet, netns prefix and cgroup parent, all named after
// the test's pid so concurrent runs and a real sandbox on the machine never
// collide. TearDown removes every pod (through `down`) and then, as a safety
// net, anything with the test's names.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/pods_file.h"
#include "agent/runtime/local/registry.h"
#include "agent/runtime/local/sandbox.h"
#include "tests/support/sandbox_env.h"

namespace nq::sandbox::testing {

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // "<ns>/<name>" of a pod of this test.
  std::string key(const std::string& name) const { return env_.key(name); }
  // A pod in the test's namespace; `command` empty runs nq-echo.
  PodSpec pod(const std::string& name, std::vector<std::string> command = {},
              bool host_network = false) const {
    return env_.pod(name, std::move(command), host_network);
  }
  PodRecord record(const std::string& name) const;
  std::string netns_path(const std::string& name) const { return env_.netns_path(name); }

  // Pids of processes whose command line contains `needle`.
  static std::vector<pid_t> processes_with(const std::string& needle) {
    return nq::testing::SandboxEnv::processes_with(needle);
  }
  static bool link_exists(const std::string& name);
  static std::string read_file(const std::filesystem::path& path);

  nq::testing::SandboxEnv env_;
  SandboxOptions& opts_ = env_.options();
  const std::string& ns_ = env_.ns();          // pod namespace, "nqt-<pid>"
  const std::string& suffix_ = env_.suffix();  // "-<pid>", for pod names
  const runtime::CgroupFs* cgroups_ = nullptr;
};

}  // namespace nq::sandbox::testing

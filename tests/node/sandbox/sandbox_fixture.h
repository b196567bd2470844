// A sandbox of the test's own: a temporary registry, bridge, subnet, netns
// prefix and cgroup parent, all named after the test's pid so concurrent runs
// and a real sandbox on the machine never collide. TearDown removes every pod
// (through `down`) and then, as a safety net, anything with the test's names.
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

namespace nq::sandbox::testing {

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // "<ns>/<name>" of a pod of this test.
  std::string key(const std::string& name) const { return ns_ + "/" + name; }
  // A pod in the test's namespace; `command` empty runs nq-echo.
  PodSpec pod(const std::string& name, std::vector<std::string> command = {},
              bool host_network = false) const;
  PodRecord record(const std::string& name) const;
  std::string netns_path(const std::string& name) const;

  // Pids of processes whose command line contains `needle`.
  static std::vector<pid_t> processes_with(const std::string& needle);
  static bool link_exists(const std::string& name);
  static std::string read_file(const std::filesystem::path& path);

  SandboxOptions opts_;
  std::string ns_;      // pod namespace, "nqt-<pid>"
  std::string suffix_;  // "-<pid>", for pod names
  std::unique_ptr<runtime::CgroupFs> cgroups_;
};

}  // namespace nq::sandbox::testing

// Registry records: JSON round trip, atomic files, listing.
#include "agent/runtime/local/registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace nq::sandbox {
namespace {

PodRecord sample(std::string name) {
  PodRecord r;
  r.namespace_name = "llm-marketplace";
  r.name = std::move(name);
  r.uid = "0f1e2d3c-4b5a-4697-8877-665544332211";
  r.labels = {{"app", "postgres"}, {"chaos-ready", "true"}};
  r.netns_path = "/run/netns/nq-llm-marketplace." + r.name;
  r.ips = {"10.213.0.3"};
  r.ip_cidr = "10.213.0.3/24";
  r.host_veth = "nq0f1e2d3c";
  r.bridge = "nqbr0";
  r.cgroup_parent = "nodequake";
  r.cgroup_dirs = {"/sys/fs/cgroup/cpu/nodequake/pod0f1e",
                   "/sys/fs/cgroup/unified/nodequake/pod0f1e"};
  r.shim_pid = 4242;
  r.shim_start_time = 123456789;
  r.log_path = "/run/nodequake/sandbox/logs/x.log";
  ContainerRecord c;
  c.name = "postgres";
  c.id = "abcdef0123456789";
  c.argv = {"/usr/bin/nq-echo", "--name", r.name};
  c.limits.cpu_millis = 500;
  c.limits.memory_bytes = 128LL << 20;
  c.readiness_port = 8080;
  c.pid = 4250;
  c.pid_start_time = 123456800;
  c.restart_count = 2;
  c.last_exit = "signal 9 (Killed)";
  c.cgroups.by_hierarchy = {{"cpu", "/nodequake/pod0f1e/postgres"},
                            {"", "/nodequake/pod0f1e/postgres"}};
  c.cgroup_dirs = {"/sys/fs/cgroup/cpu/nodequake/pod0f1e/postgres"};
  r.containers.push_back(c);
  c.name = "sidecar";
  c.limits = {};
  r.containers.push_back(c);
  return r;
}

class TempDir {
 public:
  TempDir()
      : path_(std::filesystem::temp_directory_path() /
              ("nq-registry-test-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

TEST(Registry, JsonRoundTrip) {
  const PodRecord r = sample("postgres-0");
  auto back = pod_from_json(to_json(r), "x.json");
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, r);
  EXPECT_FALSE(back->containers[1].limits.cpu_millis.has_value());
}

TEST(Registry, BadRecordsNameTheirFile) {
  auto bad = pod_from_json("{\"namespace\": \"x\"}", "/state/x_y.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status_code(), Code::kDataLoss);
  EXPECT_NE(bad.error().message().find("/state/x_y.json: bad pod record"), std::string::npos);
  EXPECT_FALSE(pod_from_json("not json", "f").ok());
}

TEST(Registry, PutGetListRemove) {
  TempDir dir;
  const Registry reg(dir.path() / "sandbox");
  auto empty = reg.list();  // a missing directory is an empty registry
  ASSERT_TRUE(empty.ok()) << empty.error().message();
  EXPECT_TRUE(empty->empty());
  EXPECT_EQ(reg.get("a", "b").error().status_code(), Code::kNotFound);

  PodRecord b = sample("redis-0"), a = sample("postgres-0");
  ASSERT_TRUE(reg.put(b).ok());
  ASSERT_TRUE(reg.put(a).ok());
  EXPECT_EQ(reg.file_for("llm-marketplace", "redis-0"),
            dir.path() / "sandbox" / "llm-marketplace_redis-0.json");
  EXPECT_EQ(
      std::filesystem::status(dir.path() / "sandbox").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_all);

  a.containers[0].pid = 999;  // an update replaces the whole record
  ASSERT_TRUE(reg.put(a).ok());
  auto got = reg.get("llm-marketplace", "postgres-0");
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(got->containers[0].pid, 999);

  // A temporary left by an interrupted put and the lock file are not records.
  std::ofstream(dir.path() / "sandbox" / "llm-marketplace_x.json.tmp") << "{";
  {
    auto lock = reg.lock();
    ASSERT_TRUE(lock.ok());
  }
  auto all = reg.list();
  ASSERT_TRUE(all.ok()) << all.error().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "postgres-0");  // sorted
  EXPECT_EQ((*all)[1].name, "redis-0");

  ASSERT_TRUE(reg.remove("llm-marketplace", "x").ok());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "sandbox" / "llm-marketplace_x.json.tmp"));
  ASSERT_TRUE(reg.remove("llm-marketplace", "redis-0").ok());
  ASSERT_TRUE(reg.remove("llm-marketplace", "redis-0").ok());  // idempotent
  EXPECT_EQ(reg.list()->size(), 1u);

  std::ofstream(dir.path() / "sandbox" / "broken_pod.json") << "{";
  auto broken = reg.list();
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message().find("broken_pod.json"), std::string::npos);
}

}  // namespace
}  // namespace nq::sandbox

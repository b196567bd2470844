// Validation of the workload fault kinds: every bad input is INVALID_ARGUMENT
// naming the field, and good input comes out normalized.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "agent/core/spec.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::core {
namespace {

namespace v1 = nodequake::v1;

v1::ApplyRequest request(const std::function<void(v1::FaultSpec&)>& fill) {
  v1::ApplyRequest r;
  r.set_id("w1");
  r.mutable_target()->mutable_pod()->set_namespace_("llm-marketplace");
  r.mutable_target()->mutable_pod()->set_name("postgres-0");
  *r.mutable_ttl() = google::protobuf::util::TimeUtil::SecondsToDuration(60);
  fill(*r.mutable_spec());
  return r;
}

Result<WorkloadFault> validate(const std::function<void(v1::FaultSpec&)>& fill) {
  auto v = validate_apply(request(fill), Limits{});
  if (!v.ok()) return std::move(v).error();
  if (!std::holds_alternative<WorkloadFault>(v->fault))
    return Error::internal("not a workload fault");
  return std::get<WorkloadFault>(v->fault);
}

TEST(WorkloadSpec, GoodSpecsComeOutNormalized) {
  auto cpu = validate([](auto& s) { s.mutable_cpu_stress()->set_load(80); });
  ASSERT_TRUE(cpu.ok()) << cpu.error().message();
  EXPECT_EQ(cpu->kind, FaultKind::kCpuStress);
  EXPECT_EQ(std::get<CpuStress>(cpu->params).load, 80);

  auto io = validate([](auto& s) {
    s.mutable_io_errno()->set_path("/var//lib/./postgres/");
    s.mutable_io_errno()->set_error("EIO");
    s.mutable_io_errno()->add_operations(v1::IO_OPERATION_READ);
  });
  ASSERT_TRUE(io.ok()) << io.error().message();
  const auto& e = std::get<IoErrno>(io->params);
  EXPECT_EQ(e.path, "/var/lib/postgres");
  EXPECT_EQ(e.error, EIO);
  EXPECT_EQ(e.error_name, "EIO");
  EXPECT_EQ(e.percent, 100);  // 0 means every call
  EXPECT_EQ(e.operations, kIoRead);

  auto by_number = validate([](auto& s) {
    s.mutable_io_errno()->set_path("/data");
    s.mutable_io_errno()->set_error("28");
    s.mutable_io_errno()->set_percent(50);
  });
  ASSERT_TRUE(by_number.ok()) << by_number.error().message();
  EXPECT_EQ(std::get<IoErrno>(by_number->params).error_name, "ENOSPC");
  EXPECT_EQ(std::get<IoErrno>(by_number->params).operations, kIoAllOperations);

  auto fill = validate([](auto& s) {
    s.mutable_disk_fill()->set_path("/");
    s.mutable_disk_fill()->set_percent(90);
  });
  ASSERT_TRUE(fill.ok()) << fill.error().message();
  EXPECT_EQ(std::get<DiskFill>(fill->params).path, "/");

  for (auto set : std::vector<std::function<void(v1::FaultSpec&)>>{
           [](auto& s) { s.mutable_container_kill(); }, [](auto& s) { s.mutable_pod_kill(); },
           [](auto& s) { s.mutable_pod_failure(); }}) {
    auto p = validate(set);
    ASSERT_TRUE(p.ok()) << p.error().message();
    EXPECT_TRUE(std::holds_alternative<ProcessFault>(p->params));
    EXPECT_FALSE(is_network_kind(p->kind));
  }
}

TEST(WorkloadSpec, BadInputNamesTheField) {
  struct Case {
    std::function<void(v1::FaultSpec&)> fill;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](auto& s) { s.mutable_cpu_stress()->set_load(0); }, "spec.cpu_stress.load: 0 is outside"},
      {[](auto& s) { s.mutable_cpu_stress()->set_load(101); }, "spec.cpu_stress.load: 101 is"},
      {[](auto& s) { s.mutable_cpu_stress()->set_load(-5); }, "spec.cpu_stress.load: -5 is"},
      {[](auto& s) {
         s.mutable_cpu_stress()->set_load(50);
         s.mutable_cpu_stress()->set_workers(5000);
       },
       "spec.cpu_stress.workers"},
      {[](auto& s) { s.mutable_memory_stress(); }, "spec.memory_stress: bytes or percent required"},
      {[](auto& s) {
         s.mutable_memory_stress()->set_bytes(1);
         s.mutable_memory_stress()->set_percent(5);
       },
       "spec.memory_stress: set either"},
      {[](auto& s) { s.mutable_memory_stress()->set_percent(120); },
       "spec.memory_stress.percent: 120"},
      {[](auto& s) {
         s.mutable_io_errno()->set_path("/data");
         s.mutable_io_errno()->set_error("EWHATEVER");
       },
       "spec.io_errno.error: unknown errno name \"EWHATEVER\""},
      {[](auto& s) {
         s.mutable_io_errno()->set_path("/data");
         s.mutable_io_errno()->set_error("99999");
       },
       "spec.io_errno.error: 99999 is not a known errno"},
      {[](auto& s) { s.mutable_io_errno()->set_path("/data"); }, "spec.io_errno.error: required"},
      {[](auto& s) {
         s.mutable_io_errno()->set_path("data");
         s.mutable_io_errno()->set_error("EIO");
       },
       "spec.io_errno.path: \"data\" is not absolute"},
      {[](auto& s) {
         s.mutable_io_errno()->set_path("/data/../../etc");
         s.mutable_io_errno()->set_error("EIO");
       },
       "spec.io_errno.path: \"/data/../../etc\" contains \"..\""},
      {[](auto& s) {
         s.mutable_io_errno()->set_path("/data");
         s.mutable_io_errno()->set_error("EIO");
         s.mutable_io_errno()->set_percent(150);
       },
       "spec.io_errno.percent: 150"},
      {[](auto& s) {
         s.mutable_io_errno()->set_path("/data");
         s.mutable_io_errno()->set_error("EIO");
         s.mutable_io_errno()->add_operations(static_cast<v1::IoOperation>(9));
       },
       "spec.io_errno.operations[0]: unknown operation 9"},
      {[](auto& s) { s.mutable_io_throttle()->set_path("/data"); },
       "spec.io_throttle: set at least"},
      {[](auto& s) {
         s.mutable_io_throttle()->set_path("");
         s.mutable_io_throttle()->set_read_iops(10);
       },
       "spec.io_throttle.path: required"},
      {[](auto& s) { s.mutable_disk_fill()->set_path("/tmp"); },
       "spec.disk_fill: bytes or percent"},
      {[](auto& s) {
         s.mutable_disk_fill()->set_path("/tmp/..");
         s.mutable_disk_fill()->set_bytes(10);
       },
       "spec.disk_fill.path"},
  };
  for (const auto& c : cases) {
    auto v = validate(c.fill);
    ASSERT_FALSE(v.ok()) << c.needle;
    EXPECT_EQ(v.error().status_code(), Code::kInvalidArgument) << c.needle;
    EXPECT_NE(v.error().message().find(c.needle), std::string::npos)
        << "wanted \"" << c.needle << "\" in: " << v.error().message();
  }
}

TEST(WorkloadSpec, ContainerPaths) {
  EXPECT_EQ(*validate_container_path("/", "p"), "/");
  EXPECT_EQ(*validate_container_path("//a///b/.", "p"), "/a/b");
  EXPECT_FALSE(validate_container_path("/a/..b/../c", "p").ok());
  EXPECT_EQ(*validate_container_path("/a/..b/c", "p"), "/a/..b/c");  // "..b" is a name
  EXPECT_FALSE(validate_container_path(std::string("/a\0b", 4), "p").ok());
}

TEST(WorkloadSpec, KindNamesAreTheApisAndUnique) {
  std::set<std::string_view> names;
  for (FaultKind k : kAllFaultKinds) {
    EXPECT_NE(kind_name(k), "unknown");
    EXPECT_TRUE(names.insert(kind_name(k)).second) << kind_name(k);
  }
  EXPECT_EQ(kind_name(FaultKind::kIoErrno), "io_errno");
}

TEST(WorkloadSpec, IoErrnoNeedsBpfLsm) {
  auto v = validate_apply(request([](auto& s) {
                            s.mutable_io_errno()->set_path("/data");
                            s.mutable_io_errno()->set_error("EIO");
                          }),
                          Limits{});
  ASSERT_TRUE(v.ok());
  const auto caps = required_capabilities(v->fault);
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].first, "bpf_lsm");
}

}  // namespace
}  // namespace nq::core

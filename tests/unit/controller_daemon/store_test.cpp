// The experiment record store: atomic saves, loading what an earlier
// controller left (also half-written temporary files and corrupt records),
// and what a restart makes of a record that was still running.
#include "controller/daemon/store.h"

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "common/file.h"

namespace nq::controller {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/nq-store-test-" + std::to_string(::getpid()) + "-XXXXXX";
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

v1::ExperimentRecord record(const std::string& id, v1::ExperimentState state, int64_t submitted_s) {
  v1::ExperimentRecord r;
  r.set_version(1);
  auto& s = *r.mutable_status();
  s.set_id(id);
  s.set_name("shop/" + id);
  s.set_kind("NetworkChaos");
  s.set_state(state);
  s.set_phase("running");
  s.set_seed(42);
  s.set_candidates(10);
  s.set_summary("NetworkChaos shop/" + id + ": bandwidth 1Mbit/s");
  *s.mutable_submitted_at() = TimeUtil::SecondsToTimestamp(submitted_s);
  auto* c = s.add_chosen();
  c->set_node("node-a");
  c->set_agent("127.0.0.1:9443");
  c->set_namespace_("shop");
  c->set_name("web-0");
  return r;
}

TEST(ExperimentStore, SavedRecordsLoadBackWhole) {
  TempDir dir;
  auto store = ExperimentStore::open(dir.path() / "experiments");
  ASSERT_TRUE(store.ok()) << store.error().message();
  auto a = record("a-00000001", v1::EXPERIMENT_STATE_SUCCEEDED, 200);
  auto b = record("b-00000002", v1::EXPERIMENT_STATE_RUNNING, 100);
  auto* inj = b.add_injections();
  inj->set_agent("127.0.0.1:9443");
  inj->set_id("b-00000002/shop/web-0");
  ASSERT_TRUE(store->save(a).ok());
  ASSERT_TRUE(store->save(b).ok());

  auto loaded = store->load_all();
  EXPECT_TRUE(loaded.problems.empty());
  ASSERT_EQ(loaded.records.size(), 2u);
  // Oldest submission first.
  EXPECT_EQ(loaded.records[0].status().id(), "b-00000002");
  EXPECT_EQ(loaded.records[0].status().state(), v1::EXPERIMENT_STATE_RUNNING);
  EXPECT_EQ(loaded.records[0].status().seed(), 42u);
  ASSERT_EQ(loaded.records[0].injections_size(), 1);
  EXPECT_EQ(loaded.records[0].injections(0).id(), "b-00000002/shop/web-0");
  EXPECT_EQ(loaded.records[1].status().chosen(0).name(), "web-0");
  EXPECT_EQ(loaded.records[1].status().summary(),
            "NetworkChaos shop/a-00000001: bandwidth 1Mbit/s");
}

TEST(ExperimentStore, SaveReplacesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  auto store = ExperimentStore::open(dir.path());
  ASSERT_TRUE(store.ok());
  auto r = record("x-00000001", v1::EXPERIMENT_STATE_RUNNING, 1);
  ASSERT_TRUE(store->save(r).ok());
  r.mutable_status()->set_state(v1::EXPERIMENT_STATE_ABORTED);
  ASSERT_TRUE(store->save(r).ok());
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "x-00000001.json");
  }
  EXPECT_EQ(files, 1u);
  auto text = read_file(store->file_of("x-00000001"));
  ASSERT_TRUE(text.ok());
  // Enum names, readable by a human with jq.
  EXPECT_NE(text->find("EXPERIMENT_STATE_ABORTED"), std::string::npos) << *text;
}

TEST(ExperimentStore, IdsThatAreNoFileNamesAreRefused) {
  TempDir dir;
  auto store = ExperimentStore::open(dir.path());
  ASSERT_TRUE(store.ok());
  for (const char* id : {"", "../escape", "a/b"}) {
    auto r = record(id, v1::EXPERIMENT_STATE_RUNNING, 1);
    EXPECT_FALSE(store->save(r).ok()) << id;
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(ExperimentStore, LeftoversOfAnInterruptedSaveAndCorruptRecords) {
  TempDir dir;
  auto store = ExperimentStore::open(dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store->save(record("good-00000001", v1::EXPERIMENT_STATE_SUCCEEDED, 1)).ok());
  // A save cut short before its rename, and a file that is not a record.
  std::ofstream(dir.path() / "good-00000001.json.tmp") << "{\"status\": {\"id\": \"good-0";
  std::ofstream(dir.path() / "bad-00000002.json") << "not json at all";
  std::ofstream(dir.path() / "README") << "ignored";

  auto loaded = store->load_all();
  ASSERT_EQ(loaded.records.size(), 1u);
  EXPECT_EQ(loaded.records[0].status().id(), "good-00000001");
  ASSERT_EQ(loaded.problems.size(), 1u);
  EXPECT_NE(loaded.problems[0].message().find("bad-00000002.json"), std::string::npos)
      << loaded.problems[0].message();
  EXPECT_FALSE(fs::exists(dir.path() / "good-00000001.json.tmp"));
  // The corrupt record stays for a human to look at.
  EXPECT_TRUE(fs::exists(dir.path() / "bad-00000002.json"));
}

TEST(ExperimentStore, RecordsOfANewerControllerStillLoad) {
  auto r = decode_record(
      R"({"version": 1, "status": {"id": "n-1", "state": "EXPERIMENT_STATE_SUCCEEDED",
          "field_from_the_future": 3}, "other": true})",
      "n-1.json");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status().state(), v1::EXPERIMENT_STATE_SUCCEEDED);
  auto missing = decode_record(R"({"version": 1, "status": {}})", "x.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("status.id"), std::string::npos);
}

TEST(MarkInterrupted, ALiveRecordBecomesInterruptedWithTheLeaseNamed) {
  for (auto live : {v1::EXPERIMENT_STATE_RUNNING, v1::EXPERIMENT_STATE_PENDING}) {
    auto r = record("live-00000001", live, 1);
    ASSERT_TRUE(mark_interrupted(r, std::chrono::seconds(30)));
    EXPECT_EQ(r.status().state(), v1::EXPERIMENT_STATE_INTERRUPTED);
    EXPECT_EQ(r.status().phase(), "done");
    EXPECT_TRUE(r.status().has_ended_at());
    EXPECT_NE(r.status().message().find("lease controller/live-00000001 ran out (30 s"),
              std::string::npos)
        << r.status().message();
  }
}

TEST(MarkInterrupted, EndedRecordsStayAsTheyWere) {
  for (auto ended :
       {v1::EXPERIMENT_STATE_SUCCEEDED, v1::EXPERIMENT_STATE_FAILED, v1::EXPERIMENT_STATE_ABORTED,
        v1::EXPERIMENT_STATE_REVERTED, v1::EXPERIMENT_STATE_INTERRUPTED}) {
    auto r = record("done-00000001", ended, 1);
    const std::string before = r.SerializeAsString();
    EXPECT_FALSE(mark_interrupted(r, std::chrono::seconds(30)));
    EXPECT_EQ(r.SerializeAsString(), before);
  }
}

}  // namespace
}  // namespace nq::controller

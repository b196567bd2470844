#include "agent/journal/journal.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

namespace nq {
namespace {

namespace fs = std::filesystem;
using google::protobuf::util::MessageDifferencer;

// A fresh directory per test, removed also when the test fails.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::path("/tmp") /
            ("nq-journal-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, std::string_view data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

journal::Record begun(const std::string& id, const std::string& link_key) {
  journal::Record r;
  r.mutable_begun()->mutable_injection()->set_id(id);
  r.mutable_begun()->mutable_injection()->set_kind("netem");
  r.mutable_begun()->set_link_key(link_key);
  return r;
}

journal::Record ended(const std::string& id) {
  journal::Record r;
  r.mutable_ended()->set_id(id);
  r.mutable_ended()->set_reason("revert");
  return r;
}

journal::Record link(const std::string& key, uint32_t root_handle) {
  journal::Record r;
  r.mutable_link_owned()->set_key(key);
  r.mutable_link_owned()->set_ifname("eth0");
  r.mutable_link_owned()->set_root_handle(root_handle);
  r.mutable_link_owned()->mutable_netns()->set_path("/run/netns/" + key);
  return r;
}

journal::Record released(const std::string& key) {
  journal::Record r;
  r.mutable_link_released()->set_key(key);
  return r;
}

journal::Record killswitch(bool engaged, const std::string& actor) {
  journal::Record r;
  r.mutable_killswitch()->mutable_status()->set_engaged(engaged);
  r.mutable_killswitch()->mutable_status()->set_actor(actor);
  return r;
}

::testing::AssertionResult same_records(const std::vector<journal::Record>& a,
                                        const std::vector<journal::Record>& b) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << a.size() << " records vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (!MessageDifferencer::Equals(a[i], b[i]))
      return ::testing::AssertionFailure() << "record " << i << ": " << a[i].ShortDebugString()
                                           << " vs " << b[i].ShortDebugString();
  return ::testing::AssertionSuccess();
}

template <class M>
::testing::AssertionResult same_map(const std::map<std::string, M>& a,
                                    const std::map<std::string, M>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size();
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) return ::testing::AssertionFailure() << "missing " << k;
    if (!MessageDifferencer::Equals(v, it->second))
      return ::testing::AssertionFailure() << "differs at " << k;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_state(const JournalState& a, const JournalState& b) {
  if (auto r = same_map(a.injections, b.injections); !r) return r << " (injections)";
  if (auto r = same_map(a.links, b.links); !r) return r << " (links)";
  if (a.killswitch.has_value() != b.killswitch.has_value())
    return ::testing::AssertionFailure() << "killswitch presence differs";
  if (a.killswitch && !MessageDifferencer::Equals(*a.killswitch, *b.killswitch))
    return ::testing::AssertionFailure() << "killswitch differs";
  return ::testing::AssertionSuccess();
}

Journal open_ok(const fs::path& dir) {
  Result<Journal> j = Journal::open(dir);
  if (!j.ok()) {
    // No Journal to return: stop here rather than touch an empty Result.
    std::fprintf(stderr, "Journal::open(%s): %s\n", dir.c_str(), j.error().message().c_str());
    std::abort();
  }
  return std::move(j).value();
}

TEST(Crc32c, MatchesTheCastagnoliCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(crc32c({reinterpret_cast<const uint8_t*>(check.data()), check.size()}), 0xE3069283u);
  // Fed in two pieces it gives the same result.
  const auto* p = reinterpret_cast<const uint8_t*>(check.data());
  EXPECT_EQ(crc32c({p + 4, 5}, crc32c({p, 4})), 0xE3069283u);
  EXPECT_EQ(crc32c({}), 0u);
}

TEST(JournalCodec, RefusesAnEmptyRecord) {
  Result<std::string> frame = encode_record(journal::Record());
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(frame.error().message().find("record.entry"), std::string::npos);
}

TEST(JournalCodec, FrameIsLengthCrcPayloadLittleEndian) {
  const journal::Record r = ended("a");
  Result<std::string> frame = encode_record(r);
  ASSERT_TRUE(frame.ok());
  const std::string payload = r.SerializeAsString();
  ASSERT_EQ(frame->size(), 8 + payload.size());
  EXPECT_EQ(static_cast<uint8_t>((*frame)[0]), payload.size());
  EXPECT_EQ((*frame)[1], 0);
  const uint32_t crc = crc32c({reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
  EXPECT_EQ(static_cast<uint8_t>((*frame)[4]), crc & 0xFF);
  EXPECT_EQ(static_cast<uint8_t>((*frame)[7]), crc >> 24);
  EXPECT_EQ(frame->substr(8), payload);
}

TEST(Journal, CreatesThePrivateStateDir) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "state";
  Journal j = open_ok(dir);
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_TRUE(j.replayed().empty());
  EXPECT_EQ(j.size_bytes(), 0u);
}

TEST(Journal, RoundTrip) {
  TempDir tmp;
  const std::vector<journal::Record> records = {
      link("pod-a/eth0", 0x10000), begun("i1", "pod-a/eth0"), killswitch(true, "sre"), ended("i1")};
  uint64_t size = 0;
  {
    Journal j = open_ok(tmp.path());
    for (const auto& r : records) ASSERT_TRUE(j.append(r).ok());
    size = j.size_bytes();
  }
  EXPECT_EQ(fs::file_size(tmp.path() / "journal.log"), size);
  Journal j = open_ok(tmp.path());
  EXPECT_TRUE(same_records(j.replayed(), records));
  EXPECT_EQ(j.dropped_bytes(), 0u);
  EXPECT_EQ(j.size_bytes(), size);
  EXPECT_EQ(j.record_count(), records.size());
  ASSERT_TRUE(j.append(ended("i2")).ok());
  EXPECT_EQ(j.record_count(), records.size() + 1);
}

TEST(Journal, TornTailAtEveryOffsetKeepsTheEarlierRecords) {
  TempDir tmp;
  const std::vector<journal::Record> earlier = {link("k", 1), begun("i1", "k")};
  const journal::Record last = begun("i2-with-a-longer-id", "k");
  uint64_t prefix = 0;
  {
    Journal j = open_ok(tmp.path());
    for (const auto& r : earlier) ASSERT_TRUE(j.append(r).ok());
    prefix = j.size_bytes();
    ASSERT_TRUE(j.append(last).ok());
  }
  const std::string full = read_file(tmp.path() / "journal.log");
  ASSERT_GT(full.size(), prefix + 8);
  const journal::Record after = ended("i1");
  for (size_t cut = prefix + 1; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    write_file(tmp.path() / "journal.log", std::string_view(full).substr(0, cut));
    {
      Journal j = open_ok(tmp.path());
      EXPECT_TRUE(same_records(j.replayed(), earlier));
      EXPECT_EQ(j.dropped_bytes(), cut - prefix);
      EXPECT_FALSE(j.drop_reason().empty());
      EXPECT_EQ(j.size_bytes(), prefix);
      ASSERT_TRUE(j.append(after).ok());
    }
    Journal j = open_ok(tmp.path());
    std::vector<journal::Record> expected = earlier;
    expected.push_back(after);
    EXPECT_TRUE(same_records(j.replayed(), expected));
    EXPECT_EQ(j.dropped_bytes(), 0u);
  }
}

TEST(Journal, CorruptedCrcDropsEverythingFromThereOn) {
  TempDir tmp;
  std::vector<journal::Record> records;
  for (int i = 0; i < 5; ++i) records.push_back(begun("i" + std::to_string(i), "k"));
  std::vector<uint64_t> offsets;
  {
    Journal j = open_ok(tmp.path());
    for (const auto& r : records) {
      offsets.push_back(j.size_bytes());
      ASSERT_TRUE(j.append(r).ok());
    }
  }
  std::string data = read_file(tmp.path() / "journal.log");
  const size_t full = data.size();
  data[offsets[2] + 8 + 3] ^= 0x40;  // a payload byte of the third record
  write_file(tmp.path() / "journal.log", data);

  Journal j = open_ok(tmp.path());
  EXPECT_TRUE(same_records(j.replayed(), {records[0], records[1]}));
  EXPECT_EQ(j.dropped_bytes(), full - offsets[2]);
  EXPECT_NE(j.drop_reason().find("CRC mismatch at offset " + std::to_string(offsets[2])),
            std::string::npos)
      << j.drop_reason();
  EXPECT_EQ(fs::file_size(tmp.path() / "journal.log"), offsets[2]);
  // The dropped bytes are kept for a human.
  EXPECT_EQ(read_file(tmp.path() / "journal.log.dropped"), data.substr(offsets[2]));
}

TEST(Journal, ZeroFilledTailIsNotTakenForRecords) {
  TempDir tmp;
  uint64_t size = 0;
  {
    Journal j = open_ok(tmp.path());
    ASSERT_TRUE(j.append(ended("x")).ok());
    size = j.size_bytes();
  }
  std::string data = read_file(tmp.path() / "journal.log");
  data.append(4096, '\0');
  write_file(tmp.path() / "journal.log", data);
  Journal j = open_ok(tmp.path());
  EXPECT_EQ(j.replayed().size(), 1u);
  EXPECT_EQ(j.dropped_bytes(), 4096u);
  EXPECT_EQ(j.size_bytes(), size);
}

TEST(Journal, SecondOpenerOfTheSameDirIsRefused) {
  TempDir tmp;
  {
    Journal first = open_ok(tmp.path());
    Result<Journal> second = Journal::open(tmp.path());
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error().status_code(), Code::kUnavailable);
    EXPECT_EQ(second.error().message(),
              "state dir " + tmp.path().string() + " is locked by another agent");
    // A moved journal keeps the lock.
    Journal moved = std::move(first);
    EXPECT_FALSE(Journal::open(tmp.path()).ok());
  }
  EXPECT_TRUE(Journal::open(tmp.path()).ok());
}

TEST(Reduce, FollowsTheRecordSemantics) {
  JournalState s = reduce({
      link("k1", 1), link("k2", 2), begun("a", "k1"), begun("b", "k2"), ended("a"),
      link("k1", 7),                     // upsert
      released("k2"), begun("b", "k1"),  // replace
      killswitch(true, "sre"), killswitch(false, "lead"), ended("never-begun"),
      released("never-owned"),
      journal::Record(),  // unknown entry from a newer agent: ignored
  });
  ASSERT_EQ(s.links.size(), 1u);
  EXPECT_EQ(s.links.at("k1").root_handle(), 7u);
  ASSERT_EQ(s.injections.size(), 1u);
  EXPECT_EQ(s.injections.at("b").link_key(), "k1");
  ASSERT_TRUE(s.killswitch.has_value());
  EXPECT_FALSE(s.killswitch->engaged());
  EXPECT_EQ(s.killswitch->actor(), "lead");

  EXPECT_FALSE(reduce({}).killswitch.has_value());
}

TEST(Reduce, ToRecordsPutsLinksBeforeInjections) {
  const JournalState s = reduce({begun("a", "k"), link("k", 1), killswitch(true, "x")});
  const std::vector<journal::Record> out = to_records(s);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].has_link_owned());
  EXPECT_TRUE(out[1].has_begun());
  EXPECT_TRUE(out[2].has_killswitch());
  EXPECT_TRUE(same_state(reduce(out), s));
}

TEST(Journal, CompactionPreservesTheReducedState) {
  TempDir tmp;
  std::vector<journal::Record> history;
  for (int i = 0; i < 20; ++i) {
    const std::string key = "pod-" + std::to_string(i % 3);
    history.push_back(link(key, static_cast<uint32_t>(i)));
    history.push_back(begun("inj-" + std::to_string(i), key));
    if (i % 2 == 0) history.push_back(ended("inj-" + std::to_string(i)));
  }
  history.push_back(released("pod-2"));
  history.push_back(killswitch(true, "sre"));
  const JournalState before = reduce(history);

  uint64_t compacted = 0;
  {
    Journal j = open_ok(tmp.path());
    for (const auto& r : history) ASSERT_TRUE(j.append(r).ok());
    const uint64_t full = j.size_bytes();
    ASSERT_TRUE(j.rewrite(to_records(before)).ok());
    compacted = j.size_bytes();
    EXPECT_LT(compacted, full);
    EXPECT_EQ(j.record_count(), to_records(before).size());
    EXPECT_EQ(fs::file_size(tmp.path() / "journal.log"), compacted);
    EXPECT_FALSE(fs::exists(tmp.path() / "journal.log.tmp"));
    // Appends after compaction land in the new file.
    ASSERT_TRUE(j.append(ended("inj-1")).ok());
  }
  Journal j = open_ok(tmp.path());
  EXPECT_EQ(j.dropped_bytes(), 0u);
  JournalState expected = before;
  expected.injections.erase("inj-1");
  EXPECT_TRUE(same_state(reduce(j.replayed()), expected));
  EXPECT_GT(j.size_bytes(), compacted);
}

TEST(Journal, RewriteRefusesAnEmptyRecordAndKeepsTheOldFile) {
  TempDir tmp;
  Journal j = open_ok(tmp.path());
  ASSERT_TRUE(j.append(ended("a")).ok());
  const uint64_t size = j.size_bytes();
  Status st = j.rewrite({ended("b"), journal::Record()});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().status_code(), Code::kInvalidArgument);
  EXPECT_EQ(j.size_bytes(), size);
  EXPECT_EQ(fs::file_size(tmp.path() / "journal.log"), size);
}

}  // namespace
}  // namespace nq

// The agent's write-ahead journal (format: proto/nodequake/v1/journal.proto).
//
// Every record is durable (fdatasync) when append() returns, so the caller may
// touch the kernel only after a successful append(). At start, open() replays
// the file; a restarted agent reduces the records to what an earlier
// incarnation may have left in the kernel and reverts it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/result.h"
#include "nodequake/v1/journal.pb.h"

namespace nq {

namespace journal = ::nodequake::v1::journal;

// CRC-32C (Castagnoli), as used by iSCSI/ext4/leveldb: crc32c("123456789") == 0xE3069283.
// `crc` continues a previous result, so data can be fed in pieces.
uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc = 0) noexcept;

// Frame size: [u32 length][u32 crc32c] before each record's bytes.
inline constexpr size_t kJournalFrameHeader = 8;
// A length above this is corruption, not a record (a record is a few KiB at most).
inline constexpr uint32_t kJournalMaxRecord = 16u << 20;

// One framed record, ready to be written. InvalidArgument for a record with no entry
// (it would serialize to zero bytes, indistinguishable from a zero-filled torn tail).
Result<std::string> encode_record(const journal::Record& record);

struct DecodedJournal {
  std::vector<journal::Record> records;
  // Length of the valid prefix; bytes after it are a torn tail or corruption.
  size_t valid_bytes = 0;
  // Why decoding stopped before the end ("" when the whole input was valid).
  std::string stop_reason;
};

// Decodes the longest valid prefix of a journal file's contents. Pure.
DecodedJournal decode_records(std::string_view data);

class Journal {
 public:
  // Creates `state_dir` (0700) if needed, locks it against a second agent
  // (Unavailable when another holds it), reads state_dir/journal.log and cuts off
  // anything after the valid prefix. The cut bytes are kept in journal.log.dropped
  // for a human to look at.
  static Result<Journal> open(const std::filesystem::path& state_dir);

  Journal(Journal&&) noexcept = default;
  Journal& operator=(Journal&&) noexcept = default;
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  ~Journal() = default;

  // The records found by open(), in file order (appends do not change it).
  const std::vector<journal::Record>& replayed() const noexcept { return replayed_; }
  // Bytes cut off by open() (0 after a clean shutdown), and why.
  uint64_t dropped_bytes() const noexcept { return dropped_bytes_; }
  const std::string& drop_reason() const noexcept { return drop_reason_; }

  // Appends one record with a single write() and makes it durable with fdatasync().
  Status append(const journal::Record& record);

  // Compaction: replaces the file with exactly `live` (write journal.log.tmp, fsync,
  // rename over journal.log, fsync the directory). Later appends go to the new file.
  Status rewrite(const std::vector<journal::Record>& live);

  // Current size of journal.log, and the records in it (for the journal metrics).
  uint64_t size_bytes() const noexcept { return size_; }
  uint64_t record_count() const noexcept { return records_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }

 private:
  Journal() = default;

  std::filesystem::path dir_;
  UniqueFd lock_fd_;  // holds the flock for the journal's whole life
  UniqueFd log_fd_;   // journal.log, O_APPEND
  uint64_t size_ = 0;
  uint64_t records_ = 0;
  std::vector<journal::Record> replayed_;
  uint64_t dropped_bytes_ = 0;
  std::string drop_reason_;
  // Set when fdatasync() failed: the kernel may have dropped the dirty pages and
  // cleared the error, so a later fsync could "succeed" over lost data (the
  // PostgreSQL "fsyncgate" lesson). Appends are refused until a rewrite().
  std::optional<Error> broken_;
};

// What the journal says is (possibly) live in the kernel.
struct JournalState {
  std::map<std::string, journal::InjectionBegun> injections;  // by injection id
  std::map<std::string, journal::LinkOwned> links;            // by link key
  std::map<std::string, journal::ResourceOwned> resources;    // by resource key
  std::optional<nodequake::v1::KillSwitchStatus> killswitch;
};

// Applies one record: begun inserts/replaces by injection id, ended erases,
// link_owned upserts by key, link_released erases, likewise resource_owned and
// resource_released, killswitch sets.
void reduce_into(JournalState& state, const journal::Record& record);
JournalState reduce(const std::vector<journal::Record>& records);

// The records of a compacted journal: links and resources first (an injection
// refers to them), then injections, then the kill switch;
// reduce(to_records(s)) == s.
std::vector<journal::Record> to_records(const JournalState& state);

}  // namespace nq

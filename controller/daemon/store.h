// Experiment records on disk: <dir>/<id>.json, one per experiment, each a
// v1::ExperimentRecord in protobuf JSON (status, selection with its seed,
// chosen pods, times, and the injections that may still exist on the agents).
//
// Every save is atomic and durable (temporary file, fsync, rename, fsync of
// the directory): after a crash a record is the old one or the new one, never
// half of each. A record is small (a few KiB), so rewriting it whole on every
// change of state is cheaper than any log format would be to reason about.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "nodequake/v1/controller.pb.h"

namespace nq::controller {

namespace v1 = nodequake::v1;

// The record's text and back; `file` names the source in errors.
std::string encode_record(const v1::ExperimentRecord& record);
Result<v1::ExperimentRecord> decode_record(std::string_view text, std::string_view file);

// True for the states a live run has (Pending, Running): a record loaded in
// one of them was cut short by the controller's death.
bool is_live_state(v1::ExperimentState state) noexcept;

// What a restarted controller makes of a record it finds in a live state:
// Interrupted, with why and when, and the phase "done". Returns false (and
// changes nothing) for records that had ended.
bool mark_interrupted(v1::ExperimentRecord& record, std::chrono::seconds lease);

struct LoadedRecords {
  std::vector<v1::ExperimentRecord> records;  // sorted by submission time, then id
  // Files that could not be read or parsed (kept on disk for a human).
  std::vector<Error> problems;
};

class ExperimentStore {
 public:
  // Creates `dir` when missing.
  static Result<ExperimentStore> open(std::filesystem::path dir);

  // Atomically replaces <dir>/<status.id>.json. Safe from several threads for
  // different ids; one id must be saved by one thread at a time.
  Status save(const v1::ExperimentRecord& record) const;
  // Every record; leftover temporary files of an interrupted save are removed.
  LoadedRecords load_all() const;
  std::filesystem::path file_of(const std::string& id) const;
  const std::filesystem::path& dir() const noexcept { return dir_; }

 private:
  explicit ExperimentStore(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

// Atomic, durable replacement of `file` by `text` (temporary file next to
// it, fsync, rename, fsync of the directory). Also used for report files.
Status write_file_atomic(const std::filesystem::path& file, std::string_view text);

}  // namespace nq::controller

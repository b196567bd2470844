#include "controller/daemon/store.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <algorithm>

#include "common/fd.h"
#include "common/file.h"
#include "controller/fanout/ids.h"

namespace nq::controller {

namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;

namespace {

constexpr std::string_view kSuffix = ".json";
constexpr std::string_view kTmpSuffix = ".json.tmp";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Status fsync_dir(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + dir.string());
  if (::fsync(fd.get()) < 0) return Error::from_errno(errno, "fsync " + dir.string());
  return ok();
}

}  // namespace

Status write_file_atomic(const fs::path& file, std::string_view text) {
  const fs::path tmp = file.string() + ".tmp";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!fd) return Error::from_errno(errno, "create " + tmp.string());
    NQ_TRY(write_all(fd.get(), text, tmp.string()));
    // The data must be on disk before the rename makes it the file: else a
    // crash could leave the new name pointing at an empty inode.
    if (::fsync(fd.get()) < 0) return Error::from_errno(errno, "fsync " + tmp.string());
  }
  if (::rename(tmp.c_str(), file.c_str()) < 0)
    return Error::from_errno(errno, "rename " + tmp.string() + " to " + file.string());
  // The rename is durable only once the directory entry is.
  return fsync_dir(file.has_parent_path() ? file.parent_path() : fs::path("."));
}

std::string encode_record(const v1::ExperimentRecord& record) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  // Enum names, not numbers: the file is read by humans too.
  (void)google::protobuf::util::MessageToJsonString(record, &out, opts);
  return out;
}

Result<v1::ExperimentRecord> decode_record(std::string_view text, std::string_view file) {
  v1::ExperimentRecord record;
  google::protobuf::util::JsonParseOptions opts;
  // A record written by a newer controller still loads (its new fields are
  // dropped) rather than hiding the experiment.
  opts.ignore_unknown_fields = true;
  auto st = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), &record, opts);
  if (!st.ok())
    return Error::status(Code::kDataLoss,
                         std::string(file) + ": not an experiment record: " + st.ToString());
  if (record.status().id().empty())
    return Error::invalid_argument(std::string(file) + ": status.id", "missing");
  return record;
}

bool is_live_state(v1::ExperimentState state) noexcept {
  return state == v1::EXPERIMENT_STATE_PENDING || state == v1::EXPERIMENT_STATE_RUNNING;
}

bool mark_interrupted(v1::ExperimentRecord& record, std::chrono::seconds lease) {
  auto& s = *record.mutable_status();
  if (!is_live_state(s.state())) return false;
  s.set_state(v1::EXPERIMENT_STATE_INTERRUPTED);
  s.set_message("the controller stopped while this experiment ran (phase \"" + s.phase() +
                "\"); the agents reverted its injections when lease " +
                fanout::lease_holder(s.id()) + " ran out (" + std::to_string(lease.count()) +
                " s without renewal), and the restarted controller sent Revert for them again");
  s.set_phase("done");
  s.set_remaining_ms(0);
  *s.mutable_ended_at() = TimeUtil::GetCurrentTime();
  return true;
}

Result<ExperimentStore> ExperimentStore::open(fs::path dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(ec, "create " + dir.string());
  return ExperimentStore(std::move(dir));
}

fs::path ExperimentStore::file_of(const std::string& id) const {
  return dir_ / (id + std::string(kSuffix));
}

Status ExperimentStore::save(const v1::ExperimentRecord& record) const {
  const std::string& id = record.status().id();
  // The id becomes a file name: only what experiment uids may hold.
  NQ_TRY(fanout::validate_experiment_uid(id));
  return write_file_atomic(file_of(id), encode_record(record));
}

LoadedRecords ExperimentStore::load_all() const {
  LoadedRecords out;
  std::error_code ec;
  fs::directory_iterator it(dir_, ec);
  if (ec) {
    out.problems.push_back(Error(ec, "read " + dir_.string()));
    return out;
  }
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (ends_with(name, kTmpSuffix)) {
      // A save cut short: the record it was replacing is still there.
      fs::remove(entry.path(), ec);
      continue;
    }
    if (!ends_with(name, kSuffix)) continue;
    auto text = read_file(entry.path());
    if (!text.ok()) {
      out.problems.push_back(std::move(text).error());
      continue;
    }
    auto record = decode_record(*text, entry.path().string());
    if (!record.ok()) {
      out.problems.push_back(std::move(record).error());
      continue;
    }
    out.records.push_back(std::move(*record));
  }
  std::sort(out.records.begin(), out.records.end(), [](const auto& a, const auto& b) {
    const auto ta = TimeUtil::TimestampToNanoseconds(a.status().submitted_at());
    const auto tb = TimeUtil::TimestampToNanoseconds(b.status().submitted_at());
    return ta != tb ? ta < tb : a.status().id() < b.status().id();
  });
  return out;
}

}  // namespace nq::controller

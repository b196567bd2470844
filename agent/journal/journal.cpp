#include "agent/journal/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace nq {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLogName = "journal.log";
constexpr const char* kTmpName = "journal.log.tmp";
constexpr const char* kDroppedName = "journal.log.dropped";
constexpr const char* kLockName = "lock";

void put_le32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

uint32_t get_le32(std::string_view data, size_t off) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(static_cast<uint8_t>(data[off + i])) << (8 * i);
  return v;
}

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Loops over short writes (a regular file only writes short on ENOSPC or a
// signal); the caller cuts a partial frame off again on error.
Status write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "write " + path.string());
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

Result<std::string> read_all(int fd, const fs::path& path) {
  std::string out;
  char buf[64 * 1024];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read " + path.string());
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
}

// A new or renamed directory entry is only durable once the directory is synced.
Status fsync_dir(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open directory " + dir.string());
  if (::fsync(fd.get()) < 0) return Error::from_errno(errno, "fsync directory " + dir.string());
  return ok();
}

Status ensure_dir(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return Error::failed_precondition("state dir " + dir.string() + " is not a directory");
    return ok();
  }
  if (errno != ENOENT) return Error::from_errno(errno, "stat state dir " + dir.string());
  if (dir.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    if (ec) return Error(ec, "create " + dir.parent_path().string());
  }
  // 0700: the journal describes what the agent did to other pods' kernels.
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
    return Error::from_errno(errno, "mkdir state dir " + dir.string());
  return ok();
}

// Keeps cut-off bytes for a human; failing to do so must not stop the agent.
std::string save_dropped(const fs::path& dir, std::string_view tail) {
  const fs::path path = dir / kDroppedName;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::from_errno(errno, "open " + path.string()).message();
  if (Status st = write_all(fd.get(), tail, path); !st.ok()) return st.error().message();
  if (::fsync(fd.get()) < 0) return Error::from_errno(errno, "fsync " + path.string()).message();
  return "";
}

}  // namespace

Result<std::string> encode_record(const journal::Record& record) {
  if (record.entry_case() == journal::Record::ENTRY_NOT_SET)
    return Error::invalid_argument("record.entry", "a journal record needs an entry");
  std::string payload;
  if (!record.SerializeToString(&payload)) return Error::internal("serialize journal record");
  if (payload.size() > kJournalMaxRecord)
    return Error::invalid_argument("record", "journal record of " + std::to_string(payload.size()) +
                                                 " bytes exceeds the limit");
  std::string frame;
  frame.reserve(kJournalFrameHeader + payload.size());
  put_le32(frame, static_cast<uint32_t>(payload.size()));
  put_le32(frame, crc32c(bytes_of(payload)));
  frame += payload;
  return frame;
}

DecodedJournal decode_records(std::string_view data) {
  DecodedJournal out;
  size_t off = 0;
  while (off < data.size()) {
    const std::string at = " at offset " + std::to_string(off);
    if (data.size() - off < kJournalFrameHeader) {
      out.stop_reason = "torn frame header" + at;
      break;
    }
    const uint32_t len = get_le32(data, off);
    const uint32_t crc = get_le32(data, off + 4);
    // Zero length is never written (encode_record refuses empty records): it is
    // what a zero-filled tail looks like after a crash on some filesystems, and
    // its CRC (0) would otherwise match.
    if (len == 0 || len > kJournalMaxRecord) {
      out.stop_reason = "invalid record length " + std::to_string(len) + at;
      break;
    }
    if (data.size() - off - kJournalFrameHeader < len) {
      out.stop_reason = "torn record" + at + " (" + std::to_string(len) + " bytes announced, " +
                        std::to_string(data.size() - off - kJournalFrameHeader) + " present)";
      break;
    }
    const std::string_view payload = data.substr(off + kJournalFrameHeader, len);
    if (crc32c(bytes_of(payload)) != crc) {
      out.stop_reason = "CRC mismatch" + at;
      break;
    }
    journal::Record record;
    if (!record.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      out.stop_reason = "unparsable record" + at;
      break;
    }
    // A record with an entry this build does not know (written by a newer agent)
    // is kept: it framed and checksummed correctly, so what follows is valid too.
    out.records.push_back(std::move(record));
    off += kJournalFrameHeader + len;
  }
  out.valid_bytes = off;
  return out;
}

Result<Journal> Journal::open(const fs::path& state_dir) {
  Journal j;
  j.dir_ = state_dir;
  NQ_TRY(ensure_dir(state_dir));

  const fs::path lock_path = state_dir / kLockName;
  j.lock_fd_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!j.lock_fd_) return Error::from_errno(errno, "open " + lock_path.string());
  // flock (not fcntl locks): it belongs to this open file description, so a
  // second open() even in the same process conflicts, and the kernel drops it
  // when the agent dies, however it dies.
  if (::flock(j.lock_fd_.get(), LOCK_EX | LOCK_NB) < 0) {
    const int err = errno;
    if (err == EWOULDBLOCK)
      return Error::unavailable("state dir " + state_dir.string() + " is locked by another agent");
    return Error::from_errno(err, "flock " + lock_path.string());
  }

  const fs::path log_path = state_dir / kLogName;
  j.log_fd_.reset(::open(log_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!j.log_fd_) return Error::from_errno(errno, "open " + log_path.string());
  NQ_ASSIGN_OR_RETURN(const std::string data, read_all(j.log_fd_.get(), log_path));

  DecodedJournal decoded = decode_records(data);
  j.replayed_ = std::move(decoded.records);
  j.size_ = decoded.valid_bytes;
  j.records_ = j.replayed_.size();
  if (decoded.valid_bytes < data.size()) {
    j.dropped_bytes_ = data.size() - decoded.valid_bytes;
    j.drop_reason_ = decoded.stop_reason;
    const std::string save_error =
        save_dropped(state_dir, std::string_view(data).substr(decoded.valid_bytes));
    if (!save_error.empty())
      j.drop_reason_ += " (could not keep the dropped bytes: " + save_error + ")";
    // Appends must follow the last valid record: anything written after garbage
    // would be unreachable on the next replay.
    if (::ftruncate(j.log_fd_.get(), static_cast<off_t>(decoded.valid_bytes)) < 0)
      return Error::from_errno(errno, "truncate " + log_path.string());
    if (::fdatasync(j.log_fd_.get()) < 0)
      return Error::from_errno(errno, "fdatasync " + log_path.string());
  }
  // journal.log may have just been created.
  NQ_TRY(fsync_dir(state_dir));
  return j;
}

Status Journal::append(const journal::Record& record) {
  if (broken_)
    return Error::failed_precondition("journal " + (dir_ / kLogName).string() +
                                      " is not durable since an earlier failure (" +
                                      broken_->message() + "); compact or restart the agent");
  NQ_ASSIGN_OR_RETURN(const std::string frame, encode_record(record));
  const fs::path path = dir_ / kLogName;
  if (Status st = write_all(log_fd_.get(), frame, path); !st.ok()) {
    // Cut off a partial frame so later appends stay reachable; if even that
    // fails, the next open() drops the torn frame.
    if (::ftruncate(log_fd_.get(), static_cast<off_t>(size_)) < 0) broken_ = st.error();
    return st;
  }
  if (::fdatasync(log_fd_.get()) < 0) {
    Error err = Error::from_errno(errno, "fdatasync " + path.string());
    broken_ = err;
    return err;
  }
  size_ += frame.size();
  ++records_;
  return ok();
}

Status Journal::rewrite(const std::vector<journal::Record>& live) {
  std::string contents;
  for (const journal::Record& record : live) {
    NQ_ASSIGN_OR_RETURN(const std::string frame, encode_record(record));
    contents += frame;
  }
  const fs::path tmp = dir_ / kTmpName;
  const fs::path log_path = dir_ / kLogName;
  UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return Error::from_errno(errno, "open " + tmp.string());
  Status written = write_all(fd.get(), contents, tmp);
  if (written.ok() && ::fsync(fd.get()) < 0)
    written = Error::from_errno(errno, "fsync " + tmp.string());
  if (written.ok() && ::rename(tmp.c_str(), log_path.c_str()) < 0)
    written = Error::from_errno(errno, "rename " + tmp.string() + " to " + log_path.string());
  if (!written.ok()) {
    ::unlink(tmp.c_str());  // the old journal is untouched and still complete
    return written;
  }
  // The old file is gone from the directory: from here on appends go to the new one.
  log_fd_ = std::move(fd);
  size_ = contents.size();
  records_ = live.size();
  broken_.reset();
  if (Status st = fsync_dir(dir_); !st.ok()) {
    // The rename may not survive a crash, so appends to the new file may not either.
    broken_ = st.error();
    return st;
  }
  return ok();
}

}  // namespace nq

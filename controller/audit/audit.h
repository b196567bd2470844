// The controller's audit trail: append-only JSON lines, one per action (submit,
// selection, inject, revert, abort, kill switch), each with who and when.
//
// One line per event, written with a single write() on an O_APPEND descriptor
// and fsync'ed before append() returns: an action the controller reports as
// done is on disk, and concurrent writers never interleave inside a line.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/result.h"

namespace nq::audit {

// What happened. The names are the "action" field of a line.
enum class Action {
  kSubmit,
  kSelection,
  kInject,
  kRevert,
  kAbort,
  kKillSwitchEngage,
  kKillSwitchRelease,
};

std::string_view action_name(Action action) noexcept;
Result<Action> parse_action(std::string_view name);

struct Event {
  std::chrono::system_clock::time_point time;
  // Authenticated identity of whoever caused it ("sre-token", a certificate
  // name, "controller" for the controller's own decisions such as an abort).
  std::string actor;
  Action action = Action::kSubmit;
  // Experiment uid; "" for actions that are not about one (the kill switch).
  std::string experiment;
  // Action-specific facts: the seed of a selection, the pods, the agent, the
  // rule and value of an abort, the per-agent outcome of the kill switch.
  nlohmann::json details = nlohmann::json::object();
};

// One line, without the trailing newline. Pure.
std::string to_json_line(const Event& event);
// The inverse; errors name the field.
Result<Event> parse_json_line(std::string_view line);

class AuditLog {
 public:
  // Opens (creating, mode 0640) `path` for appending; the directory must exist.
  static Result<AuditLog> open(const std::filesystem::path& path);

  AuditLog(AuditLog&& other) noexcept : path_(std::move(other.path_)), fd_(std::move(other.fd_)) {}
  AuditLog& operator=(AuditLog&&) = delete;
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Writes one line and fsyncs it. Thread-safe.
  Status append(const Event& event);

  const std::filesystem::path& path() const { return path_; }

 private:
  AuditLog(std::filesystem::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::filesystem::path path_;
  UniqueFd fd_;
  std::mutex mu_;
};

struct Filter {
  // Events at or after this time.
  std::optional<std::chrono::system_clock::time_point> since;
  // Events of this experiment uid only.
  std::optional<std::string> experiment;
};

bool matches(const Event& event, const Filter& filter);

// Every event of `text` (the file's content) that matches, in file order. A
// last line without its newline is a write the controller did not finish
// (it crashed mid-append) and is skipped; any other malformed line is an error
// naming its line number.
Result<std::vector<Event>> parse_log(std::string_view text, const Filter& filter = {});
// parse_log() of the file's content; a missing file is an empty log.
Result<std::vector<Event>> read_log(const std::filesystem::path& path, const Filter& filter = {});

}  // namespace nq::audit

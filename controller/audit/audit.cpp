#include "controller/audit/audit.h"

#include <fcntl.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "common/file.h"

namespace nq::audit {
namespace {

using google::protobuf::util::TimeUtil;
using SysClock = std::chrono::system_clock;

constexpr std::array<std::pair<Action, std::string_view>, 7> kActions{{
    {Action::kSubmit, "submit"},
    {Action::kSelection, "selection"},
    {Action::kInject, "inject"},
    {Action::kRevert, "revert"},
    {Action::kAbort, "abort"},
    {Action::kKillSwitchEngage, "killswitch-engage"},
    {Action::kKillSwitchRelease, "killswitch-release"},
}};

// RFC 3339 in UTC with nanoseconds, the format Kubernetes and `jq` users expect.
std::string format_time(SysClock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  return TimeUtil::ToString(TimeUtil::NanosecondsToTimestamp(ns.count()));
}

Result<SysClock::time_point> parse_time(const std::string& text, std::string_view field) {
  google::protobuf::Timestamp ts;
  if (!TimeUtil::FromString(text, &ts))
    return Error::invalid_argument(field, "\"" + text + "\" is not an RFC 3339 time");
  return SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
      std::chrono::nanoseconds(TimeUtil::TimestampToNanoseconds(ts))));
}

Result<std::string> string_field(const nlohmann::json& j, const char* name, bool required) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (required) return Error::invalid_argument(name, "missing");
    return std::string();
  }
  if (!it->is_string()) return Error::invalid_argument(name, "not a string");
  return it->get<std::string>();
}

}  // namespace

std::string_view action_name(Action action) noexcept {
  for (const auto& [a, name] : kActions)
    if (a == action) return name;
  return "unknown";
}

Result<Action> parse_action(std::string_view name) {
  for (const auto& [a, n] : kActions)
    if (n == name) return a;
  return Error::invalid_argument("action", "\"" + std::string(name) + "\" is not a known action");
}

std::string to_json_line(const Event& event) {
  nlohmann::json j;
  j["time"] = format_time(event.time);
  j["actor"] = event.actor;
  j["action"] = action_name(event.action);
  if (!event.experiment.empty()) j["experiment"] = event.experiment;
  if (!event.details.is_null() && !event.details.empty()) j["details"] = event.details;
  // dump() escapes control characters, so a line never holds a raw newline.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<Event> parse_json_line(std::string_view line) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Error::invalid_argument("line", "not a JSON object");
  Event e;
  NQ_ASSIGN_OR_RETURN(const std::string time, string_field(j, "time", true));
  NQ_ASSIGN_OR_RETURN(e.time, parse_time(time, "time"));
  NQ_ASSIGN_OR_RETURN(e.actor, string_field(j, "actor", true));
  NQ_ASSIGN_OR_RETURN(const std::string action, string_field(j, "action", true));
  NQ_ASSIGN_OR_RETURN(e.action, parse_action(action));
  NQ_ASSIGN_OR_RETURN(e.experiment, string_field(j, "experiment", false));
  if (auto it = j.find("details"); it != j.end()) {
    if (!it->is_object()) return Error::invalid_argument("details", "not an object");
    e.details = *it;
  }
  return e;
}

Result<AuditLog> AuditLog::open(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
  if (!fd) return Error::from_errno(errno, "open audit log " + path.string());
  return AuditLog(path, std::move(fd));
}

Status AuditLog::append(const Event& event) {
  std::string line = to_json_line(event);
  line.push_back('\n');
  std::lock_guard lock(mu_);
  // O_APPEND makes each write() land at the end atomically; write_all retries a
  // short write, which only a full disk produces, so the line may then be torn
  // and the reader skips a torn last line.
  NQ_TRY(write_all(fd_.get(), line, "audit log " + path_.string()));
  if (::fsync(fd_.get()) < 0) return Error::from_errno(errno, "fsync audit log " + path_.string());
  return ok();
}

bool matches(const Event& event, const Filter& filter) {
  if (filter.since && event.time < *filter.since) return false;
  if (filter.experiment && event.experiment != *filter.experiment) return false;
  return true;
}

Result<std::vector<Event>> parse_log(std::string_view text, const Filter& filter) {
  std::vector<Event> out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) break;  // torn last line: never acknowledged
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line.empty()) continue;
    auto event = parse_json_line(line);
    if (!event.ok())
      return std::move(event).error().wrapped("audit line " + std::to_string(line_no));
    if (matches(*event, filter)) out.push_back(std::move(*event));
  }
  return out;
}

Result<std::vector<Event>> read_log(const std::filesystem::path& path, const Filter& filter) {
  auto text = read_file(path);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT) return std::vector<Event>{};
    return std::move(text).error();
  }
  return parse_log(*text, filter);
}

}  // namespace nq::audit

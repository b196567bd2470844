#include "controller/killswitch/killswitch.h"

#include <fcntl.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>

#include "common/fd.h"
#include "common/file.h"

namespace nq::killswitch {
namespace {

using google::protobuf::util::TimeUtil;
using SysClock = std::chrono::system_clock;
namespace fs = std::filesystem;

std::string format_time(SysClock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  return TimeUtil::ToString(TimeUtil::NanosecondsToTimestamp(ns.count()));
}

Status fsync_path(const fs::path& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + path.string());
  if (::fsync(fd.get()) < 0) return Error::from_errno(errno, "fsync " + path.string());
  return ok();
}

std::vector<fanout::AgentOutcome> discovery_failed(Error error) {
  std::vector<fanout::AgentOutcome> out(1);
  out[0].agent = "discovery";
  out[0].error = std::move(error);
  return out;
}

}  // namespace

nlohmann::json to_json(const State& s) {
  nlohmann::json j;
  j["engaged"] = s.engaged;
  j["actor"] = s.actor;
  j["reason"] = s.reason;
  j["since"] = s.since == SysClock::time_point{} ? "" : format_time(s.since);
  return j;
}

Result<State> state_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return Error::invalid_argument("state", "not a JSON object");
  State s;
  auto engaged = j.find("engaged");
  if (engaged == j.end() || !engaged->is_boolean())
    return Error::invalid_argument("state.engaged", "missing or not a boolean");
  s.engaged = engaged->get<bool>();
  for (auto [name, out] : {std::pair{"actor", &s.actor}, std::pair{"reason", &s.reason}}) {
    auto it = j.find(name);
    if (it != j.end() && !it->is_string())
      return Error::invalid_argument(std::string("state.") + name, "not a string");
    if (it != j.end()) *out = it->get<std::string>();
  }
  if (auto it = j.find("since");
      it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
    google::protobuf::Timestamp ts;
    if (!TimeUtil::FromString(it->get<std::string>(), &ts))
      return Error::invalid_argument("state.since", "not an RFC 3339 time");
    s.since = SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
        std::chrono::nanoseconds(TimeUtil::TimestampToNanoseconds(ts))));
  }
  return s;
}

Result<State> load_state(const fs::path& file) {
  auto text = read_file(file);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT) return State{};
    return std::move(text).error();
  }
  const auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error::invalid_argument("state", file.string() + " is not JSON");
  auto s = state_from_json(j);
  if (!s.ok()) return std::move(s).error().wrapped(file.string());
  return s;
}

Status save_state(const fs::path& file, const State& state) {
  const fs::path tmp = file.string() + ".tmp";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) return Error::from_errno(errno, "open " + tmp.string());
    NQ_TRY(write_all(fd.get(), to_json(state).dump() + "\n", tmp.string()));
    if (::fsync(fd.get()) < 0) return Error::from_errno(errno, "fsync " + tmp.string());
  }
  if (::rename(tmp.c_str(), file.c_str()) < 0)
    return Error::from_errno(errno, "rename " + tmp.string() + " to " + file.string());
  // The rename is durable only once the directory entry is.
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  return fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

std::vector<fanout::AgentOutcome> FanOutBackend::engage(const std::string& actor,
                                                        const std::string& reason) {
  auto agents = agents_();
  if (!agents.ok()) return discovery_failed(std::move(agents).error());
  return fanout_.revert_all(*agents, actor, reason);
}

std::vector<fanout::AgentOutcome> FanOutBackend::release(const std::string& actor) {
  auto agents = agents_();
  if (!agents.ok()) return discovery_failed(std::move(agents).error());
  return fanout_.release(*agents, actor);
}

bool Report::complete() const {
  for (const auto& a : agents)
    if (a.error || !a.failures.empty()) return false;
  return true;
}

nlohmann::json to_json(const Report& r) {
  nlohmann::json j = to_json(r.state);
  j["complete"] = r.complete();
  j["took_ms"] = r.took.count();
  j["agents"] = nlohmann::json::array();
  for (const auto& a : r.agents) {
    nlohmann::json aj;
    aj["agent"] = a.agent;
    aj["ok"] = !a.error && a.failures.empty();
    aj["error"] = a.error ? a.error->message() : "";
    aj["reverted"] = a.count;
    aj["failures"] = a.failures;
    aj["engaged"] = a.killswitch.engaged();
    aj["took_ms"] = a.took.count();
    j["agents"].push_back(std::move(aj));
  }
  return j;
}

Result<std::unique_ptr<KillSwitch>> KillSwitch::open(fs::path state_file, Backend& backend,
                                                     audit::AuditLog* audit, const Clock& clock) {
  NQ_ASSIGN_OR_RETURN(State state, load_state(state_file));
  return std::unique_ptr<KillSwitch>(
      new KillSwitch(std::move(state_file), backend, audit, clock, std::move(state)));
}

State KillSwitch::status() const {
  std::lock_guard lock(state_mu_);
  return state_;
}

void KillSwitch::set_state(State state) {
  std::lock_guard lock(state_mu_);
  state_ = std::move(state);
}

void KillSwitch::audit(audit::Action action, const std::string& actor, const Report& report) {
  if (audit_ == nullptr) return;
  audit::Event e{clock_.now(), actor, action, "", to_json(report)};
  // The agents have acted already; a failing audit write must not undo or
  // hide that, so it is logged rather than returned.
  if (Status st = audit_->append(e); !st.ok())
    spdlog::error("audit of kill switch {}: {}", audit::action_name(action), st.error().message());
}

Result<Report> KillSwitch::engage(const std::string& actor, const std::string& reason) {
  std::lock_guard op(op_mu_);
  const auto started = std::chrono::steady_clock::now();
  State next = status();
  if (!next.engaged) next = State{true, actor, reason, clock_.now()};
  // Persist before touching the agents: from here on, a restarted controller
  // refuses experiments even if it died half way through the fan-out.
  NQ_TRY(save_state(file_, next));
  set_state(next);
  Report report{next, backend_.engage(actor, reason), {}};
  report.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  audit(audit::Action::kKillSwitchEngage, actor, report);
  return report;
}

Result<Report> KillSwitch::release(const std::string& actor) {
  std::lock_guard op(op_mu_);
  const auto started = std::chrono::steady_clock::now();
  Report report{{}, backend_.release(actor), {}};
  // Released even when an agent did not answer: the SRE decided, the report
  // shows which agents still block (they refuse injections, which is safe).
  State next{false, actor, "", clock_.now()};
  NQ_TRY(save_state(file_, next));
  set_state(next);
  report.state = next;
  report.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  audit(audit::Action::kKillSwitchRelease, actor, report);
  return report;
}

}  // namespace nq::killswitch

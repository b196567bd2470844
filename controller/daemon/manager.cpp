#include "controller/daemon/manager.h"

#include <spdlog/spdlog.h>

#include <random>
#include <set>

#include "common/file.h"
#include "controller/experiment/parse.h"
#include "controller/fanout/ids.h"
#include "controller/selection/selection.h"

namespace nq::controller {

std::string new_experiment_id(const std::string& name) {
  std::string base;
  for (char c : name) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_';
    base += keep ? c : '-';
  }
  // 64 characters at most, with room for "-xxxxxxxx".
  if (base.size() > 40) base.resize(40);
  if (base.empty()) base = "exp";
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof(suffix), "-%08x", static_cast<unsigned>(rd()));
  return base + suffix;
}

namespace {

// Whether the document needs Prometheus (abort rules or SLO checks).
bool needs_prometheus(const experiment::Document& doc) {
  if (const auto* e = std::get_if<experiment::Experiment>(&doc)) return !e->abort_when.empty();
  const auto& wf = std::get<experiment::Workflow>(doc);
  if (!wf.abort_when.empty()) return true;
  for (const auto& t : wf.templates)
    if (t.type == experiment::TemplateType::kSloCheck || (t.chaos && !t.chaos->abort_when.empty()))
      return true;
  return false;
}

}  // namespace

ExperimentManager::ExperimentManager(RunDeps deps, RunOptions options)
    : deps_(std::move(deps)), options_(std::move(options)) {}

ExperimentManager::~ExperimentManager() {
  shutdown();
}

Result<experiment::Document> pick_document(std::vector<experiment::Document> docs,
                                           const std::string& document, const std::string& file) {
  std::string names;
  for (const auto& d : docs) names += (names.empty() ? "" : ", ") + document_name(d);
  if (docs.empty()) return Error::invalid_argument(file, "holds no experiment or workflow");
  if (document.empty()) {
    if (docs.size() == 1) return std::move(docs[0]);
    return Error::invalid_argument(file, "holds " + std::to_string(docs.size()) + " documents (" +
                                             names + "); name the one to run with --document");
  }
  std::vector<size_t> matches;
  for (size_t i = 0; i < docs.size(); ++i) {
    const std::string& name =
        std::visit([](const auto& d) -> const std::string& { return d.name; }, docs[i]);
    if (name == document || document_name(docs[i]) == document) matches.push_back(i);
  }
  if (matches.empty())
    return Error::invalid_argument(
        "document", "\"" + document + "\" is not in " + file + " (it holds " + names + ")");
  if (matches.size() > 1)
    return Error::invalid_argument("document", "\"" + document + "\" names several documents of " +
                                                   file + " (" + names + "); use namespace/name");
  return std::move(docs[matches[0]]);
}

Result<v1::ExperimentStatus> ExperimentManager::submit(const std::string& yaml,
                                                       const std::string& file,
                                                       const std::string& document, uint64_t seed,
                                                       bool force, const std::string& actor) {
  NQ_ASSIGN_OR_RETURN(auto docs, experiment::load_experiments(yaml, file));
  NQ_ASSIGN_OR_RETURN(experiment::Document doc, pick_document(std::move(docs), document, file));
  if (needs_prometheus(doc) && !deps_.prom)
    return Error::failed_precondition(
        file +
        ": abort rules and SLO checks need Prometheus; the controller has no "
        "--prometheus-url");
  if (admission_) NQ_TRY(admission_());
  if (seed == 0) seed = selection::random_seed();
  Submission sub{new_experiment_id(std::visit([](const auto& d) { return d.name; }, doc)), actor,
                 seed, force};
  if (deps_.audit) {
    audit::Event ev{std::chrono::system_clock::now(),
                    actor,
                    audit::Action::kSubmit,
                    sub.id,
                    {{"file", file},
                     {"name", document_name(doc)},
                     {"kind", document_kind(doc)},
                     {"seed", seed},
                     {"force", force}}};
    // An action that cannot be audited is not taken.
    if (Status st = deps_.audit->append(ev); !st.ok())
      return std::move(st).error().wrapped("audit");
  }
  auto run = std::make_shared<Run>(sub, std::move(doc), deps_, options_);
  std::lock_guard lock(mu_);
  if (shutting_down_) return Error::unavailable("the controller is shutting down");
  runs_[sub.id] = run;
  threads_.emplace_back([run] { run->execute(); });
  return run->status();
}

ExperimentManager::Recovered ExperimentManager::recover() {
  Recovered out;
  if (!deps_.store) return out;
  LoadedRecords loaded = deps_.store->load_all();
  out.problems = std::move(loaded.problems);
  out.loaded = loaded.records.size();
  std::vector<std::string> agents;
  if (auto discovered = deps_.agents(); discovered.ok())
    agents = std::move(*discovered);
  else
    spdlog::warn("recovering experiments: {}", discovered.error().message());

  for (auto& record : loaded.records) {
    const std::string id = record.status().id();
    const int recorded = record.injections_size();
    const bool interrupted = mark_interrupted(record, options_.lease);
    if (interrupted) {
      ++out.interrupted;
      if (deps_.metrics) deps_.metrics->experiment_interrupted(record.status().kind());
    }
    if (record.injections_size() > 0) {
      // Every recorded injection on its agent and on every agent known now.
      std::vector<fanout::InjectionRef> refs;
      for (const auto& inj : record.injections()) {
        std::set<std::string> targets(agents.begin(), agents.end());
        if (!inj.agent().empty()) targets.insert(inj.agent());
        for (const auto& a : targets) refs.push_back({a, inj.id(), {}});
      }
      auto outcomes = deps_.fanout->revert(refs);
      std::set<std::string> left;  // ids some agent could not revert
      nlohmann::json failures = nlohmann::json::array();
      size_t reverted = 0;
      for (const auto& o : outcomes) {
        if (!o.error) {
          ++reverted;
          continue;
        }
        left.insert(o.ref.id);
        const std::string f = o.ref.agent + " " + o.ref.id + ": " + o.error->message();
        failures.push_back(f);
        out.failures.push_back(f);
      }
      out.reverted += reverted;
      // Kept when an agent could not be reached: the next start tries again
      // (its lease has reverted it on the agent meanwhile).
      google::protobuf::RepeatedPtrField<v1::InjectionRecord> keep;
      for (const auto& inj : record.injections())
        if (left.count(inj.id())) *keep.Add() = inj;
      *record.mutable_injections() = std::move(keep);
      if (deps_.audit) {
        audit::Event ev{std::chrono::system_clock::now(),
                        "controller",
                        audit::Action::kRevert,
                        id,
                        {{"reason", interrupted ? "interrupted" : "recorded"},
                         {"at", "controller start"},
                         {"reverted", reverted},
                         {"failures", failures}}};
        if (Status st = deps_.audit->append(ev); !st.ok())
          spdlog::error("{}: audit: {}", id, st.error().message());
      }
    }
    if (interrupted || record.injections_size() != recorded) {
      if (Status st = deps_.store->save(record); !st.ok())
        spdlog::error("{}: record: {}", id, st.error().message());
    }
    std::lock_guard lock(mu_);
    past_[id] = record.status();
  }
  return out;
}

Result<v1::ExperimentStatus> ExperimentManager::get(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = runs_.find(id);
  if (it != runs_.end()) return it->second->status();
  if (auto p = past_.find(id); p != past_.end()) return p->second;
  return Error::not_found("experiment " + id + " not found");
}

std::vector<v1::ExperimentStatus> ExperimentManager::list() const {
  std::lock_guard lock(mu_);
  std::vector<v1::ExperimentStatus> out;
  for (const auto& [id, status] : past_) out.push_back(status);
  for (const auto& [id, run] : runs_) out.push_back(run->status());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.submitted_at().seconds() != b.submitted_at().seconds()
               ? a.submitted_at().seconds() < b.submitted_at().seconds()
               : a.id() < b.id();
  });
  return out;
}

Result<v1::ExperimentStatus> ExperimentManager::abort(const std::string& id,
                                                      const std::string& actor,
                                                      const std::string& reason) {
  std::shared_ptr<Run> run;
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(id);
    if (it == runs_.end()) {
      if (past_.count(id))
        return Error::failed_precondition("experiment " + id +
                                          " ended before the controller's last restart");
      return Error::not_found("experiment " + id + " not found");
    }
    run = it->second;
  }
  if (run->finished()) return Error::failed_precondition("experiment " + id + " has already ended");
  run->stop(StopReason::kOperator, actor,
            "aborted by " + actor + (reason.empty() ? "" : ": " + reason));
  return run->status();
}

Result<std::pair<nlohmann::json, std::string>> ExperimentManager::report(
    const std::string& id) const {
  std::shared_ptr<Run> run;
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(id);
    if (it == runs_.end()) {
      if (!past_.count(id)) return Error::not_found("experiment " + id + " not found");
      return stored_report(id);
    }
    run = it->second;
  }
  auto r = run->report();
  if (!r) return Error::failed_precondition("experiment " + id + " has no report yet");
  return *r;
}

Result<std::pair<nlohmann::json, std::string>> ExperimentManager::stored_report(
    const std::string& id) const {
  if (options_.report_dir.empty())
    return Error::failed_precondition("experiment " + id + " has no report (no state dir)");
  auto text = read_file(options_.report_dir / (id + ".json"));
  if (!text.ok())
    return Error::failed_precondition("experiment " + id +
                                      " has no report: " + text.error().message());
  auto json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded())
    return Error::status(Code::kDataLoss, "report of " + id + " is not JSON");
  // The table as it was written; a report from before tables were kept
  // gets a line instead.
  auto table = read_file(options_.report_dir / (id + ".txt"));
  std::string t =
      table.ok() ? *table : id + ": " + json.value("state", std::string("?")) + " (see -o json)\n";
  return std::make_pair(std::move(json), std::move(t));
}

void ExperimentManager::stop_all(StopReason reason, const std::string& actor,
                                 const std::string& message) {
  std::vector<std::shared_ptr<Run>> runs;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, run] : runs_) runs.push_back(run);
  }
  for (const auto& run : runs) run->stop(reason, actor, message);
}

void ExperimentManager::wait_all() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void ExperimentManager::shutdown() {
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
  }
  stop_all(StopReason::kShutdown, "controller", "controller shutting down");
  wait_all();
}

std::vector<fanout::AgentOutcome> KillSwitchBackend::engage(const std::string& actor,
                                                            const std::string& reason) {
  if (metrics_) metrics_->set_killswitch(true);
  manager_.stop_all(StopReason::kKillSwitch, actor,
                    "kill switch engaged by " + actor + (reason.empty() ? "" : ": " + reason));
  return agents_.engage(actor, reason);
}

std::vector<fanout::AgentOutcome> KillSwitchBackend::release(const std::string& actor) {
  auto out = agents_.release(actor);
  if (metrics_) metrics_->set_killswitch(false);
  return out;
}

}  // namespace nq::controller

// `nqctl apply|run|get|describe|abort|audit|report`: talk to the controller
// (proto/nodequake/v1/controller.proto). The address comes from --controller
// or $NQ_CONTROLLER (default unix:///run/nodequake/controller.sock); the
// bearer token from --token-file or $NQ_TOKEN_FILE; over TCP the channel is
// mTLS with --tls-cert/--tls-key/--tls-ca.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/server/channel.h"
#include "agent/server/status.h"
#include "common/duration.h"
#include "common/file.h"
#include "controller/experiment/parse.h"
#include "controller/killswitch/token.h"
#include "controller/nqctl/command.h"
#include "nodequake/v1/controller.grpc.pb.h"

namespace nq::nqctl {
namespace {

namespace v1 = nodequake::v1;
using google::protobuf::util::TimeUtil;

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

struct CtlFlags {
  ChannelOptions channel{env_or("NQ_CONTROLLER", "unix:///run/nodequake/controller.sock"), "", "",
                         "", ""};
  std::string token_file = env_or("NQ_TOKEN_FILE", "");
  std::string timeout = "30s";
  std::string output = "human";
  std::string file, id, reason, since, experiment, document;
  uint64_t seed = 0;
  bool force = false;
  std::string poll = "1s";
};

int fail(const Error& e) {
  std::fprintf(stderr, "nqctl: %s\n", e.message().c_str());
  return 1;
}

struct Client {
  std::unique_ptr<v1::Controller::Stub> stub;
  std::string token;
  std::chrono::nanoseconds timeout{};

  std::unique_ptr<grpc::ClientContext> context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }
};

Result<Client> connect(const CtlFlags& f) {
  Client c;
  NQ_ASSIGN_OR_RETURN(auto channel, make_channel(f.channel));
  c.stub = v1::Controller::NewStub(channel);
  if (!f.token_file.empty()) {
    auto token = killswitch::read_token_file(f.token_file);
    if (!token.ok()) return std::move(token).error().wrapped("--token-file");
    c.token = std::move(*token);
  }
  NQ_ASSIGN_OR_RETURN(c.timeout, parse_duration(f.timeout));
  return c;
}

// Calls `method` on the controller; the error names the RPC.
template <class Method, class Req, class Resp>
Status call(const Client& c, Method method, const Req& req, Resp* resp, const char* rpc) {
  auto ctx = c.context();
  grpc::Status st = ((*c.stub).*method)(ctx.get(), req, resp);
  if (!st.ok()) return from_grpc_status(st, rpc);
  return ok();
}

void print_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  std::fputs(out.c_str(), stdout);
}

std::string state(const v1::ExperimentStatus& s) {
  std::string name = v1::ExperimentState_Name(s.state());
  name = name.substr(std::string("EXPERIMENT_STATE_").size());
  for (size_t i = 1; i < name.size(); ++i) name[i] = static_cast<char>(std::tolower(name[i]));
  return name;
}

std::string secs(int64_t ms) {
  return format_duration(std::chrono::seconds(ms / 1000));
}

std::string slo_values(const v1::ExperimentStatus& s) {
  std::string out;
  for (const auto& v : s.slo()) {
    char buf[64];
    if (v.has_value())
      std::snprintf(buf, sizeof(buf), "%.4g", v.value());
    else
      std::snprintf(buf, sizeof(buf), "-");
    out += (out.empty() ? "" : "  ") + v.name() + "=" + buf + " (" + v.bound() + ", " + v.status() +
           ")";
  }
  return out;
}

std::string progress_line(const v1::ExperimentStatus& s) {
  std::string line = s.id() + "  " + state(s) + "  " + s.phase();
  if (s.state() == v1::EXPERIMENT_STATE_RUNNING)
    line += "  elapsed " + secs(s.elapsed_ms()) + ", remaining " + secs(s.remaining_ms());
  if (s.injections()) line += "  injections " + std::to_string(s.injections());
  if (s.slo_size()) line += "  " + slo_values(s);
  return line;
}

void print_describe(const v1::ExperimentStatus& s) {
  std::printf("ID:           %s\n", s.id().c_str());
  std::printf("Name:         %s (%s)\n", s.name().c_str(), s.kind().c_str());
  std::printf("State:        %s\n", state(s).c_str());
  std::printf("Phase:        %s\n", s.phase().c_str());
  if (!s.summary().empty()) std::printf("Faults:       %s\n", s.summary().c_str());
  std::printf("Submitted:    %s by %s\n", TimeUtil::ToString(s.submitted_at()).c_str(),
              s.submitted_by().c_str());
  if (s.has_ended_at()) std::printf("Ended:        %s\n", TimeUtil::ToString(s.ended_at()).c_str());
  std::printf("Elapsed:      %s (remaining %s)\n", secs(s.elapsed_ms()).c_str(),
              secs(s.remaining_ms()).c_str());
  std::printf("Seed:         %llu\n", static_cast<unsigned long long>(s.seed()));
  if (s.selections_size() <= 1) {
    std::printf("Selection:    %zu of %u eligible pods\n", static_cast<size_t>(s.chosen_size()),
                s.candidates());
    for (const auto& c : s.chosen())
      std::printf("  %s/%s on %s (%s)\n", c.namespace_().c_str(), c.name().c_str(),
                  c.node().c_str(), c.agent().c_str());
  } else {
    // A workflow: one selection per chaos step (a pod may be chosen by several).
    std::printf("Selection:\n");
    for (const auto& sel : s.selections()) {
      std::printf("  %s: %u of %u eligible pods (%s)\n", sel.step().c_str(), sel.chosen(),
                  sel.candidates(), sel.mode().c_str());
      for (const auto& c : s.chosen())
        if (c.step() == sel.step())
          std::printf("    %s/%s on %s (%s)\n", c.namespace_().c_str(), c.name().c_str(),
                      c.node().c_str(), c.agent().c_str());
    }
  }
  std::printf("Injections:   %u active\n", s.injections());
  for (const auto& v : s.slo())
    std::printf("SLO:          %s %s: %s %s\n", v.name().c_str(), v.bound().c_str(),
                v.has_value() ? std::to_string(v.value()).c_str() : "-", v.status().c_str());
  if (!s.abort_rule().empty())
    std::printf("Abort:        %s = %g\n", s.abort_rule().c_str(), s.abort_value());
  if (!s.message().empty()) std::printf("Message:      %s\n", s.message().c_str());
}

// Exit codes of `run`, by outcome.
int exit_code(const v1::ExperimentStatus& s) {
  switch (s.state()) {
    case v1::EXPERIMENT_STATE_SUCCEEDED:
      return 0;
    case v1::EXPERIMENT_STATE_FAILED:
      return 1;
    case v1::EXPERIMENT_STATE_ABORTED:
      return 3;
    case v1::EXPERIMENT_STATE_REVERTED:
      return 4;
    default:
      return 5;
  }
}

Result<v1::ExperimentStatus> submit(const Client& c, const CtlFlags& f, const std::string& yaml,
                                    const std::string& document) {
  v1::SubmitRequest req;
  req.set_yaml(yaml);
  req.set_file(f.file);
  req.set_document(document);
  req.set_seed(f.seed);
  req.set_force(f.force);
  v1::SubmitResponse resp;
  NQ_TRY(call(c, &v1::Controller::Stub::Submit, req, &resp, "Submit"));
  return resp.experiment();
}

// `apply -f` of a file of several documents without --document: every one,
// by name, once all of them parse (a file with an error submits nothing).
int apply_all(const Client& c, const CtlFlags& f, const std::string& yaml,
              const std::vector<std::string>& names) {
  int rc = 0;
  for (const auto& name : names) {
    auto s = submit(c, f, yaml, name);
    if (!s.ok()) {
      std::fprintf(stderr, "nqctl: %s: %s\n", name.c_str(), s.error().message().c_str());
      rc = 1;
      continue;
    }
    if (f.output == "json") {
      print_json(*s);
      continue;
    }
    std::printf("experiment %s submitted (seed %llu)\n", s->id().c_str(),
                static_cast<unsigned long long>(s->seed()));
  }
  return rc;
}

int run_apply(const CtlFlags& f, bool follow) {
  auto c = connect(f);
  if (!c.ok()) return fail(c.error());
  auto yaml = read_file(f.file);
  if (!yaml.ok()) return fail(yaml.error());
  if (!follow && f.document.empty()) {
    // Several documents: apply them all, as `kubectl apply -f` would.
    auto docs = experiment::load_experiments(*yaml, f.file);
    if (!docs.ok()) return fail(docs.error());
    if (docs->size() > 1) {
      std::vector<std::string> names;
      for (const auto& d : *docs)
        names.push_back(std::visit(
            [](const auto& x) {
              return x.namespace_.empty() ? x.name : x.namespace_ + "/" + x.name;
            },
            d));
      return apply_all(*c, f, *yaml, names);
    }
  }
  auto s = submit(*c, f, *yaml, f.document);
  if (!s.ok()) return fail(s.error());
  if (f.output == "json" && !follow) {
    print_json(*s);
    return 0;
  }
  std::fprintf(f.output == "json" ? stderr : stdout, "experiment %s submitted (seed %llu)\n",
               s->id().c_str(), static_cast<unsigned long long>(s->seed()));
  std::fflush(stdout);
  if (!follow) return 0;
  auto poll = parse_duration(f.poll);
  if (!poll.ok()) return fail(std::move(poll).error().wrapped("--poll"));
  const bool tty = ::isatty(STDERR_FILENO);
  v1::GetRequest req;
  req.set_id(s->id());
  v1::ExperimentStatus last = *s;
  while (true) {
    v1::GetResponse resp;
    if (Status st = call(*c, &v1::Controller::Stub::Get, req, &resp, "Get"); !st.ok())
      return fail(st.error());
    last = resp.experiments(0);
    const std::string line = progress_line(last);
    // A live line on a terminal; one line per poll in logs.
    if (tty)
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    else
      std::fprintf(stderr, "%s\n", line.c_str());
    const auto st = last.state();
    if (st != v1::EXPERIMENT_STATE_PENDING && st != v1::EXPERIMENT_STATE_RUNNING) break;
    std::this_thread::sleep_for(*poll);
  }
  if (tty) std::fputc('\n', stderr);
  if (f.output == "json") {
    print_json(last);
  } else {
    print_describe(last);
    v1::ReportRequest rreq;
    rreq.set_id(last.id());
    v1::ReportResponse rresp;
    if (call(*c, &v1::Controller::Stub::Report, rreq, &rresp, "Report").ok())
      std::printf("\n%s", rresp.table().c_str());
  }
  return exit_code(last);
}

int run_get(const CtlFlags& f, bool describe) {
  auto c = connect(f);
  if (!c.ok()) return fail(c.error());
  v1::GetRequest req;
  req.set_id(f.id);
  v1::GetResponse resp;
  if (Status st = call(*c, &v1::Controller::Stub::Get, req, &resp, "Get"); !st.ok())
    return fail(st.error());
  if (f.output == "json") {
    if (f.id.empty())
      print_json(resp);
    else
      print_json(resp.experiments(0));
    return 0;
  }
  if (describe) {
    print_describe(resp.experiments(0));
    return 0;
  }
  std::printf("%-40s %-28s %-13s %-10s %-8s %s\n", "ID", "NAME", "KIND", "STATE", "ELAPSED",
              "PHASE");
  for (const auto& s : resp.experiments())
    std::printf("%-40s %-28s %-13s %-10s %-8s %s\n", s.id().c_str(), s.name().c_str(),
                s.kind().c_str(), state(s).c_str(), secs(s.elapsed_ms()).c_str(),
                s.phase().c_str());
  return 0;
}

int run_abort(const CtlFlags& f) {
  auto c = connect(f);
  if (!c.ok()) return fail(c.error());
  v1::AbortRequest req;
  req.set_id(f.id);
  req.set_reason(f.reason);
  v1::AbortResponse resp;
  if (Status st = call(*c, &v1::Controller::Stub::Abort, req, &resp, "Abort"); !st.ok())
    return fail(st.error());
  if (f.output == "json")
    print_json(resp.experiment());
  else
    std::printf("experiment %s: stopping and reverting\n", f.id.c_str());
  return 0;
}

// --since: a duration back from now ("1h") or an RFC 3339 time.
Result<google::protobuf::Timestamp> parse_since(const std::string& text) {
  google::protobuf::Timestamp ts;
  if (TimeUtil::FromString(text, &ts)) return ts;
  auto d = parse_duration(text);
  if (!d.ok())
    return Error::invalid_argument("--since", "\"" + text +
                                                  "\" is neither a duration (1h) nor an RFC 3339 "
                                                  "time");
  return TimeUtil::NanosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch() - *d)
          .count());
}

int run_audit(const CtlFlags& f) {
  auto c = connect(f);
  if (!c.ok()) return fail(c.error());
  v1::AuditRequest req;
  if (!f.since.empty()) {
    auto since = parse_since(f.since);
    if (!since.ok()) return fail(since.error());
    *req.mutable_since() = *since;
  }
  req.set_experiment(f.experiment);
  v1::AuditResponse resp;
  if (Status st = call(*c, &v1::Controller::Stub::Audit, req, &resp, "Audit"); !st.ok())
    return fail(st.error());
  if (f.output == "json") {
    // JSON lines, as in the file: ready for jq or an archive.
    for (const auto& l : resp.lines()) std::printf("%s\n", l.c_str());
    return 0;
  }
  std::printf("%-24s %-26s %-19s %-36s %s\n", "TIME", "ACTOR", "ACTION", "EXPERIMENT", "DETAILS");
  for (const auto& l : resp.lines()) {
    auto j = nlohmann::json::parse(l, nullptr, false);
    if (j.is_discarded()) continue;
    std::printf("%-24s %-26s %-19s %-36s %s\n", j.value("time", "").c_str(),
                j.value("actor", "").c_str(), j.value("action", "").c_str(),
                j.value("experiment", "").c_str(),
                j.value("details", nlohmann::json{}).dump().c_str());
  }
  return 0;
}

int run_report(const CtlFlags& f) {
  auto c = connect(f);
  if (!c.ok()) return fail(c.error());
  v1::ReportRequest req;
  req.set_id(f.id);
  v1::ReportResponse resp;
  if (Status st = call(*c, &v1::Controller::Stub::Report, req, &resp, "Report"); !st.ok())
    return fail(st.error());
  std::printf("%s\n", f.output == "json" ? resp.json().c_str() : resp.table().c_str());
  return 0;
}

void common_flags(CLI::App* cmd, CtlFlags& f) {
  cmd->add_option("--controller", f.channel.target,
                  "Controller API: unix:///path or host:port (mTLS); $NQ_CONTROLLER")
      ->capture_default_str();
  cmd->add_option("--token-file", f.token_file, "Bearer token for the controller; $NQ_TOKEN_FILE");
  cmd->add_option("--tls-cert", f.channel.tls_cert_file, "Client certificate (TCP)");
  cmd->add_option("--tls-key", f.channel.tls_key_file, "Client key (TCP)");
  cmd->add_option("--tls-ca", f.channel.tls_ca_file, "CA of the controller's certificate (TCP)");
  cmd->add_option("--tls-server-name", f.channel.tls_server_name, "Name to verify (TCP)");
  cmd->add_option("--timeout", f.timeout, "Deadline of each call")->capture_default_str();
  cmd->add_option("-o,--output", f.output, "human or json")
      ->check(CLI::IsMember({"human", "json"}))
      ->capture_default_str();
}

}  // namespace

void add_controller_commands(CLI::App& app, Context& ctx) {
  auto add = [&](const char* name, const char* help) {
    auto flags = std::make_shared<CtlFlags>();
    CLI::App* cmd = app.add_subcommand(name, help);
    common_flags(cmd, *flags);
    return std::make_pair(cmd, flags);
  };
  for (bool follow : {false, true}) {
    auto [cmd, f] = add(follow ? "run" : "apply",
                        follow ? "Submit an experiment and follow it to the end (exit code: 0 "
                                 "succeeded, 1 failed, 3 aborted, 4 reverted)"
                               : "Submit an experiment; prints its id and seed");
    cmd->add_option("-f,--file", f->file,
                    follow ? "Experiment file (several documents: pick one with --document)"
                           : "Experiment file (several documents: each is submitted)")
        ->required();
    cmd->add_option("--document", f->document,
                    "metadata.name (or namespace/name) of the one document of the file to submit");
    cmd->add_option("--seed", f->seed, "Selection seed, to repeat a run (0 = random)");
    cmd->add_flag("--force", f->force, "Allow a selection above the blast-radius ceiling");
    if (follow) cmd->add_option("--poll", f->poll, "Progress interval")->capture_default_str();
    cmd->callback(
        [f, follow, &ctx] { ctx.action = [f, follow] { return run_apply(*f, follow); }; });
  }
  {
    auto [cmd, f] = add("get", "List experiments, or one");
    cmd->add_option("id", f->id, "Experiment id");
    cmd->callback([f, &ctx] { ctx.action = [f] { return run_get(*f, false); }; });
  }
  {
    auto [cmd, f] = add("describe", "Everything about one experiment");
    cmd->add_option("id", f->id, "Experiment id")->required();
    cmd->callback([f, &ctx] { ctx.action = [f] { return run_get(*f, true); }; });
  }
  {
    auto [cmd, f] = add("abort", "Stop an experiment and revert everything it injected");
    cmd->add_option("id", f->id, "Experiment id")->required();
    cmd->add_option("--reason", f->reason, "Recorded in the audit log");
    cmd->callback([f, &ctx] { ctx.action = [f] { return run_abort(*f); }; });
  }
  {
    auto [cmd, f] = add("audit", "The audit trail (-o json: JSON lines)");
    cmd->add_option("--since", f->since, "A duration back from now (1h) or an RFC 3339 time");
    cmd->add_option("--experiment", f->experiment, "Only this experiment's events");
    cmd->callback([f, &ctx] { ctx.action = [f] { return run_audit(*f); }; });
  }
  {
    auto [cmd, f] = add("report", "The SLO report of an experiment (table, or -o json)");
    cmd->add_option("id", f->id, "Experiment id")->required();
    cmd->callback([f, &ctx] { ctx.action = [f] { return run_report(*f); }; });
  }
}

}  // namespace nq::nqctl

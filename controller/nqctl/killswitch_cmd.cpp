// `nqctl killswitch engage|release|status`: the controller's kill-switch HTTP
// endpoint (controller/killswitch/http.h), which works without the
// controller's API and without Prometheus. URL from --url or
// $NQ_KILLSWITCH_URL, token from --token-file or $NQ_KILLSWITCH_TOKEN_FILE.

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>

#include "controller/killswitch/client.h"
#include "controller/killswitch/token.h"
#include "controller/nqctl/command.h"

namespace nq::nqctl {
namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

struct KsFlags {
  std::string url = env_or("NQ_KILLSWITCH_URL", "http://127.0.0.1:8090");
  std::string token_file = env_or("NQ_KILLSWITCH_TOKEN_FILE", "/etc/nodequake/killswitch-token");
  std::string reason, actor = env_or("USER", "");
  std::string output = "human";
  long timeout_ms = 10000;
};

void print_human(const nlohmann::json& j) {
  const bool engaged = j.value("engaged", false);
  std::printf("kill switch: %s", engaged ? "ENGAGED" : "released");
  if (!j.value("actor", "").empty()) std::printf(" by %s", j.value("actor", "").c_str());
  if (engaged && !j.value("reason", "").empty()) std::printf(": %s", j.value("reason", "").c_str());
  if (!j.value("since", "").empty()) std::printf(" (since %s)", j.value("since", "").c_str());
  std::printf("\n");
  if (!j.contains("agents")) return;
  std::printf("%s in %lld ms\n", j.value("complete", false) ? "complete" : "INCOMPLETE",
              static_cast<long long>(j.value("took_ms", 0)));
  for (const auto& a : j["agents"]) {
    std::printf("  %-28s %s", a.value("agent", "").c_str(), a.value("ok", false) ? "ok" : "FAILED");
    if (a.contains("reverted")) std::printf(", reverted %d", a.value("reverted", 0));
    if (!a.value("error", "").empty()) std::printf(": %s", a.value("error", "").c_str());
    std::printf("\n");
  }
}

int run_killswitch(const KsFlags& f, const std::string& action) {
  auto token = killswitch::read_token_file(f.token_file);
  if (!token.ok()) {
    std::fprintf(stderr, "nqctl: --token-file: %s\n", token.error().message().c_str());
    return 1;
  }
  std::string method = "GET", body;
  if (action == "engage") {
    method = "POST";
    body = nlohmann::json{{"reason", f.reason}, {"actor", f.actor}}.dump();
  } else if (action == "release") {
    method = "DELETE";
    body = nlohmann::json{{"actor", f.actor}}.dump();
  }
  auto answer = killswitch::request(method, f.url + "/v1/killswitch", *token, body, f.timeout_ms);
  if (!answer.ok()) {
    std::fprintf(stderr, "nqctl: %s\n", answer.error().message().c_str());
    return 1;
  }
  auto j = nlohmann::json::parse(answer->body, nullptr, false);
  if (answer->status != 200 || j.is_discarded()) {
    std::fprintf(stderr, "nqctl: kill switch answered %ld: %s\n", answer->status,
                 answer->body.c_str());
    return 1;
  }
  if (f.output == "json")
    std::printf("%s\n", j.dump(2).c_str());
  else
    print_human(j);
  // Engaged but not every agent confirmed: the SRE must know.
  return j.contains("complete") && !j.value("complete", true) ? 2 : 0;
}

}  // namespace

void add_killswitch_commands(CLI::App& app, Context& ctx) {
  CLI::App* ks = app.add_subcommand("killswitch", "Engage, release or show the kill switch");
  ks->require_subcommand(1);
  for (const char* action : {"engage", "release", "status"}) {
    auto f = std::make_shared<KsFlags>();
    CLI::App* cmd = ks->add_subcommand(action, std::string(action) + " the kill switch");
    cmd->add_option("--url", f->url, "Kill-switch endpoint; $NQ_KILLSWITCH_URL")
        ->capture_default_str();
    cmd->add_option("--token-file", f->token_file, "Bearer token; $NQ_KILLSWITCH_TOKEN_FILE")
        ->capture_default_str();
    cmd->add_option("-o,--output", f->output, "human or json")
        ->check(CLI::IsMember({"human", "json"}))
        ->capture_default_str();
    if (std::string(action) != "status")
      cmd->add_option("--actor", f->actor, "Your name, recorded with the token's identity");
    if (std::string(action) == "engage") cmd->add_option("--reason", f->reason, "Why");
    std::string a = action;
    cmd->callback([f, a, &ctx] { ctx.action = [f, a] { return run_killswitch(*f, a); }; });
  }
}

}  // namespace nq::nqctl

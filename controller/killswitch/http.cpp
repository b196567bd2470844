#include "controller/killswitch/http.h"

#include <civetweb.h>
#include <spdlog/spdlog.h>

#include <string_view>

#include "controller/killswitch/token.h"

namespace nq::killswitch {
namespace {

constexpr std::string_view kPath = "/v1/killswitch";
constexpr size_t kMaxBody = 64 * 1024;

HttpResponse json_response(int status, const nlohmann::json& body) {
  return {status, body.dump(2) + "\n", {}};
}

HttpResponse error_response(int status, const std::string& message) {
  return json_response(status, {{"error", message}});
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    default:
      return "Internal Server Error";
  }
}

}  // namespace

HttpResponse handle(const HttpRequest& req, const HandlerConfig& config, KillSwitch& ks) {
  // Authentication comes before routing, so an unauthenticated caller learns
  // nothing, not even which paths exist.
  const auto token = bearer_token(req.authorization);
  if (!token || !token_matches(*token, config.token)) {
    HttpResponse r = error_response(401, token ? "invalid token" : "bearer token required");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"nodequake\"");
    return r;
  }
  if (req.path != kPath) return error_response(404, "no such resource: " + req.path);

  if (req.method == "GET") return json_response(200, to_json(ks.status()));
  if (req.method != "POST" && req.method != "DELETE") {
    HttpResponse r = error_response(405, "use GET, POST or DELETE");
    r.headers.emplace_back("Allow", "GET, POST, DELETE");
    return r;
  }

  std::string reason, name;
  if (!req.body.empty()) {
    const auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object())
      return error_response(400, "body: not a JSON object");
    for (auto [field, out] : {std::pair{"reason", &reason}, std::pair{"actor", &name}}) {
      auto it = body.find(field);
      if (it == body.end()) continue;
      if (!it->is_string()) return error_response(400, std::string(field) + ": not a string");
      *out = it->get<std::string>();
    }
  }
  const std::string actor = name.empty() ? config.identity : config.identity + ":" + name;
  auto report = req.method == "POST"
                    ? ks.engage(actor, reason.empty() ? "kill switch (HTTP)" : reason)
                    : ks.release(actor);
  if (!report.ok()) return error_response(500, report.error().message());
  return json_response(200, to_json(*report));
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpOptions& options, KillSwitch& ks) {
  NQ_ASSIGN_OR_RETURN(std::string token, read_token_file(options.token_file));
  std::unique_ptr<HttpServer> server(new HttpServer({std::move(token), options.identity}, ks));

  // Reference-counted inside civetweb; balanced by mg_exit_library() below.
  mg_init_library(0);
  mg_callbacks callbacks{};
  callbacks.log_message = [](const mg_connection*, const char* message) {
    spdlog::warn("killswitch http: {}", message);
    return 1;  // handled: civetweb prints nothing itself
  };
  const std::string threads = std::to_string(options.threads);
  const char* mg_options[] = {"listening_ports", options.listen.c_str(), "num_threads",
                              threads.c_str(), "request_timeout_ms", "10000",
                              // No document root: only our handler serves.
                              nullptr};
  server->ctx_ = mg_start(&callbacks, server.get(), mg_options);
  if (server->ctx_ == nullptr) {
    mg_exit_library();
    return Error::unavailable("listen: civetweb could not listen on \"" + options.listen + "\"");
  }
  mg_set_request_handler(server->ctx_, "/", &HttpServer::on_request, server.get());
  mg_server_port ports[4] = {};
  if (mg_get_server_ports(server->ctx_, 4, ports) > 0)
    server->port_ = static_cast<uint16_t>(ports[0].port);
  return server;
}

HttpServer::~HttpServer() {
  if (ctx_ != nullptr) {
    mg_stop(ctx_);
    mg_exit_library();
  }
}

int HttpServer::on_request(mg_connection* conn, void* self_ptr) {
  auto* self = static_cast<HttpServer*>(self_ptr);
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest req;
  req.method = info->request_method ? info->request_method : "";
  req.path = info->local_uri ? info->local_uri : "";
  if (const char* auth = mg_get_header(conn, "Authorization")) req.authorization = auth;

  HttpResponse resp;
  if (info->content_length > static_cast<long long>(kMaxBody)) {
    resp = error_response(413, "body larger than 64 KiB");
  } else {
    char buf[4096];
    for (;;) {
      const int n = mg_read(conn, buf, sizeof(buf));
      if (n <= 0) break;
      req.body.append(buf, static_cast<size_t>(n));
      if (req.body.size() > kMaxBody) break;
    }
    resp = req.body.size() > kMaxBody ? error_response(413, "body larger than 64 KiB")
                                      : handle(req, self->config_, self->ks_);
  }
  std::string head =
      "HTTP/1.1 " + std::to_string(resp.status) + " " + reason_phrase(resp.status) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(resp.body.size()) +
      "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  for (const auto& [k, v] : resp.headers) head += k + ": " + v + "\r\n";
  head += "\r\n";
  mg_write(conn, head.data(), head.size());
  mg_write(conn, resp.body.data(), resp.body.size());
  return resp.status;  // non-zero: handled
}

}  // namespace nq::killswitch

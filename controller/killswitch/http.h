// The kill switch over HTTP for SREs, on the controller:
//   POST   /v1/killswitch   engage   (optional JSON body {"reason", "actor"})
//   DELETE /v1/killswitch   release  (optional JSON body {"actor"})
//   GET    /v1/killswitch   status
// Every request needs "Authorization: Bearer <token>" (401 otherwise). The
// answer is JSON: the state, and for POST/DELETE the per-agent outcome.
//
// Server: civetweb (Debian's libcivetweb-dev), a small, maintained embedded
// HTTP server; the same library prometheus-cpp's exposer is built on, used
// here directly so the kill switch keeps working without the metrics stack.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "controller/killswitch/killswitch.h"

struct mg_context;
struct mg_connection;

namespace nq::killswitch {

struct HttpRequest {
  std::string method;
  std::string path;
  std::string authorization;  // the Authorization header, "" when absent
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;  // JSON
  std::vector<std::pair<std::string, std::string>> headers;
};

struct HandlerConfig {
  std::string token;
  // The identity a valid token stands for, recorded as the actor (with the
  // name the caller gives in the body: "<identity>:<name>").
  std::string identity = "killswitch-token";
};

// Everything but the socket: authentication, routing, the kill switch call.
HttpResponse handle(const HttpRequest& request, const HandlerConfig& config, KillSwitch& ks);

struct HttpOptions {
  // civetweb listening_ports syntax: "127.0.0.1:8090", "0.0.0.0:8090", "8090";
  // port 0 picks a free one (see HttpServer::port()).
  std::string listen = "127.0.0.1:8090";
  std::string token_file;
  std::string identity = "killswitch-token";
  unsigned threads = 4;
};

class HttpServer {
 public:
  // Reads the token file (refusing a missing or short token) and listens.
  static Result<std::unique_ptr<HttpServer>> start(const HttpOptions& options, KillSwitch& ks);
  // Stops listening and waits for requests in progress.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }

 private:
  HttpServer(HandlerConfig config, KillSwitch& ks) : config_(std::move(config)), ks_(ks) {}
  static int on_request(::mg_connection* conn, void* self);

  HandlerConfig config_;
  KillSwitch& ks_;
  mg_context* ctx_ = nullptr;
  uint16_t port_ = 0;
};

}  // namespace nq::killswitch

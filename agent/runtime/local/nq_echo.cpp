// nq-echo: the workload of sandbox pods. A thin main around
// nq::traffic::Server: TCP/UDP echo (7), sink (9), source (19) and HTTP
// (8080) answering the pod's name, until SIGTERM/SIGINT.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/traffic.h"

int main(int argc, char** argv) {
  CLI::App app{"nq-echo: echo/sink/source/HTTP server for sandbox pods"};
  std::string name;
  if (const char* env = std::getenv("NQ_POD_NAME")) name = env;
  std::string bind = "0.0.0.0";
  nq::traffic::Ports ports;
  app.add_option("--name", name, "name the HTTP port answers with (default: $NQ_POD_NAME)");
  app.add_option("--bind", bind, "address to listen on")->capture_default_str();
  app.add_option("--echo-port", ports.echo, "TCP and UDP echo")->capture_default_str();
  app.add_option("--sink-port", ports.sink, "TCP sink")->capture_default_str();
  app.add_option("--source-port", ports.source, "TCP source")->capture_default_str();
  app.add_option("--http-port", ports.http, "HTTP")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    name = host;
  }

  // Signals are taken by a thread with sigwait (blocked everywhere else, also
  // in the server thread), so stopping needs no global state.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto server = nq::traffic::Server::create(bind, ports, name);
  if (!server.ok()) {
    std::fprintf(stderr, "nq-echo: %s\n", server.error().message().c_str());
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    (*server)->stop();
  });
  std::fprintf(stderr, "nq-echo %s: serving on %s (echo %u, sink %u, source %u, http %u)\n",
               name.c_str(), bind.c_str(), ports.echo, ports.sink, ports.source, ports.http);
  nq::Status st = (*server)->run();
  // run() only returns on stop() or a loop failure; wake the waiter either way.
  if (!st.ok()) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!st.ok()) {
    std::fprintf(stderr, "nq-echo: %s\n", st.error().message().c_str());
    return 1;
  }
  return 0;
}

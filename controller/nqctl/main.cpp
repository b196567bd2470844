// nqctl: the command line of nodequake. Command groups register themselves
// from their own files (command.h); main only parses and runs.
#include <cstdio>

#include "agent/server/tls.h"
#include "controller/nqctl/command.h"

int main(int argc, char** argv) {
  // gRPC reads its TLS configuration once per process: pin TLS 1.3 first.
  if (auto st = nq::pin_grpc_tls13(); !st.ok()) {
    std::fprintf(stderr, "nqctl: %s\n", st.error().message().c_str());
    return 1;
  }
  CLI::App app{"nqctl: chaos engineering for Kubernetes nodes"};
  app.require_subcommand(1);
  nq::nqctl::Context ctx;
  for (nq::nqctl::AddCommands add :
       {&nq::nqctl::add_sandbox_commands, &nq::nqctl::add_agent_commands,
        &nq::nqctl::add_validate_commands, &nq::nqctl::add_controller_commands,
        &nq::nqctl::add_killswitch_commands})
    add(app, ctx);
  CLI11_PARSE(app, argc, argv);
  if (!ctx.action) {
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }
  return ctx.action();
}

// nqctl: the command line of nodequake. Command groups register themselves
// from their own files (command.h); main only parses and runs.
#include <cstdio>

#include "controller/nqctl/command.h"

int main(int argc, char** argv) {
  CLI::App app{"nqctl: chaos engineering for Kubernetes nodes"};
  app.require_subcommand(1);
  nq::nqctl::Context ctx;
  for (nq::nqctl::AddCommands add : {&nq::nqctl::add_sandbox_commands}) add(app, ctx);
  CLI11_PARSE(app, argc, argv);
  if (!ctx.action) {
    std::fputs(app.help().c_str(), stderr);
    return 2;
  }
  return ctx.action();
}

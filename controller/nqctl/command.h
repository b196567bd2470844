// nqctl's command groups. Each group adds its subcommands to the app in its
// own file; the chosen subcommand leaves its action in the Context and main
// runs it after parsing, so every error surfaces as a message and an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace nq::nqctl {

struct Context {
  std::function<int()> action;  // returns the exit code
};

using AddCommands = void (*)(CLI::App& app, Context& ctx);

// `nqctl sandbox up|down|list|measure` (and the internal `shim`): sandbox_cmd.cpp.
void add_sandbox_commands(CLI::App& app, Context& ctx);
// `nqctl sandbox load` (a request workload with metrics): load_cmd.cpp, added
// to the sandbox group by add_sandbox_commands.
void add_sandbox_load_command(CLI::App& sandbox, Context& ctx);
// `nqctl agent probe|targets|apply|revert|list|renew|revert-all|release`: agent_cmd.cpp.
void add_agent_commands(CLI::App& app, Context& ctx);
// `nqctl validate FILE...`: validate_cmd.cpp.
void add_validate_commands(CLI::App& app, Context& ctx);
// `nqctl apply|run|get|describe|abort|audit|report` (the controller's API): controller_cmd.cpp.
void add_controller_commands(CLI::App& app, Context& ctx);
// `nqctl killswitch engage|release|status` (HTTP): killswitch_cmd.cpp.
void add_killswitch_commands(CLI::App& app, Context& ctx);

}  // namespace nq::nqctl

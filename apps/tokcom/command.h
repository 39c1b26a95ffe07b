// How a verb plugs into the CLI: each apps/tokcom/cmd_*.cpp registers itself with
// TOKCOM_REGISTER_COMMAND, so adding a verb never touches main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "tokcom/core/startup.h"

namespace tokcom::cli {

using Action = std::function<void()>;

// Runs after parsing and start-up (threads, malloc, seed, logging) for the deepest parsed
// subcommand: `tokcom data info` runs the action of `info`.
void set_action(CLI::App* command, Action action);

// Returns the subcommand `name` of `parent`, creating it with `description` if needed, so several
// files can add verbs under one group (`data info`, `data show`).
CLI::App* group(CLI::App& parent, const std::string& name, const std::string& description);

// The global options (--threads, --seed, --log-level) as parsed; valid inside actions.
const StartupOptions& global_options();

using AddCommand = std::function<void(CLI::App&)>;
struct CommandRegistrar {
  CommandRegistrar(int order, AddCommand add);
};

}  // namespace tokcom::cli

// `order` sorts `tokcom --help` (foundation verbs first).
#define TOKCOM_REGISTER_COMMAND(order, fn) \
  static ::tokcom::cli::CommandRegistrar tokcom_registrar_##fn(order, fn)

// How a verb plugs into the CLI: each apps/tokcom/cmd_*.cpp registers itself with
// TOKCOM_REGISTER_COMMAND, so adding a verb never touches main.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "tokcom/core/startup.h"
#include "tokcom/core/text.h"

namespace tokcom::cli {

using Action = std::function<void()>;

// Runs after parsing and start-up (threads, malloc, seed, logging) for the deepest parsed
// subcommand: `tokcom data info` runs the action of `info`.
void set_action(CLI::App* command, Action action);

// A finite number ≥ 0 (seconds, milliseconds): CLI::NonNegativeNumber lets NaN through (NaN < 0
// is false) and accepts inf.
inline const CLI::Validator kFiniteNonNegative(
    [](std::string& text) -> std::string {
      const std::optional<double> v = parse_double(text);
      return v && *v >= 0 ? "" : "Value " + text + " is not a finite number >= 0";
    },
    "FINITE >= 0");

// A finite number (an SNR in dB): CLI11's own types take NaN and ±inf.
inline const CLI::Validator kFinite(
    [](std::string& text) -> std::string {
      const std::optional<double> v = parse_double(text);
      return v ? "" : "Value " + text + " is not a finite number";
    },
    "FINITE");

// A finite number > 0 (V, μ, ζ_max).
inline const CLI::Validator kFinitePositive(
    [](std::string& text) -> std::string {
      const std::optional<double> v = parse_double(text);
      return v && *v > 0 ? "" : "Value " + text + " is not a finite number > 0";
    },
    "FINITE > 0");

// A budget α in (0, 1] (CLI::Range lets NaN through: every comparison with NaN is false).
inline const CLI::Validator kBudget(
    [](std::string& text) -> std::string {
      const std::optional<double> v = parse_double(text);
      return v && *v > 0 && *v <= 1 ? "" : "Value " + text + " is not a budget in (0, 1]";
    },
    "IN (0, 1]");

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

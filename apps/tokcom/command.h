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

// A number that parses finite (parse_double) and passes `ok`; otherwise "Value T is not <expected>".
// CLI11's own number types take NaN and ±inf, and its comparisons (NonNegativeNumber, Range) let
// NaN through: every comparison with NaN is false.
inline CLI::Validator finite_number(std::function<bool(double)> ok, const std::string& expected,
                                    const std::string& name) {
  return CLI::Validator(
      [ok, expected](std::string& text) -> std::string {
        const std::optional<double> v = parse_double(text);
        return v && ok(*v) ? "" : "Value " + text + " is not " + expected;
      },
      name);
}
// Durations (seconds, milliseconds).
inline const CLI::Validator kFiniteNonNegative =
    finite_number([](double v) { return v >= 0; }, "a finite number >= 0", "FINITE >= 0");
// An SNR in dB.
inline const CLI::Validator kFinite = finite_number([](double) { return true; }, "a finite number", "FINITE");
// V, μ, ζ_max.
inline const CLI::Validator kFinitePositive =
    finite_number([](double v) { return v > 0; }, "a finite number > 0", "FINITE > 0");
// A budget α.
inline const CLI::Validator kBudget =
    finite_number([](double v) { return v > 0 && v <= 1; }, "a budget in (0, 1]", "IN (0, 1]");

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

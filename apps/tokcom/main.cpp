// tokcom: adaptive semantic token communication. Thin over the library: one file per verb.
#include <algorithm>
#include <iostream>
#include <map>
#include <vector>

#include <spdlog/spdlog.h>

#include "command.h"
#include "tokcom/core/blas_kernel.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/startup.h"
#include "tokcom/core/version.h"

namespace tokcom::cli {
namespace {

std::vector<std::pair<int, AddCommand>>& registry() {
  static std::vector<std::pair<int, AddCommand>> r;
  return r;
}
StartupOptions& global_storage() {
  static StartupOptions o;
  return o;
}
std::map<CLI::App*, Action>& actions() {
  static std::map<CLI::App*, Action> a;
  return a;
}

CLI::App* deepest_parsed(CLI::App* app) {
  for (CLI::App* sub : app->get_subcommands()) return deepest_parsed(sub);
  return app;
}

}  // namespace

const StartupOptions& global_options() { return global_storage(); }

void set_action(CLI::App* command, Action action) { actions()[command] = std::move(action); }

CLI::App* group(CLI::App& parent, const std::string& name, const std::string& description) {
  for (CLI::App* existing : parent.get_subcommands(nullptr))
    if (existing->get_name() == name) return existing;
  CLI::App* g = parent.add_subcommand(name, description);
  g->require_subcommand(1);
  return g;
}

CommandRegistrar::CommandRegistrar(int order, AddCommand add) {
  registry().emplace_back(order, std::move(add));
}

}  // namespace tokcom::cli

int main(int argc, char** argv) {
  using namespace tokcom;
  CLI::App app{
      "tokcom: adaptive semantic token communication for split vision transformers.\n"
      "A ViT is split between an edge device and a server; the device keeps the tokens that\n"
      "matter under a budget, encodes them into channel symbols (learned JSCC), the server\n"
      "decodes and classifies. Run `tokcom <verb> --help` for each verb's options.",
      "tokcom"};
  StartupOptions& startup_options = cli::global_storage();
  app.add_option("--threads", startup_options.threads, "Intra-op threads (0 = all cores)")
      ->check(tokcom::cli::kFiniteNonNegative)->capture_default_str();
  app.add_option("--seed", startup_options.seed, "Seed for every random generator")->capture_default_str();
  app.add_option("--log-level", startup_options.log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--precision", startup_options.precision,
                 "fp32|bf16 for every model forward (eval, sweep, calibrate, predict, serve, device; train: "
                 "overrides train.precision). Default fp32; bf16 pays only on CPUs with avx512_bf16/AMX (docs/PERF.md)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  // After --threads: CLI11 runs option callbacks in the order the options were added.
  app.set_version_flag("--version", [&startup_options] {
    return std::string("tokcom ") + TOKCOM_VERSION + " (" + tokcom::git_hash() + ")\n" +
           runtime_report(startup_options.threads > 0 ? startup_options.threads : core_count());
  }, "Print the version, LibTorch/BLAS/oneDNN versions, the BLAS kernel in use and the threads, then exit");
  app.require_subcommand(1);

  auto& reg = cli::registry();
  std::stable_sort(reg.begin(), reg.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, add] : reg) add(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are successes; any other mistake on the command line (unknown flag,
    // missing value, a value outside its set) prints CLI11's message and is a usage error with
    // UsageError's one exit code, like the mistakes the verbs find themselves.
    const int code = app.exit(e);
    return code == 0 ? 0 : UsageError("").exit_code();
  }
  try {
    startup(startup_options);
    CLI::App* command = cli::deepest_parsed(&app);
    auto it = cli::actions().find(command);
    if (it == cli::actions().end()) {
      std::cerr << command->help();
      return 1;
    }
    it->second();
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return e.exit_code();
  } catch (const c10::Error& e) {
    spdlog::error("LibTorch: {}", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}

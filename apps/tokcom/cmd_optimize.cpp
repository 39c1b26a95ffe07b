// `tokcom optimize`: the Lyapunov controller driven by a proxy table (SPEC 8). Table-driven mode:
// --simulate runs one (V, μ) on the proxy simulation and writes the per-slot trace; without
// --V/--mu it searches the (V, μ) grid per --zeta-max and scenario and reports the oracle bound.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include <cmath>
#include <memory>
#include <optional>

#include "command.h"
#include "tokcom/control/csv_util.h"
#include "tokcom/control/optimize.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/control/synthetic_table.h"
#include "tokcom/core/errors.h"

namespace tokcom::cli {
namespace {

struct OptimizeArgs {
  std::string table, method, channel, regime, write_table;
  bool synthetic = false, simulate = false, interpolate = false, no_plots = false;
  double tradeoff = std::nan(""), queue_step = std::nan("");
  std::string zeta_max = "0.0025,0.005,0.01,0.02,0.05,0.1";
  int64_t slots = 10000, window = 1000, oracle_samples = 100000;
  std::string scenario, snr_trace, selection = "paper";
  std::vector<std::string> scenarios;
  std::string v_grid = "1,10,100,1000,10000,100000", mu_grid = "1,10,100";
  std::string out;
};

std::vector<double> number_list(const std::string& text, const std::string& flag) {
  std::vector<double> out;
  for (const std::string& item : csv::split(text)) {
    if (item.empty()) continue;
    try {
      out.push_back(csv::parse_number(item, flag, "value"));
    } catch (const FormatError&) {
      throw ConfigError(flag + ": '" + item + "' is not a number (expected a comma list, e.g. 0.005,0.01)");
    }
  }
  if (out.empty()) throw ConfigError(flag + ": empty list");
  return out;
}

void run_optimize(const OptimizeArgs& a) {
  if (a.table.empty() == !a.synthetic)
    throw ConfigError("optimize: give exactly one of --table FILE or --synthetic");
  const ProxyTable table = a.synthetic ? make_synthetic_table()
                                       : ProxyTable::read_csv(a.table, ProxyFilter{a.method, a.channel, a.regime});
  if (!a.write_table.empty()) table.write_csv(a.write_table);

  OptimizeRequest q;
  q.table_path = a.synthetic ? "<synthetic>" : a.table;
  q.zeta_max = number_list(a.zeta_max, "--zeta-max");
  q.search.tradeoffs = number_list(a.v_grid, "--V-grid");
  q.search.queue_steps = number_list(a.mu_grid, "--mu-grid");
  q.search.slots = a.slots;
  q.search.window = a.window;
  q.search.interpolate = a.interpolate;
  q.selection = parse_selection_rule(a.selection);
  q.oracle_samples = a.oracle_samples;
  q.plots = !a.no_plots;
  q.out_dir = a.out;
  // The global --seed (main seeds LibTorch's default generator with it): read it back, so one
  // seed drives every random stream of a run.
  q.seed = at::detail::getDefaultCPUGenerator().current_seed();
  const int sources = !a.scenario.empty() + !a.scenarios.empty() + !a.snr_trace.empty();
  if (sources > 1) throw ConfigError("optimize: give only one of --scenario, --scenarios, --snr-trace");
  if (!a.snr_trace.empty()) {
    q.scenarios = {"trace:" + a.snr_trace};
  } else if (!a.scenario.empty()) {
    q.scenarios = {a.scenario};
  } else if (!a.scenarios.empty()) {
    for (const auto& item : a.scenarios)
      for (const auto& spec : split_scenarios(item)) q.scenarios.push_back(spec);
  } else {
    q.scenarios = paper_scenarios();
  }
  const bool pair_given = !std::isnan(a.tradeoff) || !std::isnan(a.queue_step);
  if (pair_given) {
    if (std::isnan(a.tradeoff) || std::isnan(a.queue_step))
      throw ConfigError("optimize: give both --V and --mu (or neither, to search the grid)");
    q.tradeoff = a.tradeoff;
    q.queue_step = a.queue_step;
  }
  if (a.simulate || pair_given) {
    if (!pair_given) throw ConfigError("optimize --simulate needs --V and --mu");
    run_optimize_simulation(table, q);
  } else {
    run_optimize_search(table, q);
  }
}

void add_optimize(CLI::App& app) {
  auto a = std::make_shared<OptimizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "optimize",
      "Lyapunov controller on a proxy table (SPEC 8): simulate one (V, mu) or search the grid, with\n"
      "the oracle bound. Table CSV columns: method,channel,regime,snr_db,ratio,budget,zeta,accuracy");
  cmd->add_option("--table", a->table, "Proxy table CSV (any table in the schema, e.g. from your system)");
  cmd->add_option("--method", a->method, "Keep rows of this method (needed when the CSV holds several)");
  cmd->add_option("--channel", a->channel, "Keep rows of this channel");
  cmd->add_option("--regime", a->regime, "Keep rows of this training regime (robust|noiseless)");
  cmd->add_flag("--synthetic", a->synthetic, "Use the built-in synthetic 77-decision table instead of --table");
  cmd->add_option("--write-table", a->write_table, "Also write the table used (after filtering) to this CSV");
  cmd->add_flag("--simulate", a->simulate, "Proxy-table simulation of one (--V, --mu): writes DIR/trace.csv");
  cmd->add_option("--V", a->tradeoff, "Lyapunov trade-off V (with --mu: no search)");
  cmd->add_option("--mu", a->queue_step, "Queue step size mu");
  cmd->add_option("--zeta-max", a->zeta_max, "Long-term zeta bound(s), comma list")->capture_default_str();
  cmd->add_option("--T", a->slots, "Slots simulated")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--window", a->window, "Last slots averaged for accuracy, zeta, feasibility")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--scenario", a->scenario,
                  "One SNR process: gauss:M,SD | fixed:S | gauss-markov:M,SD,rho=R | "
                  "gilbert-elliott:good=G,bad=B,p_gb=P,p_bg=Q[,sd=S] | trace:FILE");
  cmd->add_option("--scenarios", a->scenarios,
                  "SNR processes, comma/space list (default: the paper's five: gauss:0,2.5 gauss:10,2.5 "
                  "gauss:20,2.5 fixed:10 fixed:20)");
  cmd->add_option("--snr-trace", a->snr_trace, "Replay this SNR trace CSV (one dB value per slot)");
  cmd->add_option("--V-grid", a->v_grid, "Search grid of V")->capture_default_str();
  cmd->add_option("--mu-grid", a->mu_grid, "Search grid of mu (tie-break order)")->capture_default_str();
  cmd->add_option("--selection", a->selection, "Rule whose pick gets a trace and the figure (SPEC 10 P18)")
      ->check(CLI::IsMember({"paper", "reference"}))->capture_default_str();
  cmd->add_flag("--interpolate", a->interpolate, "Interpolate the table linearly in SNR (SPEC 10 P19)");
  cmd->add_option("--oracle-samples", a->oracle_samples, "Monte Carlo SNR draws of the oracle with --interpolate")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--no-plots", a->no_plots, "Skip the gnuplot figures");
  cmd->add_option("-o,--out", a->out, "Output folder")->required();
  set_action(cmd, [a] { run_optimize(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(60, add_optimize);
}  // namespace tokcom::cli

// `tokcom optimize` in its table-driven form: the proxy-table simulation of one (V, μ), or the
// (V, μ) search per ζ_max and scenario with the oracle bound and the controller's gap to it
// (METHOD §8.4). Writes CSVs, a JSON sidecar and gnuplot figures into one folder.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tokcom/control/lyapunov.h"
#include "tokcom/control/proxy_table.h"
#include "tokcom/control/search.h"
#include "tokcom/core/csv.h"

namespace tokcom {

struct OptimizeRequest {
  std::string table_path;                // provenance only (the table itself is passed in)
  std::optional<double> tradeoff;        // V; with queue_step: simulate that pair only
  std::optional<double> queue_step;      // μ
  std::vector<double> zeta_max = {0.0025, 0.005, 0.01, 0.02, 0.05, 0.1};
  std::vector<std::string> scenarios;    // SNR process specs (snr_process.h)
  SearchOptions search;                  // grids, T, window, interpolate
  SelectionRule selection = SelectionRule::kPaper;  // whose pick gets a trace (both reported)
  uint64_t seed = 0;                     // scenario k draws its SNRs from seed_seq{seed, k}
  int64_t oracle_samples = 100000;       // Monte Carlo size of the oracle with interpolation
  bool plots = true;
  std::string out_dir;
  // Called for every (scenario, ζ_max) with the picked pair (search) or the given pair (simulation),
  // with the controller in its state after that pair's simulation: deployment continues from it
  // (METHOD §8.5).
  std::function<void(const std::string& scenario, double zeta_max, const LyapunovController& controller)> after_pick;
};

// Simulation of one (V, μ): DIR/trace.csv, DIR/summary.csv, DIR/summary.json, DIR/trace.{gp,svg,png}.
// Needs exactly one scenario and one ζ_max (ConfigError otherwise).
void run_optimize_simulation(const ProxyTable& table, const OptimizeRequest& request);

// Search: DIR/search.csv (every V, μ, ζ_max, scenario), DIR/summary.csv (selected pair per rule,
// oracle, gap), DIR/traces/*.csv (the pair `selection` picks), DIR/summary.json, DIR/fig8.*,
// DIR/traces/*.{gp,svg,png}.
void run_optimize_search(const ProxyTable& table, const OptimizeRequest& request);

// Header of summary.csv (both modes; rule is "given" for a simulated pair).
constexpr const char* kSummaryHeader =
    "scenario,zeta_max,rule,V,mu,accuracy,zeta,feasible,queue_final,oracle_accuracy,oracle_zeta,gap";
// Header of deploy_summary.csv (`optimize --bank`, `tokcom device`).
constexpr const char* kDeployHeader =
    "scenario,zeta_max,repeat,V,mu,accuracy,constrained_accuracy,zeta,slots,queue_final";
constexpr const char* kSearchHeader =
    "scenario,zeta_max,V,mu,accuracy,zeta,feasible,selected_paper,selected_reference";
// Their schemas (scenario and rule are text; a summary's run and oracle columns are empty when
// no pair or no oracle is feasible).
const csv::Schema& summary_schema();
const csv::Schema& search_schema();
const csv::Schema& deploy_schema();

}  // namespace tokcom

// Hyper-parameter search over (V, μ) on the proxy simulation (METHOD §8.4): for every pair simulate
// T slots on the same SNR sequence, average the last `window` slots, keep the feasible runs
// (mean ζ < ζ_max strictly) and select one by the paper's rule or the reference's (METHOD §10 P18).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tokcom/control/proxy_table.h"
#include "tokcom/control/simulate.h"

namespace tokcom {

struct SearchOptions {
  std::vector<double> tradeoffs = {1, 10, 100, 1e3, 1e4, 1e5};  // V grid
  std::vector<double> queue_steps = {1, 10, 100};                // μ grid, in tie-break order
  int64_t slots = 10000;                                         // T
  int64_t window = 1000;                                         // last slots averaged
  bool interpolate = false;                                      // METHOD §10 P19
};

// paper: the feasible pair with the highest mean accuracy (ties → first in grid order, V outer).
// reference: the feasible pair with the largest V, first μ in grid order among those.
enum class SelectionRule { kPaper, kReference };
SelectionRule parse_selection_rule(const std::string& name);  // "paper" | "reference"
const char* to_string(SelectionRule rule);

struct SearchRow {
  double tradeoff = 0.0, queue_step = 0.0, zeta_max = 0.0;
  SimulationSummary summary;
  bool selected_paper = false, selected_reference = false;
};

// One row per (V, μ), V outer, every run from Z = 0 on `snr_db` (common random numbers).
std::vector<SearchRow> grid_search(const ProxyTable& table, const std::vector<double>& snr_db,
                                   double zeta_max, const SearchOptions& options);

// Index of the row the rule selects, or nullopt when no pair is feasible.
std::optional<size_t> select(const std::vector<SearchRow>& rows, SelectionRule rule);

}  // namespace tokcom

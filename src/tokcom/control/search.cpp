#include "tokcom/control/search.h"

#include "tokcom/core/errors.h"

namespace tokcom {

SelectionRule parse_selection_rule(const std::string& name) {
  if (name == "paper") return SelectionRule::kPaper;
  if (name == "reference") return SelectionRule::kReference;
  throw ConfigError("selection rule '" + name + "': expected paper or reference (METHOD §10 P18)");
}

const char* to_string(SelectionRule rule) { return rule == SelectionRule::kPaper ? "paper" : "reference"; }

std::vector<SearchRow> grid_search(const ProxyTable& table, const std::vector<double>& snr_db,
                                   double zeta_max, const SearchOptions& options) {
  if (options.tradeoffs.empty() || options.queue_steps.empty())
    throw ConfigError("grid_search: the V and mu grids must not be empty");
  if (static_cast<int64_t>(snr_db.size()) != options.slots)
    throw ConfigError("grid_search: the SNR sequence length differs from T");
  std::vector<SearchRow> rows;
  for (double v : options.tradeoffs) {
    for (double mu : options.queue_steps) {
      LyapunovController controller(table, LyapunovOptions{v, mu, zeta_max, options.interpolate});
      SearchRow row{v, mu, zeta_max, simulate(controller, snr_db, options.window, /*keep_trace=*/false).summary};
      rows.push_back(row);
    }
  }
  if (auto i = select(rows, SelectionRule::kPaper)) rows[*i].selected_paper = true;
  if (auto i = select(rows, SelectionRule::kReference)) rows[*i].selected_reference = true;
  return rows;
}

std::optional<size_t> select(const std::vector<SearchRow>& rows, SelectionRule rule) {
  std::optional<size_t> best;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].summary.feasible) continue;
    if (!best) {
      best = i;
      continue;
    }
    const SearchRow& b = rows[*best];
    const bool better = rule == SelectionRule::kPaper ? rows[i].summary.accuracy_mean > b.summary.accuracy_mean
                                                      : rows[i].tradeoff > b.tradeoff;
    if (better) best = i;  // strict: ties keep the earlier row (grid order)
  }
  return best;
}

}  // namespace tokcom

#include "tokcom/control/synthetic_table.h"

#include <algorithm>
#include <cmath>

namespace tokcom {

namespace {
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

ProxyTable make_synthetic_table(const SyntheticTableOptions& o) {
  constexpr double kImageValues = 3.0 * 224.0 * 224.0;  // C·H·W = 150 528 (METHOD §5.5)
  std::vector<ProxyRow> rows;
  for (double snr : o.snr_grid) {
    for (double r : o.ratios) {
      const double symbols_per_token = std::max(std::floor(o.dim * r), 1.0);  // d_r
      for (double a : o.budgets) {
        const double quality = sigmoid(3.0 + 1.2 * std::log(a)) * sigmoid(2.5 + 0.8 * std::log(r)) *
                               sigmoid((snr - o.snr_mid) / 3.0);
        const double zeta = (a * o.patches + 2.0) * symbols_per_token / kImageValues;
        rows.push_back(ProxyRow{o.method, o.channel, o.regime, snr, r, a, zeta,
                                o.floor + (o.ceiling - o.floor) * quality});
      }
    }
  }
  return ProxyTable::from_rows(rows, "synthetic table");
}

}  // namespace tokcom

// Proxy tables Â(φ, SNR) and ζ(φ, SNR) over a decision set (METHOD §8.2), read from / written to
// the tidy CSV `method,channel,regime,snr_db,ratio,budget,zeta,accuracy` (accuracy a fraction).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "tokcom/core/csv.h"
#include "tokcom/split/decision.h"

namespace tokcom {

struct ProxyRow {
  std::string method, channel, regime;
  double snr_db = 0.0, ratio = 0.0, budget = 1.0, zeta = 0.0, accuracy = 0.0;
};

// Which rows of a CSV to keep; empty = any. A table must end up with one (method, channel,
// regime): otherwise read_csv names the choices and asks for a filter.
struct ProxyFilter {
  std::string method, channel, regime;
};

// The grid point(s) an observed SNR maps to: nearest (weight 0 on `upper`) or linear (METHOD §10 P19).
struct SnrLookup {
  int lower = 0, upper = 0;
  double weight = 0.0;  // value = (1 − weight)·row[lower] + weight·row[upper]
};

class ProxyTable {
 public:
  static constexpr const char* kHeader = "method,channel,regime,snr_db,ratio,budget,zeta,accuracy";

  ProxyTable() = default;
  // Builds the dense table; every (decision, snr) pair must appear exactly once (FormatError
  // naming `origin` and the missing/duplicate entry otherwise). Accuracy must lie in [0, 1].
  static ProxyTable from_rows(const std::vector<ProxyRow>& rows, const std::string& origin = "<rows>");
  static ProxyTable read_csv(const std::string& path, const ProxyFilter& filter = {});
  // Atomic; header exactly kHeader; rows SNR-major in grid order, decisions in table order.
  void write_csv(const std::string& path) const;
  static const csv::Schema& schema();  // the written file: kHeader, method/channel/regime text
  std::vector<ProxyRow> rows() const;

  // Decisions in table order (first occurrence of (ratio, budget)); SNR grid sorted ascending.
  const std::vector<Decision>& decisions() const { return decisions_; }
  const std::vector<double>& snr_grid() const { return snr_grid_; }
  const std::vector<double>& ratios() const { return ratios_; }
  int decision_count() const { return static_cast<int>(decisions_.size()); }
  int snr_count() const { return static_cast<int>(snr_grid_.size()); }
  const std::string& method() const { return method_; }
  const std::string& channel() const { return channel_; }
  const std::string& regime() const { return regime_; }

  // Entry of decision d at grid index s.
  double accuracy(int d, int s) const { return accuracy_[s * decision_count() + d]; }
  double zeta(int d, int s) const { return zeta_[s * decision_count() + d]; }
  // Contiguous rows (decision_count values) at grid index s: the controller's hot loop.
  const double* accuracy_row(int s) const { return accuracy_.data() + s * decision_count(); }
  const double* zeta_row(int s) const { return zeta_.data() + s * decision_count(); }

  // Nearest grid index; an SNR exactly between two points goes to the lower (METHOD §8.2).
  int nearest(double snr_db) const;
  // Nearest (interpolate = false) or linear interpolation between the neighbours, clamped to the
  // grid's ends (interpolate = true, METHOD §10 P19).
  SnrLookup lookup(double snr_db, bool interpolate) const;

 private:
  std::string method_, channel_, regime_;
  std::vector<Decision> decisions_;
  std::vector<double> ratios_, snr_grid_, accuracy_, zeta_;
};

}  // namespace tokcom

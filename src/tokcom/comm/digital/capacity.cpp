#include "tokcom/comm/digital/capacity.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "tokcom/core/errors.h"

namespace tokcom::digital {
namespace {

void check_link_args(const char* caller, double zeta, int64_t input_values, double snr_db) {
  if (std::isnan(zeta) || zeta < 0.0) {
    throw ConfigError(
        fmt::format("{}: zeta (compression ratio) is {}, expected >= 0", caller, zeta));
  }
  if (input_values < 0) {
    throw ConfigError(
        fmt::format("{}: input_values (n = 3*H*W) is {}, expected >= 0", caller, input_values));
  }
  if (std::isnan(snr_db)) throw ConfigError(fmt::format("{}: snr_db is NaN", caller));
}

}  // namespace

double capacity_bits(double zeta, int64_t input_values, double snr_db) {
  check_link_args("capacity_bits", zeta, input_values, snr_db);
  if (zeta == 0.0 || input_values == 0 || snr_db == -std::numeric_limits<double>::infinity()) {
    return 0.0;
  }
  // log2(1 + x) via log1p keeps precision at very low SNR (−50 dB: x = 1e-5).
  const double snr_lin = std::pow(10.0, snr_db / 10.0);
  return zeta * static_cast<double>(input_values) * std::log1p(snr_lin) / std::log(2.0);
}

const std::vector<McsEntry>& nr_cqi_table() {
  // Efficiencies and code rates: TS 38.214 Table 5.2.2.1-2 (= LTE TS 36.213 Table 7.2.3-1).
  // Thresholds: the AWGN 10 % BLER SNRs customary for this table in link-adaptation code
  // (Vienna LTE link-level simulator curves); docs/digital.md says how approximate they are.
  static const std::vector<McsEntry> table = {
      {1, "QPSK", 78, 0.1523, -6.7},    {2, "QPSK", 120, 0.2344, -4.7},
      {3, "QPSK", 193, 0.3770, -2.3},   {4, "QPSK", 308, 0.6016, 0.2},
      {5, "QPSK", 449, 0.8770, 2.4},    {6, "QPSK", 602, 1.1758, 4.3},
      {7, "16QAM", 378, 1.4766, 5.9},   {8, "16QAM", 490, 1.9141, 8.1},
      {9, "16QAM", 616, 2.4063, 10.3},  {10, "64QAM", 466, 2.7305, 11.7},
      {11, "64QAM", 567, 3.3223, 14.1}, {12, "64QAM", 666, 3.9023, 16.3},
      {13, "64QAM", 772, 4.5234, 18.7}, {14, "64QAM", 873, 5.1152, 21.0},
      {15, "64QAM", 948, 5.5547, 22.7},
  };
  return table;
}

double practical_bits(double zeta, int64_t input_values, double snr_db) {
  check_link_args("practical_bits", zeta, input_values, snr_db);
  double efficiency = 0.0;
  for (const McsEntry& e : nr_cqi_table()) {
    if (e.min_snr_db <= snr_db) efficiency = e.spectral_efficiency;  // table is sorted
  }
  return zeta * static_cast<double>(input_values) * efficiency;
}

CapacityModel parse_capacity_model(const std::string& name) {
  if (name == "shannon") return CapacityModel::kShannon;
  if (name == "practical") return CapacityModel::kPractical;
  throw ConfigError(
      fmt::format("capacity model '{}' is unknown, expected one of: shannon, practical", name));
}

std::string capacity_model_name(CapacityModel model) {
  return model == CapacityModel::kShannon ? "shannon" : "practical";
}

double link_bits(CapacityModel model, double zeta, int64_t input_values, double snr_db) {
  return model == CapacityModel::kShannon ? capacity_bits(zeta, input_values, snr_db)
                                          : practical_bits(zeta, input_values, snr_db);
}

int64_t budget_bits_of(double bits) {
  if (!(bits > 0.0)) return 0;  // also NaN
  if (bits >= 9.0e18) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(std::floor(bits));
}

}  // namespace tokcom::digital

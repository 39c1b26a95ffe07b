// comm/digital/capacity.h — how many bits a digital link delivers per image (METHOD §6.3).
// Shannon: B = ζ·n·log₂(1 + SNR), k = ζ·n channel uses at capacity. "Practical": the same channel
// uses at the spectral efficiency of the best 5G NR CQI whose 10 % BLER threshold the SNR meets.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tokcom::digital {

// ζ·n·log₂(1 + 10^(snr_db/10)) bits; n = 3·H·W input values (METHOD §6.3). SNR −∞ or ζ = 0 → 0.
// Never negative: ζ < 0, n < 0 or a NaN argument is a bad configuration → ConfigError.
double capacity_bits(double zeta, int64_t input_values, double snr_db);

// One row of 3GPP TS 38.214 Table 5.2.2.1-2 (4-bit CQI table 1) with the SNR at which that CQI
// reaches 10 % BLER in AWGN (see docs/digital.md for the source of the thresholds).
struct McsEntry {
  int cqi;
  std::string modulation;  // "QPSK", "16QAM", "64QAM"
  double code_rate_x1024;
  double spectral_efficiency;  // information bits per channel use
  double min_snr_db;           // 10 % BLER threshold, AWGN
};
// CQI 1…15 in increasing order of efficiency (0.1523 … 5.5547) and threshold.
const std::vector<McsEntry>& nr_cqi_table();

// ζ·n·(efficiency of the best CQI whose threshold ≤ snr_db); 0 below CQI 1's threshold (the
// 10 % BLER cliff: a block sent above its MCS's reach is lost). Same argument checks as above.
double practical_bits(double zeta, int64_t input_values, double snr_db);

// Which of the two link models a sweep uses: "shannon" | "practical".
enum class CapacityModel { kShannon, kPractical };
CapacityModel parse_capacity_model(const std::string& name);  // unknown → ConfigError
std::string capacity_model_name(CapacityModel model);
double link_bits(CapacityModel model, double zeta, int64_t input_values, double snr_db);

// Whole bits of a capacity: ⌊bits⌋ (≥ 0, saturating). Codecs compare encodings against this integer
// (docs/digital.md: the one-bit edge against the reference's real-valued budget).
int64_t budget_bits_of(double bits);

}  // namespace tokcom::digital

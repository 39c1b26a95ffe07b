#include "tokcom/core/stats.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tokcom/core/errors.h"

namespace tokcom {

Interval wilson_interval(double p, int64_t n, double z) {
  if (!(p >= 0.0 && p <= 1.0)) throw UsageError(fmt::format("wilson_interval: proportion {} is outside [0, 1]", p));
  if (n <= 0) return {0.0, 1.0};
  const double nn = static_cast<double>(n), z2 = z * z;
  const double denom = 1.0 + z2 / nn;
  const double centre = (p + z2 / (2.0 * nn)) / denom;
  const double half = z * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn)) / denom;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

double student_t95(int64_t df) {
  if (df < 1) throw UsageError(fmt::format("student_t95: {} degrees of freedom, expected at least 1", df));
  static const double table[30] = {12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
                                   2.262157,  2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
                                   2.109816,  2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
                                   2.059539,  2.055529, 2.051831, 2.048407, 2.045230, 2.042272};
  if (df <= 30) return table[df - 1];
  const double z = 1.959963984540054, d = static_cast<double>(df), z3 = z * z * z, z5 = z3 * z * z;
  return z + (z3 + z) / (4 * d) + (5 * z5 + 16 * z3 + 3 * z) / (96 * d * d);
}

Interval mean_interval(const std::vector<double>& xs) {
  const size_t n = xs.size();
  if (n < 2) throw UsageError(fmt::format("mean_interval: {} value(s), expected at least 2 repeats", n));
  double mean = 0;
  for (double x : xs) mean += x / static_cast<double>(n);
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  const double half = student_t95(static_cast<int64_t>(n) - 1) * std::sqrt(ss / static_cast<double>(n - 1)) /
                      std::sqrt(static_cast<double>(n));
  return {mean - half, mean + half};
}

}  // namespace tokcom

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

}  // namespace tokcom

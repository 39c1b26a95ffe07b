// core/stats.h — uncertainty of the numbers the study reports.
#pragma once
#include <cstdint>

namespace tokcom {

struct Interval {
  double low = 0, high = 0;
};

// Wilson score interval of a proportion p measured on n trials (an accuracy on n images) at the
// normal quantile z (1.96: 95 %). Stays inside [0, 1] and is not degenerate at p = 0 or 1, unlike
// the normal approximation. n ≤ 0 gives [0, 1]; UsageError for p outside [0, 1].
Interval wilson_interval(double p, int64_t n, double z = 1.959963984540054);

}  // namespace tokcom

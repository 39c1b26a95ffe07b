// core/stats.h — uncertainty of the numbers the study reports.
#pragma once
#include <cstdint>
#include <vector>

namespace tokcom {

struct Interval {
  double low = 0, high = 0;
};

// Wilson score interval of a proportion p measured on n trials (an accuracy on n images) at the
// normal quantile z (1.96: 95 %). Stays inside [0, 1] and is not degenerate at p = 0 or 1, unlike
// the normal approximation. n ≤ 0 gives [0, 1]; UsageError for p outside [0, 1].
Interval wilson_interval(double p, int64_t n, double z = 1.959963984540054);

// Student's t quantile t_{0.975, df}: the 95 % two-sided critical value (table to 30 degrees of
// freedom, a Cornish-Fisher expansion beyond, within 1e-4). UsageError for df < 1.
double student_t95(int64_t df);

// 95 % interval of the mean of independent repeats (mean ± t_{0.975, n-1}·s/√n, s the sample
// standard deviation): Table II's interval over a deployment's repeats. UsageError for n < 2.
Interval mean_interval(const std::vector<double>& xs);

}  // namespace tokcom

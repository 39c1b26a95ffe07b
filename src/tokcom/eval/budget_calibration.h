// Budget calibration (`tokcom calibrate`, docs/model.md "Budget calibration"): measure the hard kept
// fraction of an adaptive ViT against the budget fed to its budget token, and turn the curve into
// the model.calibration_kept / model.calibration_budget lists that make a requested α keep α.
#pragma once
#include <utility>
#include <vector>

#include <torch/types.h>

#include "tokcom/model/vit.h"

namespace tokcom {

struct KeptPoint {
  double budget = 0;  // fed to the budget token (no calibration applied)
  double kept = 0;    // mean hard kept fraction of patch tokens after the last adaptive block
};

// Runs the device side up to the last adaptive block, hard mode, eval, for every budget in
// `budgets` (each in (0, 1)) over `images` (N, C, H, W) in batches of `batch_size`. The model's own
// calibration is bypassed (restored on return). UsageError for a static model or a bad budget.
std::vector<KeptPoint> measure_kept_curve(Vit& model, const torch::Tensor& images, const std::vector<double>& budgets,
                                          int64_t batch_size = 256);

// The calibration lists (kept, budget) from a measured curve: points sorted by budget, kept made
// non-decreasing (running maximum: selection is monotone in the budget up to sampling noise), then
// only points whose kept fraction rises strictly and lies in (0, 1) — so each kept value maps to the
// smallest budget that reaches it. DataError if fewer than two points remain.
std::pair<std::vector<double>, std::vector<double>> calibration_from_curve(std::vector<KeptPoint> curve);

}  // namespace tokcom

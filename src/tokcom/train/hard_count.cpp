#include "tokcom/train/hard_count.h"

#include <ATen/ATen.h>

#include "tokcom/core/check.h"
#include "tokcom/model/budget_loss.h"

namespace tokcom {

at::Tensor hard_budget_penalty(const at::Tensor& patch_mask, const at::Tensor& budget, double margin,
                               double cutoff, double temperature) {
  check_shape("hard_budget_penalty", "budget", budget, {patch_mask.size(0)});
  check_shape("hard_budget_penalty", "patch_mask", patch_mask, {-1, -1});
  const at::Tensor kept = hard_kept_fraction(patch_mask, temperature, cutoff);
  return at::relu((kept - budget.to(kept.scalar_type())).abs() - margin);
}

}  // namespace tokcom

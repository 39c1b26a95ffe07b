#include "tokcom/train/hard_count.h"

#include <ATen/ATen.h>

#include "tokcom/core/check.h"

namespace tokcom {

at::Tensor straight_through_kept_fraction(const at::Tensor& patch_mask, double cutoff, double temperature) {
  check_shape("straight_through_kept_fraction", "patch_mask", patch_mask, {-1, -1});
  const at::Tensor hard = (patch_mask > cutoff).to(patch_mask.scalar_type()).mean(1);
  const at::Tensor soft = (patch_mask / (patch_mask + temperature)).mean(1);
  return hard + (soft - soft.detach());
}

at::Tensor hard_budget_penalty(const at::Tensor& patch_mask, const at::Tensor& budget, double margin,
                               double cutoff, double temperature) {
  check_shape("hard_budget_penalty", "budget", budget, {patch_mask.size(0)});
  const at::Tensor kept = straight_through_kept_fraction(patch_mask, cutoff, temperature);
  return at::relu((kept - budget.to(kept.scalar_type())).abs() - margin);
}

}  // namespace tokcom

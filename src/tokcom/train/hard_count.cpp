#include "tokcom/train/hard_count.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/model/vit.h"

namespace tokcom {

HardSurrogate parse_hard_surrogate(const std::string& name) {
  if (name == "margin") return HardSurrogate::kMargin;
  if (name == "mask") return HardSurrogate::kMask;
  throw ConfigError("train.hard_surrogate: '" + name + "' unknown, expected margin|mask");
}

at::Tensor hard_kept_fraction_margin(const at::Tensor& patch_mask, const at::Tensor& patch_margin,
                                     double temperature, double cutoff) {
  check_shape("hard_kept_fraction_margin", "patch_mask", patch_mask, {-1, -1});
  check_shape("hard_kept_fraction_margin", "patch_margin", patch_margin, {patch_mask.size(0), patch_mask.size(1)});
  if (!(temperature > 0.0)) {
    throw UsageError(fmt::format("hard_kept_fraction_margin: temperature must be > 0, got {}", temperature));
  }
  const at::Tensor surrogate = at::sigmoid(patch_margin / temperature).mean(1);
  const at::Tensor hard = (patch_mask > cutoff).to(surrogate.scalar_type()).mean(1);
  return hard + (surrogate - surrogate.detach());
}

std::vector<at::Tensor> cumulative_margins(const std::vector<BlockStats>& stats) {
  std::vector<at::Tensor> out;
  for (const BlockStats& s : stats) {
    if (!s.patch_margin.defined()) {
      throw UsageError(fmt::format("cumulative_margins: block {} has no patch_margin (hard path or "
                                   "keep-fraction hook; train with the soft path)", s.block));
    }
    out.push_back(out.empty() ? s.patch_margin : at::minimum(out.back(), s.patch_margin));
  }
  return out;
}

at::Tensor hard_budget_penalty(const at::Tensor& patch_mask, const at::Tensor& patch_margin,
                               const at::Tensor& budget, double margin, double cutoff, double temperature,
                               HardSurrogate surrogate) {
  check_shape("hard_budget_penalty", "budget", budget, {patch_mask.size(0)});
  check_shape("hard_budget_penalty", "patch_mask", patch_mask, {-1, -1});
  const at::Tensor kept = surrogate == HardSurrogate::kMargin
                              ? hard_kept_fraction_margin(patch_mask, patch_margin, temperature, cutoff)
                              : hard_kept_fraction(patch_mask, temperature, cutoff);
  return at::relu((kept - budget.to(kept.scalar_type())).abs() - margin);
}

double lambda_hard_at(double lambda_hard, int64_t step, int64_t warmup_steps) {
  if (warmup_steps <= 0 || step >= warmup_steps) return lambda_hard;
  return lambda_hard * static_cast<double>(std::max<int64_t>(step, 0)) / static_cast<double>(warmup_steps);
}

}  // namespace tokcom

// Budget losses (METHOD §4) and α sampling (METHOD §4, 10 P6).
#include "tokcom/model/budget_loss.h"

#include <torch/torch.h>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"

namespace tokcom {

InnerLoss parse_inner_loss(const std::string& name) {
  if (name == "margin") return InnerLoss::kMargin;
  if (name == "l1") return InnerLoss::kL1;
  if (name == "ml1") return InnerLoss::kMl1;
  if (name == "bml1") return InnerLoss::kBml1;
  throw ConfigError("inner budget loss '" + name + "' unknown, expected margin|l1|ml1|bml1");
}

std::string to_string(InnerLoss loss) {
  switch (loss) {
    case InnerLoss::kMargin: return "margin";
    case InnerLoss::kL1: return "l1";
    case InnerLoss::kMl1: return "ml1";
    case InnerLoss::kBml1: return "bml1";
  }
  return "?";
}

torch::Tensor mean_patch_mask(const torch::Tensor& patch_mask) {
  check_shape("mean_patch_mask", "patch_mask", patch_mask, {-1, -1});
  return patch_mask.mean(1);
}

torch::Tensor budget_penalty(const torch::Tensor& mean_mask, const torch::Tensor& budget, double margin) {
  check_shape("budget_penalty", "mean_mask", mean_mask, {-1});
  check_shape("budget_penalty", "budget", budget, {mean_mask.size(0)});
  return torch::relu((mean_mask - budget.to(mean_mask.dtype())).abs() - margin);
}

torch::Tensor hard_kept_fraction(const torch::Tensor& patch_mask, double temperature, double threshold) {
  check_shape("hard_kept_fraction", "patch_mask", patch_mask, {-1, -1});
  if (!(temperature > 0.0)) {
    throw UsageError(fmt::format("hard_kept_fraction: temperature must be > 0, got {}", temperature));
  }
  torch::Tensor surrogate = (patch_mask / (patch_mask + temperature)).mean(1);
  torch::Tensor hard = (patch_mask > threshold).to(patch_mask.dtype()).mean(1);
  return hard + (surrogate - surrogate.detach());
}

BudgetLoss budget_loss(const std::vector<BlockStats>& stats, const torch::Tensor& budget,
                       InnerLoss inner, double margin) {
  if (stats.empty()) {
    throw UsageError("budget_loss: no adaptive block statistics (model ran without a budget token?)");
  }
  const torch::Tensor alpha = budget.to(stats.back().patch_mask.dtype());
  BudgetLoss loss;
  loss.out = budget_penalty(mean_patch_mask(stats.back().patch_mask), alpha, margin).mean();
  const size_t inner_blocks = stats.size() - 1;
  if (inner_blocks == 0) {
    loss.inner = torch::zeros({}, loss.out.options());
    return loss;
  }
  std::vector<torch::Tensor> per_block;  // each (B)
  for (size_t l = 0; l < inner_blocks; ++l) {
    torch::Tensor mean = mean_patch_mask(stats[l].patch_mask);
    torch::Tensor term;
    switch (inner) {
      case InnerLoss::kMargin: term = budget_penalty(mean, alpha, margin); break;
      case InnerLoss::kL1: term = mean; break;
      case InnerLoss::kMl1: {
        torch::Tensor diff = (mean - alpha).detach();
        term = torch::sign(diff) * torch::relu(diff.abs() - margin) * mean;
        break;
      }
      case InnerLoss::kBml1:
        term = ((mean - alpha).abs() > margin).to(mean.dtype()).detach() * mean;
        break;
    }
    per_block.push_back(term);
  }
  loss.inner = torch::stack(per_block, 1).mean(1).mean();
  return loss;
}

BudgetSampling parse_budget_sampling(const std::string& name) {
  if (name == "stratified") return BudgetSampling::kStratified;
  if (name == "uniform") return BudgetSampling::kUniform;
  throw ConfigError("budget sampling '" + name + "' unknown, expected stratified|uniform");
}

torch::Tensor sample_budgets(int64_t batch, at::Generator& generator, BudgetSampling sampling,
                             double lo, double hi) {
  if (batch <= 0 || !(0.0 < lo && lo <= hi && hi <= 1.0)) {
    throw UsageError(fmt::format("sample_budgets: need batch > 0 and 0 < lo <= hi <= 1, got batch {}, "
                                 "range [{}, {}]", batch, lo, hi));
  }
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(generator.device());
  if (sampling == BudgetSampling::kUniform) {
    return torch::rand({batch}, generator, opts) * (hi - lo) + lo;
  }
  const double sigma = (hi - lo) / static_cast<double>(batch);
  torch::Tensor mean = torch::linspace(lo, hi, batch, opts);
  return (mean + sigma * torch::randn({batch}, generator, opts)).clamp(lo, hi);
}

}  // namespace tokcom

// Budget losses for adaptive training (METHOD §4) and the per-sample budget sampling (METHOD §4, P6).
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "tokcom/model/vit.h"

namespace tokcom {

// Inner-loss variants over the adaptive blocks before the last (METHOD §4).
enum class InnerLoss { kMargin, kL1, kMl1, kBml1 };
InnerLoss parse_inner_loss(const std::string& name);  // margin | l1 | ml1 | bml1 (ConfigError)
std::string to_string(InnerLoss loss);

// m̄_b: mean of the (B, N) cumulative patch mask per sample → (B).
torch::Tensor mean_patch_mask(const torch::Tensor& patch_mask);
// METHOD §4, paper Eq. 7: P_b = max(0, |m̄_b − α_b| − ε) → (B).
torch::Tensor budget_penalty(const torch::Tensor& mean_mask, const torch::Tensor& budget, double margin);

// METHOD §10 P26 helper: straight-through kept fraction per sample (B). Forward value = fraction of
// patch_mask entries > threshold (what hard dropping keeps); gradient = that of the surrogate
// mean_i m_i / (m_i + temperature), which pushes small masks to exactly 0.
torch::Tensor hard_kept_fraction(const torch::Tensor& patch_mask, double temperature, double threshold = 0.0);

struct BudgetLoss {
  torch::Tensor out;    // L_out = mean_b P^{last}_b (scalar)
  torch::Tensor inner;  // L_in, mean over blocks before the last, then batch (0 if none)
};
// stats: one BlockStats per adaptive block (VitOutput::stats), budget (B) = α per sample.
//   margin: mean_b mean_l P^l_b            l1:   mean_b mean_l m̄^l_b
//   ml1:    mean_b mean_l sg(v^l_b)·m̄^l_b, v = sign(m̄ − α)·max(0, |m̄ − α| − ε) (signed violation)
//   bml1:   mean_b mean_l 1[|m̄^l_b − α_b| > ε]·m̄^l_b
BudgetLoss budget_loss(const std::vector<BlockStats>& stats, const torch::Tensor& budget,
                       InnerLoss inner = InnerLoss::kMargin, double margin = 0.02);

// METHOD §4 / P6 α per sample, fresh every batch, on the generator's device (CPU by default).
enum class BudgetSampling { kStratified, kUniform };
BudgetSampling parse_budget_sampling(const std::string& name);  // stratified | uniform
// Stratified (reference): α_b = clip(N(linspace(lo, hi, B)[b], σ²), lo, hi), σ = (hi − lo)/B.
// Uniform (paper): α_b ~ U(lo, hi) i.i.d.
torch::Tensor sample_budgets(int64_t batch, at::Generator& generator,
                             BudgetSampling sampling = BudgetSampling::kStratified,
                             double lo = 0.001, double hi = 0.999);

}  // namespace tokcom

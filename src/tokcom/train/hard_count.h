// The budget term that makes hard dropping track α (METHOD §10 P26).
//
// The reference's budget loss penalises the *mean soft mask*, which a model can satisfy by
// shrinking every mask value while almost none reaches the 1e-3 eval cutoff: nothing is dropped at
// inference. We add a penalty on the *hard* kept fraction, the quantity hard dropping actually
// uses, made differentiable with a straight-through estimator:
//   forward  K = mean_i 1[m_i > cutoff]                   (exact kept fraction of patch tokens)
//   backward, surrogate `margin` (default): dK/dz_i = d/dz_i mean_i σ(z_i / T), z_i the cumulative
//            pre-ReLU margin min over blocks so far of g_i − τ. A dropped token (z_i < 0, m_i = 0)
//            still gets a gradient, so an under-budget image brings back its best-ranked dropped
//            tokens and an over-budget image drops its worst-ranked kept ones: the per-token
//            ranking of the gate does the work, not one threshold per image.
//   backward, surrogate `mask` (the first version): dK/dm_i = d/dm_i mean_i m_i / (m_i + T). Dropped
//            tokens get no gradient (s = ReLU(g − τ)), only τ can bring them back — measured to
//            end nearly all-or-nothing per image at low α (docs/model.md).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace tokcom {

struct BlockStats;

enum class HardSurrogate { kMargin, kMask };
HardSurrogate parse_hard_surrogate(const std::string& name);  // margin | mask (ConfigError)

// patch_mask (B, N) cumulative soft mask, patch_margin (B, N) cumulative pre-ReLU margin →
// (B) straight-through kept fraction: forward = fraction of masks > cutoff, gradient = that of
// mean_i σ(patch_margin_i / temperature).
at::Tensor hard_kept_fraction_margin(const at::Tensor& patch_mask, const at::Tensor& patch_margin,
                                     double temperature, double cutoff);

// Running minimum of BlockStats::patch_margin over the adaptive blocks (a patch survives block l
// iff all its margins so far are > 0): one (B, N) tensor per block. Throws UsageError if a block
// has no margin (hard path or keep-fraction hook).
std::vector<at::Tensor> cumulative_margins(const std::vector<BlockStats>& stats);

// (B) penalty max(0, |K − α| − ε) (METHOD §4, Eq. 7) on the straight-through hard kept fraction K of
// one adaptive block. patch_margin (cumulative, see above) is used by the margin surrogate and
// ignored by the mask surrogate (`hard_kept_fraction` of model/budget_loss.h).
at::Tensor hard_budget_penalty(const at::Tensor& patch_mask, const at::Tensor& patch_margin,
                               const at::Tensor& budget, double margin, double cutoff, double temperature,
                               HardSurrogate surrogate = HardSurrogate::kMargin);

// Linear warm-up of λ_hard: 0 at step 0, full weight from `warmup_steps` on (0 = no warm-up).
double lambda_hard_at(double lambda_hard, int64_t step, int64_t warmup_steps);

}  // namespace tokcom

// The budget term that makes hard dropping track α (SPEC 10 P26).
//
// The reference's budget loss penalises the *mean soft mask*, which a model can satisfy by
// shrinking every mask value while almost none reaches the 1e-3 eval cutoff: nothing is dropped at
// inference. We add a penalty on the *hard* kept fraction, the quantity hard dropping actually
// uses, made differentiable with a straight-through estimator:
//   forward  K = mean_i 1[m_i > cutoff]                   (exact kept fraction of patch tokens)
//   backward dK/dm_i = d/dm_i mean_i m_i / (m_i + T)      (smooth surrogate, steepest near 0)
// so an over-budget image pushes its smallest surviving masks to exactly 0 (s = ReLU(g − τ) can
// reach 0 through the threshold τ and the gate g), and an under-budget image lowers τ.
#pragma once
#include <ATen/core/Tensor.h>

namespace tokcom {

// patch_mask (B, N) cumulative soft mask of patch tokens (0 = dropped), budget (B) →
// (B) penalty max(0, |kept − α| − ε) (SPEC 4, Eq. 7, applied to the straight-through hard count
// `hard_kept_fraction` of model/budget_loss.h).
at::Tensor hard_budget_penalty(const at::Tensor& patch_mask, const at::Tensor& budget, double margin,
                               double cutoff, double temperature);

}  // namespace tokcom

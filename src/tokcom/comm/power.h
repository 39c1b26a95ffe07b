// comm/power.h — power normalisation (transmitter) and signal-power measurement (channel).
#pragma once
#include <torch/arg.h>
#include <torch/types.h>

#include <cstdint>

namespace tokcom {

// How a channel measures the signal power P_sig that sets the noise variance σ² = P_sig / snr_lin.
struct PowerOptions {
  // METHOD §10 P14: false = ‖z‖₂²/k (true average power); true = the reference's un-squared ‖z‖₂/k.
  // Identical for unit-norm tokens (every ViT / flattened-MNv3 model); for the CNN JSCC the
  // reference makes the true SNR 5·log₁₀(s) dB higher than nominal.
  TORCH_ARG(bool, reference_power) = false;
  // Axes P_sig is measured over: 0 = auto (last axis for (B, T, d_r) tokens, last two for
  // (B, C, s, s) maps, METHOD §6.2), 1 = last axis only (the reference's robust r = 0.5 CNN config).
  TORCH_ARG(int64_t, axes) = 0;
};

// Per-token unit-norm complex symbols z = u/‖u‖₂ with u = re + j·im, norm over the last axis
// (METHOD §5.2; per row of the s×s map for the CNN, METHOD §6.2 / 10 P13). re, im: same shape, float.
// Out: complex64, same shape. Differentiable; ‖u‖₂² is clamped at 1e-24 (all-zero rows → 0).
torch::Tensor normalize_unit_norm(const torch::Tensor& re, const torch::Tensor& im);

// Measured signal power per token (or per map) of complex symbols: (B, T, 1) for (B, T, d_r),
// (B, C, 1, 1) (auto) or (B, C, s, 1) (axes = 1) for maps; real float. Differentiable (the
// reference does not detach it either).
torch::Tensor signal_power(const torch::Tensor& symbols, const PowerOptions& options);

}  // namespace tokcom

#include "tokcom/comm/power.h"

#include <fmt/format.h>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"

namespace tokcom {

torch::Tensor normalize_unit_norm(const torch::Tensor& re, const torch::Tensor& im) {
  if (re.sizes() != im.sizes()) {
    throw ShapeError(fmt::format("normalize_unit_norm: re has shape {}, im has {}",
                                 shape_string(re.sizes().vec()), shape_string(im.sizes().vec())));
  }
  // ‖u‖₂² = Σ_k (a_k² + b_k²) (METHOD §5.2), computed in the real domain for cheap autograd.
  const auto norm = (re.square() + im.square()).sum(-1, /*keepdim=*/true).clamp_min(1e-24).sqrt();
  return torch::view_as_complex(torch::stack({re / norm, im / norm}, -1).to(torch::kFloat));
}

torch::Tensor signal_power(const torch::Tensor& symbols, const PowerOptions& options) {
  const auto rank = symbols.dim();
  std::vector<int64_t> dims;
  if (rank == 4 && options.axes() != 1) {
    dims = {2, 3};  // METHOD §6.2: power over the s×s map
  } else if (rank == 3 || rank == 4) {
    dims = {rank - 1};
  } else {
    throw ShapeError(fmt::format("signal_power: symbols has shape {}, expected rank 3 or 4",
                                 shape_string(symbols.sizes().vec())));
  }
  if (options.axes() < 0 || options.axes() > 2) {
    throw UsageError(fmt::format("signal_power: axes is {}, expected 0 (auto), 1 or 2", options.axes()));
  }
  int64_t k = 1;
  for (auto d : dims) k *= symbols.size(d);
  const auto energy = torch::view_as_real(symbols).square().sum(-1).sum(dims, /*keepdim=*/true);
  // METHOD §10 P14: the reference divides the un-squared norm ‖z‖₂ by k.
  return (options.reference_power() ? energy.clamp_min(1e-30).sqrt() : energy) / static_cast<double>(k);
}

}  // namespace tokcom

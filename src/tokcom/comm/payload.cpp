#include "tokcom/comm/payload.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/comm/zeta.h"

namespace tokcom {

int64_t Payload::batch_size() const {
  return symbols.defined() ? symbols.size(0) : static_cast<int64_t>(bytes.size());
}

int64_t Payload::tokens_per_image(int64_t b) const {
  if (b < 0 || b >= batch_size()) {
    throw UsageError(fmt::format("Payload::tokens_per_image: sample {} out of range [0, {})", b,
                                 batch_size()));
  }
  if (!symbols.defined()) return 0;
  if (symbols.dim() == 3 && token_mask.defined()) return token_mask[b].sum().item<int64_t>();
  return symbols.size(1);
}

int64_t Payload::symbols_per_image(int64_t b) const {
  if (b < 0 || b >= batch_size()) {
    throw UsageError(fmt::format("Payload::symbols_per_image: sample {} out of range [0, {})", b,
                                 batch_size()));
  }
  return tokcom::symbols_per_image(*this)[b].item<int64_t>();  // the one count (zeta.h)
}

void validate(const Payload& p, const std::string& caller, int64_t expected_width,
              bool check_values) {
  if (p.method.empty()) throw FormatError(caller + ": payload.method is empty");
  const int64_t batch = p.batch_size();
  if (p.is_digital()) {
    if (p.bytes.empty()) {
      throw FormatError(caller + ": payload '" + p.method + "' has neither symbols nor bytes");
    }
    if (p.token_mask.defined() || p.token_scale.defined()) {
      throw FormatError(caller + ": payload.token_mask/token_scale is set on a digital payload (no symbols)");
    }
  } else {
    if (!p.bytes.empty()) {
      throw FormatError(fmt::format("{}: payload '{}' has both symbols and {} byte strings", caller,
                                    p.method, p.bytes.size()));
    }
    check_dtype(caller, "payload.symbols", p.symbols, torch::kComplexFloat);
    const auto rank = p.symbols.dim();
    if (rank != 3 && rank != 4) {
      throw ShapeError(fmt::format(
          "{}: payload.symbols has shape {}, expected (B, T, d_r) tokens or (B, C, s, s) maps",
          caller, shape_string(p.symbols.sizes().vec())));
    }
    if (expected_width >= 0 && p.symbols.size(-1) != expected_width) {
      throw ShapeError(fmt::format("{}: payload.symbols has shape {}, expected width {} (last axis)",
                                   caller, shape_string(p.symbols.sizes().vec()), expected_width));
    }
    if (p.token_mask.defined()) {
      if (rank != 3) throw ShapeError(caller + ": payload.token_mask is only valid for (B, T, d_r) symbols");
      check_dtype(caller, "payload.token_mask", p.token_mask, torch::kBool);
      check_shape(caller, "payload.token_mask", p.token_mask, {batch, p.symbols.size(1)});
    }
    if (p.token_scale.defined()) {
      if (rank != 3) throw ShapeError(caller + ": payload.token_scale is only valid for (B, T, d_r) symbols");
      check_dtype(caller, "payload.token_scale", p.token_scale, torch::kFloat);
      check_shape(caller, "payload.token_scale", p.token_scale, {batch, p.symbols.size(1)});
      if (check_values && !p.token_scale.isfinite().all().item<bool>()) {
        throw FormatError(fmt::format("{}: payload.token_scale ({}) contains NaN or Inf", caller, p.method));
      }
    }
    if (check_values && !torch::view_as_real(p.symbols).isfinite().all().item<bool>()) {
      throw FormatError(fmt::format("{}: payload.symbols ({} {}) contains NaN or Inf", caller,
                                    p.method, shape_string(p.symbols.sizes().vec())));
    }
  }
  if (!p.image_ids.empty() && static_cast<int64_t>(p.image_ids.size()) != batch) {
    throw ShapeError(fmt::format("{}: payload.image_ids has {} entries, expected {} (batch)", caller,
                                 p.image_ids.size(), batch));
  }
  if (p.ratio_index < -1) {
    throw FormatError(fmt::format("{}: payload.ratio_index is {}, expected >= -1", caller,
                                  p.ratio_index));
  }
}

}  // namespace tokcom

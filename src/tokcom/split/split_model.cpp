#include "tokcom/split/split_model.h"

#include <cmath>

#include <fmt/format.h>

#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"

namespace tokcom {

int64_t FrozenBatch::bytes() const {
  int64_t n = 0;
  for (const auto& t : tensors) {
    if (t.defined()) n += t.numel() * static_cast<int64_t>(t.element_size());
  }
  return n;
}

int64_t input_values(const Config& config) {
  const int64_t configured = config.get_int("comm.input_values");
  if (configured > 0) return configured;
  if (configured < 0) {
    throw ConfigError(fmt::format("comm.input_values is {}, expected 0 (auto: C·H·W of the model) or > 0", configured));
  }
  const int64_t size = config.get_int("model.image_size");
  return config.get_int("model.in_chans") * size * size;
}

std::vector<Payload> DeviceHalf::encode_each_ratio(const torch::Tensor& images, double budget,
                                                   const std::vector<int64_t>& ratio_indices, DeviceStats* stats) {
  std::vector<Payload> out;
  for (size_t i = 0; i < ratio_indices.size(); ++i) {
    out.push_back(encode(images, Decision{budget, ratio_indices[i]}, i == 0 ? stats : nullptr));
  }
  return out;
}

void validate_decision(const Decision& decision, int64_t num_ratios, const std::string& caller) {
  if (!(decision.budget > 0.0 && decision.budget <= 1.0) || !std::isfinite(decision.budget)) {
    throw UsageError(fmt::format("{}: decision budget α is {}, expected in (0, 1]", caller, decision.budget));
  }
  if (decision.ratio_index < 0 || decision.ratio_index >= num_ratios) {
    throw UsageError(fmt::format("{}: decision ratio index is {}, expected in [0, {}) (the trained bank)", caller,
                                 decision.ratio_index, num_ratios));
  }
}

}  // namespace tokcom

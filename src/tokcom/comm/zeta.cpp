#include "tokcom/comm/zeta.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "tokcom/core/errors.h"

namespace tokcom {

namespace {
void check_input_values(const char* caller, int64_t input_values) {
  if (input_values <= 0) {
    throw UsageError(fmt::format("{}: input_values is {}, expected C·H·W > 0", caller, input_values));
  }
}
}  // namespace

double zeta(int64_t channel_uses, int64_t input_values) {
  check_input_values("zeta", input_values);
  if (channel_uses < 0) throw UsageError(fmt::format("zeta: channel_uses is {}, expected >= 0", channel_uses));
  return static_cast<double>(channel_uses) / static_cast<double>(input_values);
}

double zeta(const Payload& payload, int64_t b, int64_t input_values) {
  if (payload.is_digital()) {
    throw UsageError(fmt::format(
        "zeta: payload '{}' is digital; its ζ is the decision's capacity setting (METHOD §6.3)",
        payload.method));
  }
  return zeta(payload.symbols_per_image(b), input_values);
}

double proxy_zeta_reference(double mean_tokens, double ratio, int64_t dim, int64_t input_values) {
  check_input_values("proxy_zeta_reference", input_values);
  return mean_tokens * static_cast<double>(dim) * ratio / static_cast<double>(input_values);
}

torch::Tensor symbols_per_image(const Payload& payload) {
  const int64_t batch = payload.batch_size();
  if (payload.is_digital()) return torch::zeros({batch}, torch::kLong);
  int64_t per_slot = 1;  // d_r for tokens, s·s for CNN maps
  for (int64_t i = 2; i < payload.symbols.dim(); ++i) per_slot *= payload.symbols.size(i);
  torch::Tensor slots = payload.token_mask.defined() && payload.symbols.dim() == 3
                            ? payload.token_mask.sum(1).to(torch::kCPU)
                            : torch::full({batch}, payload.symbols.size(1), torch::kLong);
  return slots * per_slot;
}

}  // namespace tokcom

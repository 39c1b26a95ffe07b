#include "tokcom/comm/zeta.h"

#include <fmt/format.h>

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
        "zeta: payload '{}' is digital; its ζ is the decision's capacity setting (SPEC 6.3)",
        payload.method));
  }
  return zeta(payload.symbols_per_image(b), input_values);
}

double proxy_zeta_reference(double mean_tokens, double ratio, int64_t dim, int64_t input_values) {
  check_input_values("proxy_zeta_reference", input_values);
  return mean_tokens * static_cast<double>(dim) * ratio / static_cast<double>(input_values);
}

}  // namespace tokcom

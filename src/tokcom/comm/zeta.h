// comm/zeta.h — the ONE place ζ (global compression ratio) is counted (METHOD §5.5, 10 P15).
#pragma once
#include <cstdint>

#include "tokcom/comm/payload.h"

namespace tokcom {

constexpr int64_t kImageValues = 3 * 224 * 224;  // C·H·W = 150 528 (METHOD §0)

// ζ = k / (C·H·W): k complex channel uses per image, input_values = C·H·W of the *paper's*
// 224² input (keep 150 528 when the model runs on smaller images, so ζ stays comparable).
double zeta(int64_t channel_uses, int64_t input_values = kImageValues);
// THE count of complex channel uses k per image of a payload, (B) int64 on the CPU: real token
// slots × d_r for token payloads (cls and budget included: they are sent; padded slots are not),
// C·s·s for CNN maps, 0 for digital payloads. The sweep, the deployment evaluation, the controller
// and the network all count ζ through it.
torch::Tensor symbols_per_image(const Payload& payload);

// ζ of sample b of a payload: its actually-sent symbols (real token slots × d_r, cls and budget
// included since they are sent; C·s·s for CNN maps). Throws UsageError for digital payloads:
// their ζ is the decision's capacity setting, not a symbol count (METHOD §6.3).
double zeta(const Payload& payload, int64_t b, int64_t input_values = kImageValues);

// The reference's proxy-table ζ (METHOD §5.5, 10 P15 "reference mode"): E[T_kept + 2]·dim·r / CHW,
// with the fractional dim·r instead of the integer d_r. mean_tokens already includes cls+budget.
double proxy_zeta_reference(double mean_tokens, double ratio, int64_t dim = 192,
                            int64_t input_values = kImageValues);

}  // namespace tokcom

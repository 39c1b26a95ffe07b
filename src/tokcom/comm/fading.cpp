// Block / per-symbol Rayleigh and Rician fading with optional perfect-CSI equalisation
// (METHOD §5.3, 10 P24, open question Q8).
#include <fmt/format.h>

#include <cmath>

#include "tokcom/comm/channel.h"
#include "tokcom/core/errors.h"

namespace tokcom {

FadingChannel::FadingChannel(FadingOptions options, PowerOptions power)
    : Channel(power), options_(options) {
  if (options_.rician_k() < 0 || std::isnan(options_.rician_k())) {
    throw ConfigError(fmt::format("FadingChannel: rician_k = {}, expected >= 0", options_.rician_k()));
  }
  if (!(options_.variance() > 0) || std::isinf(options_.variance())) {
    throw ConfigError(fmt::format("FadingChannel: variance = {}, expected positive", options_.variance()));
  }
  if (options_.per_symbol() && options_.rician_k() != 0) {
    throw ConfigError("FadingChannel: per-symbol Rician fading is not implemented (use rician_k = 0)");
  }
}

std::string FadingChannel::name() const {
  std::string opts;
  const auto eq = options_.equalizer();
  const std::string csi = eq == Equalizer::kZeroForcing ? "zf" : eq == Equalizer::kMmse ? "mmse" : "none";
  std::string base;
  if (options_.per_symbol()) {
    base = "rayleigh-symbol";
    if (eq != Equalizer::kNone) opts += ",csi=" + csi;
    if (options_.variance() != 1.0) opts += fmt::format(",var={}", options_.variance());
  } else if (options_.rician_k() == 0) {
    base = eq == Equalizer::kZeroForcing ? "rayleigh-csi" : eq == Equalizer::kMmse ? "rayleigh-mmse" : "rayleigh";
  } else {
    base = "rician";
    opts += fmt::format(",K={}", options_.rician_k());
    if (eq != Equalizer::kNone) opts += ",csi=" + csi;
  }
  opts += power_suffix();
  return opts.empty() ? base : base + ":" + opts.substr(1);
}

Received FadingChannel::apply(const Payload& sent, const torch::Tensor& snr_db,
                              torch::Generator& rng) const {
  const auto var = noise_variance("FadingChannel::apply(" + name() + ")", sent, snr_db);
  Received out{sent, {}, {}};
  if (sent.is_digital()) {
    out.gain = torch::ones({sent.batch_size()}, torch::kComplexFloat);
    return out;
  }
  const auto& z = sent.symbols;
  const auto device = z.device();
  auto noise_var = var;
  // Noise first, then gains (channel.h): K → ∞ reproduces AWGN draw for draw.
  const auto unit_noise = complex_normal(z.sizes(), 1.0, rng, device);
  torch::Tensor h;   // per image (B) or per symbol (z's shape)
  torch::Tensor hb;  // broadcastable to z
  if (options_.per_symbol()) {
    // Reference fading (post-paper): h ~ CN(0, σ_f²) per symbol, noise variance scaled by σ_f².
    h = complex_normal(z.sizes(), options_.variance(), rng, device);
    hb = h;
    noise_var = var * options_.variance();
  } else {
    const double k = options_.rician_k();
    if (std::isinf(k)) {
      h = torch::ones({z.size(0)}, z.options());
    } else {
      // h = √(K/(K+1)) + √(1/(K+1))·g, g ~ CN(0, 1): E|h|² = 1; K = 0 is the paper's Rayleigh.
      const auto g = complex_normal({z.size(0)}, 1.0, rng, device);
      h = g * std::sqrt(1.0 / (k + 1.0)) + std::sqrt(k / (k + 1.0));
    }
    std::vector<int64_t> view(z.dim(), 1);
    view[0] = z.size(0);
    hb = h.view(view);
  }
  auto y = hb * z + unit_noise * noise_var.sqrt();
  switch (options_.equalizer()) {
    case Equalizer::kNone:
      break;  // the receiver gets h·z + n and must cope (METHOD §10 P24 default "no CSI")
    case Equalizer::kZeroForcing:
      y = y * hb.conj() / hb.abs().square();  // ŷ = y·h*/|h|² = z + n·h*/|h|²
      break;
    case Equalizer::kMmse: {
      // Linear MMSE for z with per-symbol power P: ŷ = y·h*/(|h|² + σ²/P).
      const auto p = signal_power(z, PowerOptions().axes(power_.axes())).clamp_min(1e-30);
      y = y * hb.conj() / (hb.abs().square() + noise_var / p);
      break;
    }
  }
  out.payload.symbols = mask_slots(y, sent.token_mask);
  out.gain = h;
  out.noise_var = mask_slots(noise_var, sent.token_mask);
  return out;
}

}  // namespace tokcom

// comm/channel.h — wireless channels as const functors over a Payload (METHOD §5.3, 10 P24).
//
// Every channel: y = h·z + n, n ~ CN(0, σ²) with σ² = P_sig / 10^{SNR/10}, P_sig measured per
// token over the symbol axis (per map for CNN payloads; power.h, METHOD §10 P14), SNR one value per
// image. Gains have E|h|² = 1, so the nominal SNR is the average received SNR. Noise is drawn
// first, then gains, always from `rng` (on rng's device, then moved): the same seed gives the same
// output on CPU and CUDA, and channels differing only in h share the noise draw.
// Padded token slots (token_mask false) are not transmitted: the receiver sees nothing there, so
// they come out as exact zeros, with no noise and no power counted. Digital payloads pass through
// unchanged (the capacity-achieving assumption of METHOD §6.3 makes them error-free).
#pragma once
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokcom/comm/payload.h"
#include "tokcom/comm/power.h"

namespace tokcom {

struct Received {
  Payload payload;          // what the receiver decodes (equalised when the channel equalises)
  torch::Tensor gain;       // complex64 h: (B) block gains, or the symbols' shape per symbol;
                            // ones for noiseless/AWGN; the truth even when the receiver lacks CSI
  torch::Tensor noise_var;  // float σ² per complex symbol, broadcastable to the symbols
                            // ((B, T, 1) or (B, C, 1, 1)); 0 at padded slots; undefined if digital
};

class Channel {
 public:
  explicit Channel(PowerOptions power = {}) : power_(power) {}
  virtual ~Channel() = default;
  // Canonical registry spec: make_channel(name()) builds an equal channel.
  virtual std::string name() const = 0;
  // sent.symbols complex64 (B, T, d_r) or (B, C, s, s); snr_db (B) float, finite, one per image.
  // Throws ShapeError/FormatError on a bad payload or SNR. Differentiable w.r.t. sent.symbols.
  virtual Received apply(const Payload& sent, const torch::Tensor& snr_db,
                         torch::Generator& rng) const = 0;
  const PowerOptions& power() const { return power_; }

 protected:
  // Checks `sent` and `snr_db`; returns σ² per symbol (broadcastable, on the symbols' device),
  // padded slots included (mask the output, not σ²).
  torch::Tensor noise_variance(const std::string& caller, const Payload& sent,
                               const torch::Tensor& snr_db) const;
  // The power-measure suffix of name() (",power=reference", ",power_axes=last" or "").
  std::string power_suffix() const;
  PowerOptions power_;
};

// y = z (snr_db may be undefined; when given it is still checked).
class NoiselessChannel final : public Channel {
 public:
  using Channel::Channel;
  std::string name() const override;
  Received apply(const Payload& sent, const torch::Tensor& snr_db, torch::Generator& rng) const override;
};

// y = z + n (METHOD §5.3, the paper's channel).
class AwgnChannel final : public Channel {
 public:
  using Channel::Channel;
  std::string name() const override;
  Received apply(const Payload& sent, const torch::Tensor& snr_db, torch::Generator& rng) const override;
};

enum class Equalizer { kNone, kZeroForcing, kMmse };

struct FadingOptions {
  TORCH_ARG(bool, per_symbol) = false;     // false: one h per image (paper, METHOD §10 P24)
  TORCH_ARG(double, rician_k) = 0.0;       // linear K-factor; 0 = Rayleigh; inf = no fading
  TORCH_ARG(double, variance) = 1.0;       // per-symbol fading variance σ_f² (reference code)
  TORCH_ARG(Equalizer, equalizer) = Equalizer::kNone;  // receiver with perfect CSI when not kNone
};

// y = h·z + n. Block: h per image, h = √(K/(K+1)) + √(1/(K+1))·CN(0, 1) (LoS phase 0).
// Per symbol (reference, post-paper): h ~ CN(0, σ_f²) per symbol, σ² scaled by σ_f².
// Zero forcing: ŷ = y·h*/|h|²; MMSE: ŷ = y·h*/(|h|² + σ²/P), P = mean symbol power (squared).
class FadingChannel final : public Channel {
 public:
  explicit FadingChannel(FadingOptions options, PowerOptions power = {});
  std::string name() const override;
  Received apply(const Payload& sent, const torch::Tensor& snr_db, torch::Generator& rng) const override;
  const FadingOptions& options() const { return options_; }

 private:
  FadingOptions options_;
};

// Registry: "noiseless", "awgn", "rayleigh" (block, no CSI), "rayleigh-csi" (block, ZF),
// "rayleigh-mmse" (block, MMSE), "rayleigh-symbol" (per symbol, no CSI), "rician" (block; K).
// Options after ':' as key=value separated by ',': K=<linear K-factor> (rician, default 4),
// csi=none|zf|mmse (rayleigh, rayleigh-symbol, rician), var=<σ_f²> (rayleigh-symbol),
// power=squared|reference and power_axes=auto|last (all). Unknown name/option → ConfigError.
std::unique_ptr<Channel> make_channel(const std::string& spec);
std::vector<std::string> channel_names();
// A list of channel specs (--channels): separated by ';' when the text holds one, else by ','
// where an item that is only an option (key=value, no ':') continues the spec before it, so
// "awgn,rician:K=4,csi=zf" is awgn and rician:K=4,csi=zf.
std::vector<std::string> split_channel_specs(const std::string& text);

// y with padded slots (token_mask false) set to 0; y unchanged when the mask is undefined.
torch::Tensor mask_slots(const torch::Tensor& y, const torch::Tensor& token_mask);

double db_to_lin(double db);  // 10^{db/10}
// CN(0, variance) samples (real and imaginary parts each N(0, variance/2)), complex64, drawn on
// rng's device and moved to `device` (undefined device = rng's).
torch::Tensor complex_normal(at::IntArrayRef shape, double variance, torch::Generator& rng,
                             c10::optional<torch::Device> device = c10::nullopt);
// A CPU generator seeded with `seed` (channels accept any generator; CPU keeps CPU = CUDA).
torch::Generator make_generator(uint64_t seed);

}  // namespace tokcom

// comm/jscc.h — token JSCC encoder/decoder and the bank of one pair per ratio (METHOD §5.1–5.4).
//
// Parameter names (safetensors keys, relative to where the bank is registered, e.g. "jscc."):
//   {i}.encoder.re.{0,2,4}.{weight,bias}   MLP for the real part (Linear, ReLU, Linear, ReLU, Linear)
//   {i}.encoder.im.{0,2,4}.{weight,bias}   MLP for the imaginary part
//   {i}.decoder.mlp.{0,2,4}.{weight,bias}  decoder MLP on concat(Re, Im)
// with i the index of the ratio in JsccBankOptions::ratios (= Payload::ratio_index).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "tokcom/comm/payload.h"
#include "tokcom/comm/power.h"

namespace tokcom {

// d_r = max(⌊dim·r⌋, 1) complex symbols per token (METHOD §5.1).
int64_t symbols_per_token(int64_t dim, double ratio);
// numpy's linspace(start, end, n) truncated to int (last value exactly `end`).
std::vector<int64_t> linspace_int(double start, double end, int64_t n);
// Encoder widths linspace(dim, d_r, 4) → 3 Linear layers; decoder linspace(2·d_r, dim, 4).
std::vector<int64_t> encoder_widths(int64_t dim, double ratio);
std::vector<int64_t> decoder_widths(int64_t dim, double ratio);

struct JsccOptions {
  int64_t symbols_per_token() const { return tokcom::symbols_per_token(dim_, ratio_); }
  PowerOptions power_options() const { return PowerOptions().reference_power(reference_power_); }
  TORCH_ARG(int64_t, dim) = 192;     // token width d (DeiT-Tiny; 784 for flattened MNv3)
  TORCH_ARG(double, ratio) = 0.1;    // r
  // METHOD §10 P14: carried for the channel (power_options()); the per-token unit norm makes the
  // encoder's output the same in both modes.
  TORCH_ARG(bool, reference_power) = false;
};

// x (B, T, dim) float → z (B, T, d_r) complex64, every token unit energy (METHOD §5.2, 10 P13).
class JsccEncoderImpl : public torch::nn::Module {
 public:
  explicit JsccEncoderImpl(JsccOptions options);
  torch::Tensor forward(const torch::Tensor& x);
  JsccOptions options;
  torch::nn::Sequential re{nullptr}, im{nullptr};
};
TORCH_MODULE(JsccEncoder);

// y (B, T, d_r) complex64 → x̂ (B, T, dim) float: MLP on concat(Re(y), Im(y)) (METHOD §5.4; the
// reference's inert "received ≠ 0" indicator is skipped).
class JsccDecoderImpl : public torch::nn::Module {
 public:
  explicit JsccDecoderImpl(JsccOptions options);
  torch::Tensor forward(const torch::Tensor& y);
  JsccOptions options;
  torch::nn::Sequential mlp{nullptr};
};
TORCH_MODULE(JsccDecoder);

// One trained (encoder, decoder) pair.
class JsccCodecImpl : public torch::nn::Module {
 public:
  explicit JsccCodecImpl(JsccOptions options);
  JsccOptions options;
  JsccEncoder encoder{nullptr};
  JsccDecoder decoder{nullptr};
};
TORCH_MODULE(JsccCodec);

struct JsccBankOptions {
  TORCH_ARG(int64_t, dim) = 192;
  // METHOD §5.1's list; duplicates of the same d_r (0.01 and 0.001, P16) stay separate entries.
  TORCH_ARG(std::vector<double>, ratios) = std::vector<double>{0.001, 0.01, 0.05, 0.1, 0.15, 0.25, 0.5};
  TORCH_ARG(bool, reference_power) = false;
};

class JsccBankImpl : public torch::nn::Module {
 public:
  explicit JsccBankImpl(JsccBankOptions options);
  int64_t size() const { return static_cast<int64_t>(codecs_.size()); }
  double ratio(int64_t index) const;
  int64_t symbols_per_token(int64_t index) const;
  // First index whose ratio equals `ratio` (1e-12); ConfigError listing the bank otherwise.
  int64_t index_of(double ratio) const;
  JsccCodec codec(int64_t index) const;
  // x (B, T, dim) → payload with symbols (B, T, d_r), ratio_index, method and optional mask.
  Payload encode(const torch::Tensor& x, int64_t index, const std::string& method,
                 const torch::Tensor& token_mask = {});
  // Received payload → (B, T, dim); checks the ratio index and token width; zero at padded slots.
  torch::Tensor decode(const Payload& received);
  PowerOptions power_options() const { return PowerOptions().reference_power(options.reference_power()); }
  JsccBankOptions options;

 private:
  std::vector<JsccCodec> codecs_;
};
TORCH_MODULE(JsccBank);

}  // namespace tokcom

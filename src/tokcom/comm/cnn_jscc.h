// comm/cnn_jscc.h — convolutional JSCC on the MobileNetV3 24×28×28 map ("MNv3 CNN", METHOD §6.2).
//
// Parameter names: encoder.re.{0,2,4}, encoder.im.{0,2,4} (Conv2d / ConvTranspose2d, 24→24
// channels), decoder.net.{0,2,4} (48→40→32→24 channels), each .weight/.bias.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "tokcom/comm/power.h"

namespace tokcom {

struct ConvStep {
  int64_t kernel = 1, stride = 1;  // no padding
  int64_t in_size = 0, out_size = 0;
  bool transposed = false;         // ConvTranspose2d when the size does not shrink
};

struct CnnJsccPlan {
  int64_t side = 0;                // s = max(⌊side·r⌋, 1): the sent map is C×s×s
  std::vector<ConvStep> encoder;   // sizes linspace(side, s, 4)
  std::vector<ConvStep> decoder;   // sizes linspace(s, side, 4)
};

// First (kernel i, stride j), i = 1..11 outer, j = 1..11 inner, minimising |out − target| with
// out = ⌊(in − i)/j⌋ + 1 (Conv2d, target < in) or (in − 1)·j + i (ConvTranspose2d).
ConvStep plan_conv_step(int64_t in_size, int64_t target);
// The reference's kernel/stride search for every layer (METHOD §6.2 table for side 28).
CnnJsccPlan plan_cnn_jscc(int64_t side, double ratio);

struct CnnJsccOptions {
  PowerOptions power_options() const {
    return PowerOptions().reference_power(reference_power_).axes(power_last_axis_ ? 1 : 0);
  }
  TORCH_ARG(int64_t, channels) = 24;
  TORCH_ARG(int64_t, side) = 28;
  TORCH_ARG(double, ratio) = 0.5;
  // METHOD §10 P14 (for the channel): un-squared norm (reference) vs squared (default).
  TORCH_ARG(bool, reference_power) = false;
  // Reference robust r = 0.5 config: power over the last axis only, not s×s.
  TORCH_ARG(bool, power_last_axis) = false;
};

// x (B, C, side, side) float → z (B, C, s, s) complex64, each row of the s×s map unit norm
// (METHOD §6.2, 10 P13). Re and Im are two separately initialised 3-layer conv nets, ReLU between.
class CnnJsccEncoderImpl : public torch::nn::Module {
 public:
  explicit CnnJsccEncoderImpl(CnnJsccOptions options);
  torch::Tensor forward(const torch::Tensor& x);
  CnnJsccOptions options;
  CnnJsccPlan plan;
  torch::nn::Sequential re{nullptr}, im{nullptr};
};
TORCH_MODULE(CnnJsccEncoder);

// y (B, C, s, s) complex64 → (B, C, side, side): concat(Re, Im) on channels (2C), then 3 layers.
class CnnJsccDecoderImpl : public torch::nn::Module {
 public:
  explicit CnnJsccDecoderImpl(CnnJsccOptions options);
  torch::Tensor forward(const torch::Tensor& y);
  CnnJsccOptions options;
  CnnJsccPlan plan;
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(CnnJsccDecoder);

// One trained (encoder, decoder) pair: names jscc.encoder.*, jscc.decoder.* where registered as "jscc".
class CnnJsccCodecImpl : public torch::nn::Module {
 public:
  explicit CnnJsccCodecImpl(CnnJsccOptions options);
  CnnJsccOptions options;
  CnnJsccEncoder encoder{nullptr};
  CnnJsccDecoder decoder{nullptr};
};
TORCH_MODULE(CnnJsccCodec);

}  // namespace tokcom

// MobileNetV3 Small/Large (torchvision 0.14 layout and parameter names,
// METHOD §6.2), split into a device half `features[0:3]` and a server half (the
// rest + pooling + classifier). The names are torchvision's
// (`features.0.0.weight`, `features.1.block.1.fc1.bias`,
// `classifier.3.weight`), so torchvision weights load through safetensors
// without a key map.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tokcom/core/safetensors.h"

namespace tokcom {
class Config;

struct MobileNetV3Options {
  TORCH_ARG(std::string, variant) = "small";  // small | large
  // 10-way head by default; 1000 = the reference's ImageNet head (METHOD §10 P11).
  TORCH_ARG(int64_t, num_classes) = 10;
  // 3 = torchvision; 1 (Fashion-MNIST) only changes features.0.0's input
  // channels.
  TORCH_ARG(int64_t, in_chans) = 3;
  TORCH_ARG(double, dropout) = 0.2;
  TORCH_ARG(double, width_mult) = 1.0;
};

// torchvision `_make_divisible`: round to the nearest multiple of `divisor` (≥
// divisor), never more than 10 % below `value`.
int64_t make_divisible(double value, int64_t divisor = 8);

enum class ConvActivation { kNone, kReLU, kHardswish };

// conv2d(x, weight, no bias, stride, padding, dilation 1, groups) computed with the kernel cropped
// to the taps that can reach the input: on a map smaller than the kernel (MobileNetV3's 5×5
// depthwise convolutions on 1×1 and 2×2 maps at 28–64 px) the outer taps only ever multiply zero
// padding, and oneDNN runs those shapes through a generic im2col + GEMM path ~30–100× slower than
// its depthwise kernel (docs/PERF.md). Exact: the cropped taps' gradients are zero either way.
// The crop is symmetric (c taps off each side, padding − c), so the output size is unchanged. A
// map still smaller than the cropped kernel is zero-padded explicitly (the same values; oneDNN's
// depthwise weight gradient needs an input at least as large as the kernel).
torch::Tensor conv2d_reachable(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride,
                               int64_t padding, int64_t groups);
// The taps conv2d_reachable crops off each side along an axis of length n (kernel k).
int64_t unreachable_taps(int64_t n, int64_t k, int64_t stride, int64_t padding);

// Conv2d (no bias, padding (k−1)/2·dilation) → BatchNorm2d(eps 1e-3, momentum
// 0.01) → activation: torchvision `Conv2dNormActivation`, children named "0"
// (conv) and "1" (norm).
class ConvNormActivationImpl : public torch::nn::Module {
 public:
  ConvNormActivationImpl(int64_t in,
                         int64_t out,
                         int64_t kernel,
                         int64_t stride,
                         int64_t groups,
                         ConvActivation activation,
                         int64_t dilation = 1);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d norm{nullptr};
  ConvActivation activation;

 private:
  bool depthwise_;
  int64_t stride_, padding_, groups_;
};
TORCH_MODULE(ConvNormActivation);

// x · hardsigmoid(fc2(relu(fc1(avgpool(x))))) — torchvision `SqueezeExcitation`
// (fc1/fc2 are 1×1 convs with bias).
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SqueezeExcitation);

// One row of torchvision's `_mobilenet_v3_conf` (channels before width_mult).
struct MobileNetBlockConfig {
  int64_t in, kernel, expanded, out;
  bool se, hardswish;
  int64_t stride;
};
std::vector<MobileNetBlockConfig> mobilenet_v3_blocks(const std::string& variant);

// Inverted residual: [1×1 expand] → k×k depthwise → [SE] → 1×1 project (no
// activation), residual when stride 1 and in == out. Children: `block.{j}` as
// torchvision.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(const MobileNetBlockConfig& config, double width_mult);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential block{nullptr};
  bool residual;
};
TORCH_MODULE(InvertedResidual);

class MobileNetV3Impl : public torch::nn::Module {
 public:
  static constexpr int64_t kSplit = 3;  // METHOD §6.2: device = features[0:3]

  explicit MobileNetV3Impl(MobileNetV3Options options);

  // x (B, in_chans, H, W), H, W ≥ 32, normalised → logits (B, num_classes).
  torch::Tensor forward(const torch::Tensor& x);
  // Device half, features[0:3]: (B, in_chans, H, W) → (B, 24, H/8, W/8) for
  // Small (24×28×28 at 224 px, METHOD §6.2) and (B, 24, H/4, W/4) for Large.
  torch::Tensor forward_device(const torch::Tensor& x);
  // Server half: features[3:] → global average pool → classifier. f =
  // forward_device's output.
  torch::Tensor forward_server(const torch::Tensor& f);
  // Runs features [begin, end) (no input check); on the CPU the result is channels-last.
  torch::Tensor forward_features(torch::Tensor x, int64_t begin, int64_t end);
  // `predict --hidden`: ("features.{i}", output of stage i) for every feature
  // stage, in order.
  std::vector<std::pair<std::string, torch::Tensor>> forward_hidden(const torch::Tensor& x);
  // (C, H, W) of forward_device's output for an input of side h × w.
  std::vector<int64_t> device_shape(int64_t height, int64_t width) const;
  int64_t num_features() const { return static_cast<int64_t>(features->size()); }
  // torchvision init: kaiming normal (fan_out) convs, zero conv bias, BN
  // ones/zeros, Linear normal(0, 0.01), zero bias.
  void reset_parameters();

  MobileNetV3Options options;
  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential classifier{nullptr};  // Linear → Hardswish → Dropout → Linear

 private:
  void check_input(const std::string& caller, const torch::Tensor& x) const;
  void check_device_features(const torch::Tensor& f) const;
  int64_t device_channels_ = 0;
};
TORCH_MODULE(MobileNetV3);

// Options from the `mobilenet` config section
// (configs/defaults/mobilenet.yaml); mobilenet.reference_head = true forces the
// 1000-way head (METHOD §10 P11).
MobileNetV3Options mobilenet_options_from_config(const Config& config);
MobileNetV3 make_mobilenet(const Config& config);
// "mobilenet-v3-small" | "mobilenet-v3-large" → "small" | "large"; anything
// else ConfigError.
std::string mobilenet_variant_from_model_name(const std::string& model);

// `tokcom predict --input X --out Y [--hidden]` for MobileNet: {"logits"} and,
// with `hidden`, "hidden.features.{i}" for every stage (contiguous, on the
// input's device). Eval mode, no grad.
TensorMap mobilenet_predict_outputs(MobileNetV3& model, const torch::Tensor& x, bool hidden);

}  // namespace tokcom

// MobileNetV3 (METHOD §6.2) — a line-by-line port of torchvision 0.14
// `models/mobilenetv3.py` and `ops/misc.py` (Conv2dNormActivation,
// SqueezeExcitation); names and init as there.
#include "tokcom/model/mobilenet_v3.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>

#include "tokcom/core/precision.h"
#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"

namespace tokcom {
namespace nn = torch::nn;

int64_t make_divisible(double value, int64_t divisor) {
  // int(v + divisor / 2) // divisor * divisor, at least divisor, +divisor if it
  // lost > 10 %.
  int64_t rounded =
      std::max<int64_t>(divisor, static_cast<int64_t>(value + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * value) rounded += divisor;
  return rounded;
}

ConvNormActivationImpl::ConvNormActivationImpl(int64_t in,
                                               int64_t out,
                                               int64_t kernel,
                                               int64_t stride,
                                               int64_t groups,
                                               ConvActivation activation,
                                               int64_t dilation)
    : activation(activation),
      // The depthwise k×k convolutions go through conv2d_reachable; the rest (1×1, the stem,
      // dilated ones) are left to Conv2d.
      depthwise_(groups > 1 && groups == in && kernel > 1 && dilation == 1),
      stride_(stride),
      padding_((kernel - 1) / 2 * dilation),
      groups_(groups) {
  conv = register_module("0", nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                                             .stride(stride)
                                             .padding(padding_)
                                             .dilation(dilation)
                                             .groups(groups)
                                             .bias(false)));
  // torchvision: partial(nn.BatchNorm2d, eps=0.001, momentum=0.01).
  norm =
      register_module("1", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(1e-3).momentum(0.01)));
}

// Taps a with no output t such that 0 ≤ t·stride + a − padding < n only ever see zero padding;
// as many as lie outside on both sides (at most the padding) can go.
int64_t unreachable_taps(int64_t n, int64_t k, int64_t stride, int64_t padding) {
  const int64_t outputs = (n + 2 * padding - k) / stride + 1;
  int64_t lo = k, hi = -1;
  for (int64_t a = 0; a < k; ++a)
    for (int64_t t = 0; t < outputs; ++t)
      if (const int64_t i = t * stride + a - padding; i >= 0 && i < n) {
        lo = std::min(lo, a);
        hi = std::max(hi, a);
        break;
      }
  if (hi < 0) return 0;  // nothing reachable (only padding): leave the shape to conv2d
  return std::min({lo, k - 1 - hi, padding});
}

torch::Tensor conv2d_reachable(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride,
                               int64_t padding, int64_t groups) {
  check_shape("conv2d_reachable", "x", x, {-1, -1, -1, -1});
  check_shape("conv2d_reachable", "weight", weight, {-1, x.size(1) / std::max<int64_t>(groups, 1), -1, -1});
  const int64_t kh = weight.size(2), kw = weight.size(3);
  const int64_t ch = unreachable_taps(x.size(2), kh, stride, padding);
  const int64_t cw = unreachable_taps(x.size(3), kw, stride, padding);
  const torch::Tensor w = ch == 0 && cw == 0 ? weight : weight.slice(2, ch, kh - ch).slice(3, cw, kw - cw);
  const int64_t ph = padding - ch, pw = padding - cw;
  // A map still smaller than the kernel (5×5 on 4×4, 3×3 on 2×2) gets its zero padding as
  // values: oneDNN's depthwise weight gradient takes the generic path when the input is smaller
  // than the kernel, whatever the padding.
  if ((x.size(2) < w.size(2) || x.size(3) < w.size(3)) && (ph > 0 || pw > 0))
    return torch::conv2d(torch::constant_pad_nd(x, {pw, pw, ph, ph}), w, {}, stride, std::vector<int64_t>{0, 0}, 1, groups);
  return torch::conv2d(x, w, {}, stride, {ph, pw}, 1, groups);
}

torch::Tensor ConvNormActivationImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = depthwise_ ? conv2d_reachable(x, conv->weight, stride_, padding_, groups_) : conv->forward(x);
  y = norm->forward(y);
  switch (activation) {
    case ConvActivation::kReLU:
      return torch::relu(y);
    case ConvActivation::kHardswish:
      return torch::hardswish(y);
    case ConvActivation::kNone:
      break;
  }
  return y;
}

SqueezeExcitationImpl::SqueezeExcitationImpl(int64_t channels, int64_t squeeze) {
  fc1 = register_module("fc1", nn::Conv2d(nn::Conv2dOptions(channels, squeeze, 1)));
  fc2 = register_module("fc2", nn::Conv2d(nn::Conv2dOptions(squeeze, channels, 1)));
}

torch::Tensor SqueezeExcitationImpl::forward(const torch::Tensor& x) {
  torch::Tensor scale = torch::adaptive_avg_pool2d(x, {1, 1});
  scale = torch::hardsigmoid(fc2->forward(torch::relu(fc1->forward(scale))));
  return scale * x;
}

std::vector<MobileNetBlockConfig> mobilenet_v3_blocks(const std::string& variant) {
  // torchvision `_mobilenet_v3_conf` (reduced_tail = False, dilated = False):
  // in, kernel, expanded, out, SE, hardswish (else ReLU), stride.
  if (variant == "large")
    return {{16, 3, 16, 16, false, false, 1},  {16, 3, 64, 24, false, false, 2},
            {24, 3, 72, 24, false, false, 1},  {24, 5, 72, 40, true, false, 2},
            {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
            {40, 3, 240, 80, false, true, 2},  {80, 3, 200, 80, false, true, 1},
            {80, 3, 184, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
            {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
            {112, 5, 672, 160, true, true, 2}, {160, 5, 960, 160, true, true, 1},
            {160, 5, 960, 160, true, true, 1}};
  if (variant == "small")
    return {{16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2},
            {24, 3, 88, 24, false, false, 1}, {24, 5, 96, 40, true, true, 2},
            {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
            {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},
            {48, 5, 288, 96, true, true, 2},  {96, 5, 576, 96, true, true, 1},
            {96, 5, 576, 96, true, true, 1}};
  throw ConfigError(fmt::format("MobileNetV3: variant '{}' is not one of small, large", variant));
}

InvertedResidualImpl::InvertedResidualImpl(const MobileNetBlockConfig& c, double width_mult) {
  const int64_t in = make_divisible(c.in * width_mult), out = make_divisible(c.out * width_mult);
  const int64_t expanded = make_divisible(c.expanded * width_mult);
  const ConvActivation act = c.hardswish ? ConvActivation::kHardswish : ConvActivation::kReLU;
  residual = c.stride == 1 && in == out;
  block = nn::Sequential();
  if (expanded != in) block->push_back(ConvNormActivation(in, expanded, 1, 1, 1, act));
  block->push_back(ConvNormActivation(expanded, expanded, c.kernel, c.stride, expanded, act));
  if (c.se) block->push_back(SqueezeExcitation(expanded, make_divisible(expanded / 4)));
  block->push_back(ConvNormActivation(expanded, out, 1, 1, 1, ConvActivation::kNone));
  register_module("block", block);
}

torch::Tensor InvertedResidualImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = block->forward(x);
  return residual ? y + x : y;
}

MobileNetV3Impl::MobileNetV3Impl(MobileNetV3Options opts) : options(std::move(opts)) {
  const auto blocks = mobilenet_v3_blocks(options.variant());
  if (options.num_classes() < 1 || options.in_chans() < 1 || options.width_mult() <= 0 ||
      options.dropout() < 0 || options.dropout() >= 1)
    throw ConfigError(fmt::format(
        "MobileNetV3: num_classes {} and in_chans {} must be ≥ 1, width_mult {} > 0, dropout {} "
        "in [0, 1)",
        options.num_classes(), options.in_chans(), options.width_mult(), options.dropout()));
  const double w = options.width_mult();
  features = nn::Sequential();
  const int64_t stem = make_divisible(blocks.front().in * w);
  features->push_back(
      ConvNormActivation(options.in_chans(), stem, 3, 2, 1, ConvActivation::kHardswish));
  for (const MobileNetBlockConfig& b : blocks) features->push_back(InvertedResidual(b, w));
  const int64_t last_in = make_divisible(blocks.back().out * w), last_out = 6 * last_in;
  features->push_back(ConvNormActivation(last_in, last_out, 1, 1, 1, ConvActivation::kHardswish));
  register_module("features", features);
  device_channels_ = make_divisible(blocks[kSplit - 2].out * w);

  const int64_t hidden = make_divisible((options.variant() == "large" ? 1280 : 1024) * w);
  classifier = nn::Sequential(
      nn::Linear(last_out, hidden),
      nn::Functional(static_cast<torch::Tensor (*)(const torch::Tensor&)>(&torch::hardswish)),
      nn::Dropout(options.dropout()), nn::Linear(hidden, options.num_classes()));
  register_module("classifier", classifier);
  reset_parameters();
}

void MobileNetV3Impl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut);
      if (conv->bias.defined()) nn::init::zeros_(conv->bias);
    } else if (auto* bn = m->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    } else if (auto* linear = m->as<nn::Linear>()) {
      nn::init::normal_(linear->weight, 0.0, 0.01);
      nn::init::zeros_(linear->bias);
    }
  }
}

void MobileNetV3Impl::check_input(const std::string& caller, const torch::Tensor& x) const {
  check_shape(caller, "x", x, {-1, options.in_chans(), -1, -1});
}

void MobileNetV3Impl::check_device_features(const torch::Tensor& f) const {
  check_shape("MobileNetV3::forward_server", "f", f, {-1, device_channels_, -1, -1});
}

torch::Tensor MobileNetV3Impl::forward_features(torch::Tensor x, int64_t begin, int64_t end) {
  // `tokcom --precision bf16` outside training; the result leaves in the input's dtype.
  const AutocastScope autocast(forward_precision(is_training()), x.device());
  const auto dtype = x.scalar_type();
  // On the CPU the feature maps run channels-last (NHWC): oneDNN's convolutions take them as they
  // are, where NCHW maps are reordered to its blocked layout and back around every convolution
  // (a third of a training step at 128 px; docs/PERF.md). The maps a caller gets are made NCHW
  // where they leave the model (forward_device, forward_hidden), not between two halves.
  if (x.device().is_cpu()) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  for (auto it = features->begin() + begin; it != features->begin() + end; ++it)
    x = it->forward<torch::Tensor>(x);
  return x.to(dtype);
}

torch::Tensor MobileNetV3Impl::forward_device(const torch::Tensor& x) {
  check_input("MobileNetV3::forward_device", x);
  return forward_features(x, 0, kSplit).contiguous();
}

torch::Tensor MobileNetV3Impl::forward_server(const torch::Tensor& f) {
  check_device_features(f);
  torch::Tensor y = forward_features(f, kSplit, num_features());
  y = torch::adaptive_avg_pool2d(y, {1, 1}).flatten(1);
  const AutocastScope autocast(forward_precision(is_training()), y.device());
  return classifier->forward(y).to(f.scalar_type());
}

torch::Tensor MobileNetV3Impl::forward(const torch::Tensor& x) {
  check_input("MobileNetV3::forward", x);
  return forward_server(forward_features(x, 0, kSplit));
}

std::vector<std::pair<std::string, torch::Tensor>> MobileNetV3Impl::forward_hidden(
    const torch::Tensor& x) {
  check_input("MobileNetV3::forward_hidden", x);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  torch::Tensor y = x;
  for (int64_t i = 0; i < num_features(); ++i) {
    y = forward_features(y, i, i + 1);
    out.emplace_back(fmt::format("features.{}", i), y.contiguous());
  }
  return out;
}

std::vector<int64_t> MobileNetV3Impl::device_shape(int64_t height, int64_t width) const {
  // Odd kernels with padding (k−1)/2: each stride-s stage maps a side n to (n −
  // 1) / s + 1.
  const auto blocks = mobilenet_v3_blocks(options.variant());
  const int64_t strides[kSplit] = {2, blocks[0].stride, blocks[1].stride};
  for (int64_t s : strides) {
    height = (height - 1) / s + 1;
    width = (width - 1) / s + 1;
  }
  return {device_channels_, height, width};
}

MobileNetV3Options mobilenet_options_from_config(const Config& config) {
  MobileNetV3Options o;
  o.variant(config.get_string("mobilenet.variant"));
  o.num_classes(
      config.get_bool("mobilenet.reference_head") ? 1000 : config.get_int("mobilenet.num_classes"));
  o.in_chans(config.get_int("mobilenet.in_chans"));
  o.dropout(config.get_double("mobilenet.dropout"));
  o.width_mult(config.get_double("mobilenet.width_mult"));
  if (o.variant() != "small" && o.variant() != "large")
    throw ConfigError(
        fmt::format("mobilenet.variant: '{}' is not one of small, large", o.variant()));
  return o;
}

MobileNetV3 make_mobilenet(const Config& config) {
  return MobileNetV3(mobilenet_options_from_config(config));
}

std::string mobilenet_variant_from_model_name(const std::string& model) {
  if (model == "mobilenet-v3-small") return "small";
  if (model == "mobilenet-v3-large") return "large";
  throw ConfigError(
      fmt::format("model '{}' is not one of mobilenet-v3-small, mobilenet-v3-large", model));
}

TensorMap mobilenet_predict_outputs(MobileNetV3& model, const torch::Tensor& x, bool hidden) {
  torch::NoGradGuard no_grad;
  model->eval();
  TensorMap out;
  if (!hidden) {
    out["logits"] = model->forward(x).contiguous();
    return out;
  }
  // One pass: the stages' outputs, then pool + classifier on the last one.
  auto stages = model->forward_hidden(x);
  torch::Tensor pooled = torch::adaptive_avg_pool2d(stages.back().second, {1, 1}).flatten(1);
  out["logits"] = model->classifier->forward(pooled).contiguous();
  for (auto& [name, t] : stages) out["hidden." + name] = t.contiguous();
  return out;
}

}  // namespace tokcom

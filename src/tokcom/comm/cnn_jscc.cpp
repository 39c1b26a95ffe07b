#include "tokcom/comm/cnn_jscc.h"

#include <fmt/format.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include <cmath>
#include <cstdlib>

#include "tokcom/comm/jscc.h"
#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"

namespace tokcom {

ConvStep plan_conv_step(int64_t in_size, int64_t target) {
  ConvStep best;
  best.in_size = in_size;
  best.transposed = target >= in_size;
  int64_t best_error = -1;
  for (int64_t i = 1; i <= 11; ++i) {
    for (int64_t j = 1; j <= 11; ++j) {
      if (!best.transposed && i > in_size) continue;  // kernel larger than the input
      const int64_t out = best.transposed ? (in_size - 1) * j + i : (in_size - i) / j + 1;
      const int64_t error = std::abs(out - target);
      if (best_error < 0 || error < best_error) {  // strict: the first minimiser wins
        best_error = error;
        best.kernel = i;
        best.stride = j;
        best.out_size = out;
      }
    }
  }
  return best;
}

CnnJsccPlan plan_cnn_jscc(int64_t side, double ratio) {
  CnnJsccPlan plan;
  plan.side = symbols_per_token(side, ratio);  // max(⌊side·r⌋, 1)
  const auto down = linspace_int(static_cast<double>(side), static_cast<double>(plan.side), 4);
  const auto up = linspace_int(static_cast<double>(plan.side), static_cast<double>(side), 4);
  int64_t size = side;
  for (size_t k = 1; k < down.size(); ++k) {
    plan.encoder.push_back(plan_conv_step(size, down[k]));
    size = plan.encoder.back().out_size;
  }
  if (size != plan.side) {
    throw ConfigError(fmt::format("plan_cnn_jscc: side {} ratio {} reaches {}, not s = {}", side,
                                  ratio, size, plan.side));
  }
  for (size_t k = 1; k < up.size(); ++k) {
    plan.decoder.push_back(plan_conv_step(size, up[k]));
    size = plan.decoder.back().out_size;
  }
  if (size != side) {
    throw ConfigError(fmt::format("plan_cnn_jscc: decoder of side {} ratio {} ends at {}", side, ratio, size));
  }
  return plan;
}

namespace {
torch::nn::Sequential conv_stack(const std::vector<ConvStep>& steps, const std::vector<int64_t>& channels) {
  torch::nn::Sequential seq;
  for (size_t k = 0; k < steps.size(); ++k) {
    if (k > 0) seq->push_back(torch::nn::ReLU());  // none after the last layer
    const auto& s = steps[k];
    if (s.transposed) {
      seq->push_back(torch::nn::ConvTranspose2d(
          torch::nn::ConvTranspose2dOptions(channels[k], channels[k + 1], s.kernel).stride(s.stride)));
    } else {
      seq->push_back(torch::nn::Conv2d(
          torch::nn::Conv2dOptions(channels[k], channels[k + 1], s.kernel).stride(s.stride)));
    }
  }
  return seq;
}
}  // namespace

CnnJsccEncoderImpl::CnnJsccEncoderImpl(CnnJsccOptions options_)
    : options(std::move(options_)), plan(plan_cnn_jscc(options.side(), options.ratio())) {
  const std::vector<int64_t> channels(4, options.channels());  // channels stay C
  re = register_module("re", conv_stack(plan.encoder, channels));
  im = register_module("im", conv_stack(plan.encoder, channels));
}

torch::Tensor CnnJsccEncoderImpl::forward(const torch::Tensor& x) {
  check_shape("CnnJsccEncoder::forward", "x", x, {-1, options.channels(), options.side(), options.side()});
  return normalize_unit_norm(re->forward(x), im->forward(x));  // per row (last axis), METHOD §6.2
}

CnnJsccDecoderImpl::CnnJsccDecoderImpl(CnnJsccOptions options_)
    : options(std::move(options_)), plan(plan_cnn_jscc(options.side(), options.ratio())) {
  const auto channels = linspace_int(2.0 * static_cast<double>(options.channels()),
                                     static_cast<double>(options.channels()), 4);  // 48-40-32-24
  net = register_module("net", conv_stack(plan.decoder, channels));
}

torch::Tensor CnnJsccDecoderImpl::forward(const torch::Tensor& y) {
  check_dtype("CnnJsccDecoder::forward", "y", y, torch::kComplexFloat);
  check_shape("CnnJsccDecoder::forward", "y", y, {-1, options.channels(), plan.side, plan.side});
  return net->forward(torch::cat({torch::real(y), torch::imag(y)}, 1));
}

CnnJsccCodecImpl::CnnJsccCodecImpl(CnnJsccOptions options_) : options(std::move(options_)) {
  encoder = register_module("encoder", CnnJsccEncoder(options));
  decoder = register_module("decoder", CnnJsccDecoder(options));
}

}  // namespace tokcom

#include "tokcom/comm/jscc.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

#include <cmath>

#include "tokcom/core/check.h"
#include "tokcom/core/fused_linear.h"
#include "tokcom/core/errors.h"

namespace tokcom {

int64_t symbols_per_token(int64_t dim, double ratio) {
  if (dim <= 0 || !(ratio > 0) || ratio > 1) {
    throw ConfigError(fmt::format("symbols_per_token: dim {} ratio {}, expected dim > 0, 0 < ratio <= 1",
                                  dim, ratio));
  }
  return std::max<int64_t>(static_cast<int64_t>(std::floor(static_cast<double>(dim) * ratio)), 1);
}

std::vector<int64_t> linspace_int(double start, double end, int64_t n) {
  std::vector<int64_t> out;
  const double step = (end - start) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) {
    const double v = i == n - 1 ? end : start + static_cast<double>(i) * step;  // numpy: exact end
    out.push_back(static_cast<int64_t>(v));  // int() truncates toward zero
  }
  return out;
}

std::vector<int64_t> encoder_widths(int64_t dim, double ratio) {
  return linspace_int(static_cast<double>(dim), static_cast<double>(symbols_per_token(dim, ratio)), 4);
}

std::vector<int64_t> decoder_widths(int64_t dim, double ratio) {
  return linspace_int(2.0 * static_cast<double>(symbols_per_token(dim, ratio)), static_cast<double>(dim), 4);
}

namespace {
// Linear → ReLU → Linear → ReLU → Linear (no activation after the last layer), PyTorch init.
torch::nn::Sequential make_mlp(const std::vector<int64_t>& widths) {
  torch::nn::Sequential seq;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    if (i > 0) seq->push_back(torch::nn::ReLU());
    seq->push_back(FusedLinear(widths[i], widths[i + 1]));  // tokens are (B, T, D): one addmm each
  }
  return seq;
}
}  // namespace

JsccEncoderImpl::JsccEncoderImpl(JsccOptions options_) : options(std::move(options_)) {
  const auto widths = encoder_widths(options.dim(), options.ratio());
  re = register_module("re", make_mlp(widths));  // two separately initialised MLPs (METHOD §5.2)
  im = register_module("im", make_mlp(widths));
}

torch::Tensor JsccEncoderImpl::forward(const torch::Tensor& x) {
  check_shape("JsccEncoder::forward", "x", x, {-1, -1, options.dim()});
  return normalize_unit_norm(re->forward(x), im->forward(x));
}

JsccDecoderImpl::JsccDecoderImpl(JsccOptions options_) : options(std::move(options_)) {
  mlp = register_module("mlp", make_mlp(decoder_widths(options.dim(), options.ratio())));
}

torch::Tensor JsccDecoderImpl::forward(const torch::Tensor& y) {
  const int64_t d_r = options.symbols_per_token();
  check_dtype("JsccDecoder::forward", "y", y, torch::kComplexFloat);
  if (y.dim() != 3 || y.size(2) != d_r) {
    throw ShapeError(fmt::format(
        "JsccDecoder::forward: y has shape {}, expected [*, *, {}] ({} symbols/token is ratio {} at dim {})",
        shape_string(y.sizes().vec()), d_r, d_r, options.ratio(), options.dim()));
  }
  return mlp->forward(torch::cat({torch::real(y), torch::imag(y)}, -1));
}

JsccCodecImpl::JsccCodecImpl(JsccOptions options_) : options(std::move(options_)) {
  encoder = register_module("encoder", JsccEncoder(options));
  decoder = register_module("decoder", JsccDecoder(options));
}

JsccBankImpl::JsccBankImpl(JsccBankOptions options_) : options(std::move(options_)) {
  if (options.ratios().empty()) throw ConfigError("JsccBank: ratios is empty");
  for (size_t i = 0; i < options.ratios().size(); ++i) {
    const auto codec_options =
        JsccOptions().dim(options.dim()).ratio(options.ratios()[i]).reference_power(options.reference_power());
    codecs_.push_back(register_module(std::to_string(i), JsccCodec(codec_options)));
  }
}

JsccCodec JsccBankImpl::codec(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw UsageError(fmt::format("JsccBank: ratio_index {} out of range [0, {}) (ratios {})", index,
                                 size(), fmt::join(options.ratios(), ", ")));
  }
  return codecs_[static_cast<size_t>(index)];
}

double JsccBankImpl::ratio(int64_t index) const { return codec(index)->options.ratio(); }

int64_t JsccBankImpl::symbols_per_token(int64_t index) const {
  return codec(index)->options.symbols_per_token();
}

int64_t JsccBankImpl::index_of(double ratio) const {
  for (int64_t i = 0; i < size(); ++i) {
    if (std::abs(options.ratios()[static_cast<size_t>(i)] - ratio) <= 1e-12) return i;
  }
  throw ConfigError(fmt::format("JsccBank: ratio {} is not in the trained bank (ratios {})", ratio,
                                fmt::join(options.ratios(), ", ")));
}

Payload JsccBankImpl::encode(const torch::Tensor& x, int64_t index, const std::string& method,
                             const torch::Tensor& token_mask) {
  Payload p;
  p.method = method;
  p.ratio_index = index;
  p.symbols = codec(index)->encoder->forward(x);
  p.token_mask = token_mask;
  validate(p, "JsccBank::encode", symbols_per_token(index), /*check_values=*/false);
  return p;
}

torch::Tensor JsccBankImpl::decode(const Payload& received) {
  validate(received, "JsccBank::decode",
           received.ratio_index >= 0 && received.ratio_index < size() ? symbols_per_token(received.ratio_index) : -1,
           /*check_values=*/false);
  auto out = codec(received.ratio_index)->decoder->forward(received.symbols);
  return received.token_mask.defined() ? out * received.token_mask.unsqueeze(-1) : out;
}

}  // namespace tokcom

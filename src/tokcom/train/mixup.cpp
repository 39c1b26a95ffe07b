#include "tokcom/train/mixup.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"

namespace tokcom {
namespace {

// Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a, 1).
double sample_beta(std::mt19937_64& rng, double a) {
  std::gamma_distribution<double> gamma(a, 1.0);
  const double x = gamma(rng), y = gamma(rng);
  return x + y > 0.0 ? x / (x + y) : 0.5;
}

}  // namespace

MixOptions mix_options_from_config(const Config& config) {
  MixOptions o;
  o.mixup = config.get_double("train.mixup");
  o.cutmix = config.get_double("train.cutmix");
  o.prob = config.get_double("train.mix_prob");
  o.switch_prob = config.get_double("train.mix_switch_prob");
  for (const auto& [key, value] : {std::pair{"train.mixup", o.mixup}, std::pair{"train.cutmix", o.cutmix}}) {
    if (!(std::isfinite(value) && value >= 0.0 && value <= 1e3)) {
      throw ConfigError(fmt::format("{}: {} is not a Beta parameter; expected a finite value in [0, 1000] (0 = off)", key, value));
    }
  }
  for (const auto& [key, value] : {std::pair{"train.mix_prob", o.prob}, std::pair{"train.mix_switch_prob", o.switch_prob}}) {
    if (!(value >= 0.0 && value <= 1.0)) {
      throw ConfigError(fmt::format("{}: {} is not a probability; expected a value in [0, 1]", key, value));
    }
  }
  return o;
}

MixedBatch mix_batch(const torch::Tensor& images, const torch::Tensor& labels, int64_t classes, double smoothing,
                     const MixOptions& options, uint64_t seed) {
  check_shape("mix_batch", "images", images, {-1, -1, -1, -1});
  check_shape("mix_batch", "labels", labels, {images.size(0)});
  if (classes < 1) throw UsageError(fmt::format("mix_batch: classes must be ≥ 1, got {}", classes));
  MixedBatch out;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  if (options.enabled() && uniform(rng) < options.prob) {
    if (options.mixup > 0.0 && options.cutmix > 0.0) {
      out.cutmix = uniform(rng) < options.switch_prob;
      out.lambda = sample_beta(rng, out.cutmix ? options.cutmix : options.mixup);
    } else {
      out.cutmix = options.cutmix > 0.0;
      out.lambda = sample_beta(rng, out.cutmix ? options.cutmix : options.mixup);
    }
  }
  const torch::Tensor flipped = images.flip(0);
  if (out.lambda >= 1.0) {
    out.images = images;
  } else if (out.cutmix) {
    // timm's rand_bbox: a box of side ⌊side·√(1 − λ)⌋ centred uniformly, clipped to the image; λ is
    // then the share of the image the box left alone.
    const int64_t h = images.size(2), w = images.size(3);
    const double ratio = std::sqrt(1.0 - out.lambda);
    const int64_t cut_h = static_cast<int64_t>(static_cast<double>(h) * ratio);
    const int64_t cut_w = static_cast<int64_t>(static_cast<double>(w) * ratio);
    const int64_t cy = std::uniform_int_distribution<int64_t>(0, h - 1)(rng);
    const int64_t cx = std::uniform_int_distribution<int64_t>(0, w - 1)(rng);
    const int64_t y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, h), y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, h);
    const int64_t x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, w), x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, w);
    out.images = images.clone();
    using torch::indexing::Slice;
    out.images.index_put_({Slice(), Slice(), Slice(y0, y1), Slice(x0, x1)},
                          flipped.index({Slice(), Slice(), Slice(y0, y1), Slice(x0, x1)}));
    out.lambda = 1.0 - static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(h * w);
    out.box[0] = y0, out.box[1] = y1, out.box[2] = x0, out.box[3] = x1;
  } else {
    out.images = images * out.lambda + flipped * (1.0 - out.lambda);
  }
  // timm's mixup_target: on = 1 − ε + ε/C, off = ε/C.
  const double off = smoothing / static_cast<double>(classes), on = 1.0 - smoothing + off;
  const auto onehot = [&](const torch::Tensor& y) {
    return torch::full({y.size(0), classes}, off, images.options().dtype(torch::kFloat))
        .scatter_(1, y.to(images.device()).view({-1, 1}), on);
  };
  out.targets = onehot(labels) * out.lambda + onehot(labels.flip(0)) * (1.0 - out.lambda);
  return out;
}

torch::Tensor soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  check_shape("soft_cross_entropy", "targets", targets, {logits.size(0), logits.size(1)});
  return -(targets * torch::log_softmax(logits, 1)).sum(1).mean();
}

}  // namespace tokcom

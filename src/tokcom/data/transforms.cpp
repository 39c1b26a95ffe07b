#include "tokcom/data/transforms.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/image_codec.h"

namespace tokcom {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Window {
  double x0, y0, w, h;
};

// torchvision RandomResizedCrop.get_params (10 attempts, then the whole image for square inputs).
Window random_resized_crop(int height, int width, double scale_min, Rng& rng) {
  const double area = double(height) * width;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(scale_min, 1.0);
    const double ratio = std::exp(rng.uniform(std::log(3.0 / 4.0), std::log(4.0 / 3.0)));
    const int w = int(std::lround(std::sqrt(target * ratio)));
    const int h = int(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int i = int(rng.integer(height - h + 1));
      const int j = int(rng.integer(width - w + 1));
      return {double(j), double(i), double(w), double(h)};
    }
  }
  const double ratio = double(width) / height;  // fallback: centre crop clamped to the ratio range
  double w = width, h = height;
  if (ratio < 3.0 / 4.0) h = std::lround(w / (3.0 / 4.0));
  else if (ratio > 4.0 / 3.0) w = std::lround(h * (4.0 / 3.0));
  return {std::floor((width - w) / 2), std::floor((height - h) / 2), w, h};
}

// Zero-padded random crop: shifts the image by (dy, dx) ∈ [−pad, pad]², filling with 0.
void pad_crop(const uint8_t* src, int channels, int height, int width, int pad, Rng& rng,
              std::vector<uint8_t>& out) {
  const int dy = int(rng.integer(2 * pad + 1)) - pad, dx = int(rng.integer(2 * pad + 1)) - pad;
  const size_t plane = size_t(height) * width;
  out.assign(plane * channels, 0);
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y) {
      const int ys = y + dy;
      if (ys < 0 || ys >= height) continue;
      for (int x = 0; x < width; ++x) {
        const int xs = x + dx;
        if (xs >= 0 && xs < width) out[c * plane + size_t(y) * width + x] = src[c * plane + size_t(ys) * width + xs];
      }
    }
}

// ColorJitter(brightness, contrast, saturation = j, hue 0): factors in [1−j, 1+j], random order.
void color_jitter(uint8_t* img, int channels, int height, int width, double j, Rng& rng,
                  std::vector<uint8_t>& tmp) {
  if (j <= 0) return;
  std::array<RandOp, 3> ops = {RandOp::kBrightness, RandOp::kContrast, RandOp::kColor};
  for (int i = 2; i > 0; --i) std::swap(ops[i], ops[rng.integer(i + 1)]);  // random permutation
  for (RandOp op : ops) {
    const double factor = rng.uniform(std::max(0.0, 1.0 - j), 1.0 + j);
    apply_rand_op(op, factor - 1.0, img, channels, height, width, tmp);
  }
}

void normalise(float* dst, int channels, int64_t plane, const TransformOptions& o) {
  const bool norm = !o.mean.empty();
  for (int c = 0; c < channels; ++c) {
    const float scale = norm ? 1.f / (255.f * o.std[c]) : 1.f / 255.f;
    const float shift = norm ? o.mean[c] / o.std[c] : 0.f;
    float* p = dst + c * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = p[i] * scale - shift;
  }
}

void check_batch(const std::string& caller, const torch::Tensor& images) {
  check_shape(caller, "images", images, {-1, -1, -1, -1});
  check_dtype(caller, "images", images, torch::kUInt8);
}

}  // namespace

Rng::Rng(uint64_t seed) : gen_(at::make_generator<at::CPUGeneratorImpl>(seed)) {}
double Rng::uniform() {
  auto* g = gen_.get<at::CPUGeneratorImpl>();
  return double(g->random64() >> 11) * (1.0 / 9007199254740992.0);
}
double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
int64_t Rng::integer(int64_t n) { return n <= 1 ? 0 : std::min<int64_t>(int64_t(uniform() * n), n - 1); }

uint64_t batch_seed(uint64_t seed, int64_t epoch, int64_t batch) {
  return splitmix64(splitmix64(splitmix64(seed) ^ uint64_t(epoch)) ^ uint64_t(batch));
}

uint64_t rank_seed(uint64_t seed, int rank) { return rank == 0 ? seed : batch_seed(seed, -2, rank); }

void check_augment(const std::string& value, const std::string& key, const std::string& hint) {
  if (value != "none" && value != "crop-flip" && value != "randaugment")
    throw ConfigError(key + ": unknown '" + value + "', expected none, crop-flip or randaugment" + hint);
}

TransformOptions transform_options(const Config& cfg, const ImageDataset& dataset) {
  TransformOptions o;
  o.augment = cfg.get_string("data.augment");
  check_augment(o.augment, "data.augment");
  o.image_size = cfg.get_int("data.image_size");
  if (o.image_size < 1) throw ConfigError("data.image_size: must be positive");
  o.crop_scale_min = cfg.get_double("data.crop_scale_min");
  if (!(o.crop_scale_min > 0 && o.crop_scale_min <= 1))
    throw ConfigError("data.crop_scale_min: " + std::to_string(o.crop_scale_min) + " not in (0, 1]");
  o.crop_padding = int(cfg.get_int("data.crop_padding"));
  o.pad_crop = dataset.name == "fashion-mnist";
  o.randaugment_ops = int(cfg.get_int("data.randaugment_ops"));
  o.randaugment_magnitude = int(cfg.get_int("data.randaugment_magnitude"));
  if (o.randaugment_magnitude < 0 || o.randaugment_magnitude > 30)
    throw ConfigError("data.randaugment_magnitude: must be in 0..30 (31 bins)");
  o.color_jitter = cfg.get_double("data.color_jitter");
  o.flip = cfg.get_bool("data.flip");
  std::string norm = cfg.get_string("data.normalize");
  const int64_t channels = dataset.images.defined() ? dataset.images.size(1) : 3;
  if (norm == "auto") norm = dataset.name == "fashion-mnist" ? "fashion-mnist" : "imagenet";
  if (norm == "imagenet") {
    o.mean = {0.485f, 0.456f, 0.406f};
    o.std = {0.229f, 0.224f, 0.225f};
  } else if (norm == "fashion-mnist") {
    o.mean = {0.2860f, 0.2860f, 0.2860f};
    o.std = {0.3530f, 0.3530f, 0.3530f};
  } else if (norm != "none") {
    throw ConfigError("data.normalize: unknown '" + norm + "', expected auto, imagenet, fashion-mnist or none");
  }
  if (!o.mean.empty()) {
    if (channels == 1) o.mean = {(o.mean[0] + o.mean[1] + o.mean[2]) / 3}, o.std = {(o.std[0] + o.std[1] + o.std[2]) / 3};
  }
  return o;
}

void transform_sample(const uint8_t* src, int channels, int height, int width,
                      const TransformOptions& o, bool train, Rng* rng, float* dst,
                      TransformScratch& scratch) {
  const int s = int(o.image_size);
  Window win{0, 0, double(width), double(height)};
  bool flip = false;
  const uint8_t* img = src;
  if (train && o.augment != "none") {
    if (o.augment == "crop-flip") {
      if (o.pad_crop) {
        pad_crop(src, channels, height, width, o.crop_padding, *rng, scratch.a);
        img = scratch.a.data();
      } else {
        win = random_resized_crop(height, width, o.crop_scale_min, *rng);
      }
    } else {  // randaugment (METHOD §7 order: RandAugment → ColorJitter → resize → flip)
      scratch.a.assign(src, src + size_t(channels) * height * width);
      for (int k = 0; k < o.randaugment_ops; ++k) {
        const auto op = static_cast<RandOp>(rng->integer(kRandOpCount));
        double m = randaugment_magnitude(op, o.randaugment_magnitude, height, width);
        const bool is_signed = op != RandOp::kIdentity && op != RandOp::kPosterize &&
                               op != RandOp::kSolarize && op != RandOp::kAutoContrast &&
                               op != RandOp::kEqualize;
        if (is_signed && rng->coin()) m = -m;
        apply_rand_op(op, m, scratch.a.data(), channels, height, width, scratch.b);
      }
      color_jitter(scratch.a.data(), channels, height, width, o.color_jitter, *rng, scratch.b);
      img = scratch.a.data();
    }
    flip = o.flip && rng->coin();
  }
  resample_window(img, channels, height, width, win.x0, win.y0, win.w, win.h, s, s, flip, dst, scratch.f);
  normalise(dst, channels, int64_t(s) * s, o);
}

torch::Tensor train_transform(const torch::Tensor& images, const TransformOptions& options, uint64_t seed) {
  check_batch("train_transform", images);
  const torch::Tensor in = images.cpu().contiguous();
  const int64_t b = in.size(0), c = in.size(1), h = in.size(2), w = in.size(3), s = options.image_size;
  torch::Tensor out = torch::empty({b, c, s, s}, torch::kFloat32);
  Rng rng(seed);
  TransformScratch scratch;
  for (int64_t i = 0; i < b; ++i)
    transform_sample(in.data_ptr<uint8_t>() + i * c * h * w, int(c), int(h), int(w), options, true,
                     &rng, out.data_ptr<float>() + i * c * s * s, scratch);
  return out.to(images.device());
}

torch::Tensor eval_transform(const torch::Tensor& images, const TransformOptions& options) {
  check_batch("eval_transform", images);
  const torch::Tensor in = images.cpu().contiguous();
  const int64_t b = in.size(0), c = in.size(1), h = in.size(2), w = in.size(3), s = options.image_size;
  torch::Tensor out = torch::empty({b, c, s, s}, torch::kFloat32);
  TransformScratch scratch;
  for (int64_t i = 0; i < b; ++i)
    transform_sample(in.data_ptr<uint8_t>() + i * c * h * w, int(c), int(h), int(w), options, false,
                     nullptr, out.data_ptr<float>() + i * c * s * s, scratch);
  return out.to(images.device());
}

}  // namespace tokcom

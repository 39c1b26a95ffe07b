// Train/eval transforms of METHOD §7, adapted to small images, on uint8 (C, H, W) samples, written
// per sample in plain C++ (no per-op tensor dispatch: a 64-px image costs tens of µs).
//
//   none         resize to S x S → normalise                       (also the eval transform)
//   crop-flip    random-resized-crop (scale (crop_scale_min, 1), ratio (3/4, 4/3)) to S + flip;
//                Fashion-MNIST: zero-padded random crop (pad crop_padding) + flip, since a
//                28-px garment centred on black loses its shape under a 0.35-area crop
//   randaugment  RandAugment (num_ops 2, magnitude 9 of 31 bins, torchvision op set, nearest
//                geometry, fill 0) → ColorJitter (brightness, contrast, saturation factors in
//                [1−j, 1+j], random order) → resize to S → flip (METHOD §7; P25: not PIL bit-exact)
// Normalisation: (x/255 − mean)/std, ImageNet mean/std for 3 channels, (0.2860, 0.3530) for
// Fashion-MNIST. Every random draw comes from a torch CPU generator (mt19937) seeded per batch.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/core/config.h"

namespace tokcom {

struct ImageDataset;

struct TransformOptions {
  std::string augment = "crop-flip";  // none | crop-flip | randaugment
  int64_t image_size = 64;            // S
  std::vector<float> mean, std;       // per channel, in [0, 1] units; empty = no normalisation
  double crop_scale_min = 0.35;
  bool pad_crop = false;              // crop-flip as padded random crop (Fashion-MNIST)
  int crop_padding = 4;
  int randaugment_ops = 2;
  int randaugment_magnitude = 9;      // of 31 bins
  double color_jitter = 0.4;
  bool flip = true;
};

// ConfigError "<key>: unknown '<value>', expected none, crop-flip or randaugment<hint>" unless
// `value` is one of the augmentations (data.augment and every key that stands for it).
void check_augment(const std::string& value, const std::string& key, const std::string& hint = "");

// From data.* (augment, image_size, normalize, …); normalize=auto picks by the data set.
TransformOptions transform_options(const Config& cfg, const ImageDataset& dataset);

// Random numbers of one batch: a torch CPU generator (mt19937) seeded from (seed, epoch, batch).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  double uniform();                      // [0, 1)
  double uniform(double lo, double hi);  // [lo, hi)
  int64_t integer(int64_t n);            // {0, …, n−1}
  bool coin(double p = 0.5) { return uniform() < p; }

 private:
  at::Generator gen_;
};
// Mixes (seed, epoch, batch) into one 64-bit seed (splitmix64 chain).
uint64_t batch_seed(uint64_t seed, int64_t epoch, int64_t batch);
// Seed of data-parallel rank `rank` for its own draws (augmentation, dropout, budgets, channel noise):
// `seed` itself for rank 0, so one process draws what it always did.
uint64_t rank_seed(uint64_t seed, int rank);

// Per-thread buffers reused across samples.
struct TransformScratch {
  std::vector<uint8_t> a, b;
  std::vector<float> f;
};

// One sample: planar uint8 (C, H, W) → normalised float (C, S, S) at `dst`. train=false is the
// eval transform (resize + normalise); train=true applies options.augment drawing from `rng`.
void transform_sample(const uint8_t* src, int channels, int height, int width,
                      const TransformOptions& options, bool train, Rng* rng, float* dst,
                      TransformScratch& scratch);

// Batch forms. images uint8 (B, C, H, W) → float (B, C, S, S).
torch::Tensor train_transform(const torch::Tensor& images, const TransformOptions& options,
                              uint64_t seed);
torch::Tensor eval_transform(const torch::Tensor& images, const TransformOptions& options);

// RandAugment's single ops (exposed for tests), on planar uint8 (C, H, W) in place; `tmp` is
// scratch. magnitude as torchvision computes it for the op (signed where the op is signed).
enum class RandOp { kIdentity, kShearX, kShearY, kTranslateX, kTranslateY, kRotate, kBrightness,
                    kColor, kContrast, kSharpness, kPosterize, kSolarize, kAutoContrast, kEqualize };
constexpr int kRandOpCount = 14;
// torchvision's magnitude for `op` at bin `magnitude` of 31 (image side for translations).
double randaugment_magnitude(RandOp op, int magnitude, int height, int width);
void apply_rand_op(RandOp op, double magnitude, uint8_t* img, int channels, int height, int width,
                   std::vector<uint8_t>& tmp);

}  // namespace tokcom

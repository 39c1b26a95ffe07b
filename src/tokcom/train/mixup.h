// Mixup and CutMix of a training batch (timm's `Mixup` in batch mode, the DeiT recipe): with
// probability `prob` the batch is mixed with its own reverse (sample i with sample B−1−i), either
// blended (mixup, λ ~ Beta(mixup, mixup)) or with a box pasted in (CutMix, λ ~ Beta(cutmix, cutmix),
// then λ = 1 − box area / image area); targets become λ·onehot(y) + (1 − λ)·onehot(reversed y), with
// label smoothing folded in. One λ per step, drawn from the step's seed, the same on every rank; a
// rank mixes within its own shard (as timm does per process), so N ranks do not mix the same pairs as
// one process.
#pragma once
#include <torch/types.h>

#include <cstdint>

namespace tokcom {
class Config;

struct MixOptions {
  double mixup = 0.0;        // Beta α of mixup; 0 = no mixup
  double cutmix = 0.0;       // Beta α of CutMix; 0 = no CutMix
  double prob = 1.0;         // probability that a batch is mixed at all
  double switch_prob = 0.5;  // both on: probability of CutMix rather than mixup
  bool enabled() const { return (mixup > 0.0 || cutmix > 0.0) && prob > 0.0; }
};

// train.mixup, train.cutmix, train.mix_prob, train.mix_switch_prob; ConfigError naming the key
// for a negative or non-finite α or a probability outside [0, 1].
MixOptions mix_options_from_config(const Config& config);

struct MixedBatch {
  torch::Tensor images;   // (B, C, H, W), a new tensor (the input is not modified)
  torch::Tensor targets;  // (B, classes) float soft targets, each row summing to 1
  double lambda = 1.0;    // weight of each sample's own label (after the CutMix box correction)
  bool cutmix = false;
  int64_t box[4] = {0, 0, 0, 0};  // CutMix box rows [y0, y1), columns [x0, x1)
};

// Mixes `images` (B, C, H, W) with labels (B) int64 in [0, classes) under `options`, drawing from
// `seed`. Not mixed (probability 1 − prob, or options off): the images as given and the smoothed
// one-hot targets.
MixedBatch mix_batch(const torch::Tensor& images, const torch::Tensor& labels, int64_t classes, double smoothing,
                     const MixOptions& options, uint64_t seed);

// Cross-entropy against soft targets: mean over the batch of −Σ_c t_c · log softmax(logits)_c.
torch::Tensor soft_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace tokcom

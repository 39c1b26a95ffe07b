#include "tokcom/train/train_data.h"

#include <algorithm>

#include <fmt/format.h>

#include "tokcom/core/errors.h"
#include "tokcom/data/transforms.h"
#include "tokcom/train/mixup.h"

#include <cmath>
#include <limits>

namespace tokcom {

void check_training_ranges(const Config& config) {
  auto fail = [](const std::string& key, const std::string& value, const std::string& range) {
    throw ConfigError(fmt::format("{}: {}, expected {}", key, value, range));
  };
  auto int_at_least = [&](const std::string& key, int64_t low) {
    const int64_t v = config.get_int(key);
    if (v < low) fail(key, std::to_string(v), fmt::format("an integer ≥ {}", low));
    return v;
  };
  auto real_in = [&](const std::string& key, double low, double high, bool low_open, bool high_open) {
    const double v = config.get_double(key);
    const bool ok = std::isfinite(v) && (low_open ? v > low : v >= low) && (high_open ? v < high : v <= high);
    if (!ok)
      fail(key, fmt::format("{}", v), fmt::format("a finite number in {}{}, {}{}", low_open ? "(" : "[", low, high,
                                                  high_open ? ")" : "]"));
    return v;
  };
  // A run that could never end is a typo, not a plan (DeiT trains 300 epochs, the longest timm recipes
  // a few thousand).
  if (const int64_t epochs = int_at_least("train.epochs", 1); epochs > 100000) {
    fail("train.epochs", std::to_string(epochs), "an integer in [1, 100000]");
  }
  int_at_least("train.batch_size", 1);
  int_at_least("train.max_batches", 0);
  int_at_least("train.warmup_epochs", 0);
  // 0 is allowed: a run that must not move the weights (tests do that on purpose).
  real_in("train.lr", 0.0, 10.0, false, false);
  real_in("train.selection_lr", 0.0, 10.0, false, false);
  real_in("train.min_lr", 0.0, 10.0, false, false);
  real_in("train.label_smoothing", 0.0, 1.0, false, true);
  real_in("train.grad_clip", 0.0, std::numeric_limits<double>::max(), false, false);
  real_in("train.distill_kl", 0.0, 1e3, false, false);
  real_in("train.distill_hard", 0.0, 1.0, false, false);
  real_in("train.distill_tokens", 0.0, 1e3, false, false);
  real_in("train.distill_temperature", 0.0, 1e3, true, false);
  int_at_least("train.eval_batch_size", 1);
  real_in("train.weight_decay", 0.0, 10.0, false, false);
  mix_options_from_config(config);  // mixup / CutMix: their own checks
  real_in("train.jscc_distill_kl", 0.0, 1e3, false, false);
  for (const char* key : {"train.lambda_out", "train.lambda_in", "train.lambda_hard"}) real_in(key, 0.0, 1e6, false, false);
  int_at_least("train.lambda_hard_warmup_epochs", 0);
  real_in("train.hard_temperature", 0.0, 1e3, true, false);
  real_in("train.margin", 0.0, 1.0, false, false);
  const double alpha_min = real_in("train.alpha_min", 0.0, 1.0, true, false);
  if (real_in("train.alpha_max", 0.0, 1.0, true, false) < alpha_min) {
    fail("train.alpha_max", fmt::format("{}", config.get_double("train.alpha_max")),
         fmt::format("at least train.alpha_min ({})", alpha_min));
  }
}

TrainData::TrainData(const Config& config, uint64_t seed, int world, int rank_index)
    : train_set(load_dataset(config, "train")),
      val_set(load_dataset(config, config.get_string("train.eval_split"))),
      loader_options(tokcom::loader_options(config, /*train=*/true, seed)),
      world_size(world),
      rank(rank_index),
      config_(config) {
  loader_options.batch_size = config.get_int("train.batch_size");
  if (world_size > 1 && loader_options.batch_size % world_size != 0) {
    throw ConfigError(fmt::format("train.batch_size: {} is not divisible by the world size {} (each rank takes an "
                                  "equal share of every global batch)",
                                  loader_options.batch_size, world_size));
  }
  loader_options.shard_count = world_size;
  loader_options.shard_index = rank;
  loader = std::make_unique<Loader>(train_set, transform_options(config, train_set), loader_options);
  max_batches = config.get_int("train.max_batches");
  batches = max_batches > 0 ? std::min(max_batches, loader->batches_per_epoch()) : loader->batches_per_epoch();
  epochs = config.get_int("train.epochs");
}

ScheduleOptions TrainData::schedule(double lr, double lr_unit) const {
  ScheduleOptions s;
  s.kind = config_.get_string("train.schedule");
  s.lr = lr;
  s.min_lr = config_.get_double("train.min_lr") / std::max(lr_unit, 1e-12);
  s.warmup_steps = config_.get_int("train.warmup_epochs") * batches;
  s.total_steps = epochs * batches;
  learning_rate(s, 0);  // validates the kind before any work
  return s;
}

}  // namespace tokcom

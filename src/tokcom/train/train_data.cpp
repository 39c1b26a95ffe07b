#include "tokcom/train/train_data.h"

#include <algorithm>

#include <fmt/format.h>

#include "tokcom/core/errors.h"
#include "tokcom/data/transforms.h"

namespace tokcom {

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

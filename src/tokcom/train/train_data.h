// What every training stage reads from the `train` and `data` sections: the training and
// validation splits, the training loader (augmented, seeded), the batches per epoch (train.max_batches
// applied) and the lr schedule over them. Under data parallelism (train/distributed.h) the loader of
// rank k of N reads its 1/N of every global batch of train.batch_size.
#pragma once
#include <cstdint>
#include <memory>

#include "tokcom/core/config.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/loader.h"
#include "tokcom/train/schedule.h"

namespace tokcom {

// Refuses, before any data is read, training numbers no run can mean (each message names the key,
// the value and the range): train.epochs ≥ 1; train.batch_size ≥ 1; train.max_batches ≥ 0;
// train.lr, train.selection_lr and train.min_lr finite in [0, 10]; train.warmup_epochs ≥ 0;
// train.label_smoothing in [0, 1); train.grad_clip finite ≥ 0; train.distill_kl and
// train.distill_tokens in [0, 1000]; train.distill_temperature in (0, 1000].
void check_training_ranges(const Config& config);

class TrainData {
 public:
  // world_size > 1: train.batch_size must be divisible by it (ConfigError otherwise), so the ranks'
  // shards of every full batch are equal and together form the single-process batch.
  TrainData(const Config& config, uint64_t seed, int world_size = 1, int rank = 0);
  TrainData(const TrainData&) = delete;
  TrainData& operator=(const TrainData&) = delete;

  // train.schedule over epochs × batches; `lr` is the peak (1.0 = a multiplier on group lrs), and
  // train.min_lr is given in the same units. Validates the kind.
  ScheduleOptions schedule(double lr, double lr_unit) const;

  const ImageDataset train_set, val_set;
  LoaderOptions loader_options;
  std::unique_ptr<Loader> loader;
  int64_t batches = 0;  // per epoch
  int64_t epochs = 0;
  int64_t max_batches = 0;
  int world_size = 1, rank = 0;

 private:
  const Config& config_;
};

}  // namespace tokcom

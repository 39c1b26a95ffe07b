// What every training stage reads from the `train` and `data` sections: the training and
// validation splits, the training loader (augmented, seeded), the batches per epoch (train.max_batches
// applied) and the lr schedule over them.
#pragma once
#include <cstdint>
#include <memory>

#include "tokcom/core/config.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/loader.h"
#include "tokcom/train/schedule.h"

namespace tokcom {

class TrainData {
 public:
  TrainData(const Config& config, uint64_t seed);
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

 private:
  const Config& config_;
};

}  // namespace tokcom

// `tokcom train`: the backbone and adaptive stages (METHOD §4, 7) with atomic per-epoch checkpoints,
// --resume, a per-epoch CSV and progress.
#pragma once
#include <string>
#include <vector>

#include "tokcom/core/config.h"
#include "tokcom/core/csv.h"

namespace tokcom {

class Distributed;

struct TrainRunOptions {
  bool resume = false;   // continue from <out>/checkpoint if present
  uint64_t seed = 0;     // every random draw derives from (seed, epoch, step)
  int64_t stop_after_epochs = 0;  // > 0: stop (as if killed) after this many epochs — resume tests
  // Data parallelism (train/distributed.h): null or a world of one trains in this process alone. Otherwise
  // every rank runs train() with the same config and seed; rank k reads its 1/N of every global batch,
  // gradients are averaged over ranks before clipping, validation is split over ranks, and only rank 0
  // writes files.
  Distributed* distributed = nullptr;
  // JSCC stage: MB of the frozen device half's outputs kept for the bank's next pairs (jscc_stage.cpp,
  // FrozenCache; exact, so not part of the config and its digest); 0 = off. `tokcom train --frozen-cache-mb`.
  int64_t frozen_cache_mb = 4096;
  // Tests: set to the number of JSCC training batches whose frozen device output the stage reused.
  int64_t* frozen_batches_reused = nullptr;
};

struct EpochRecord {
  int64_t epoch = 0;
  double lr = 0, loss = 0, ce = 0, budget = 0, train_accuracy = 0, images_per_s = 0;
  double distill = 0;                      // weighted distillation terms (0 without a teacher)
  double val_accuracy = 0;                 // static path (α = 1) or the backbone
  std::vector<double> kept_fraction;       // adaptive stage: hard kept fraction of the last block at each eval α
  std::vector<double> val_accuracy_alpha;  // adaptive stage: hard-mode accuracy at each eval α
};

// Trains the stage named by train.stage; writes <train.out>/{config.yaml, epochs.csv, model.safetensors,
// checkpoint/}. Returns the per-epoch records (all epochs, including resumed ones).
std::vector<EpochRecord> train(const Config& config, const TrainRunOptions& options);
// epochs.csv: its own columns, then distill_loss (with a teacher), then accuracy_hard_a<α>,kept_fraction_a<α>
// per eval α (numbers).
const csv::Schema& epochs_schema();

}  // namespace tokcom

// train/loop.h — the one training loop. Every stage (backbone, adaptive, the JSCC pairs) supplies
// its step (a batch → loss, logits and its own metrics) and what it records after an epoch; the
// loop owns everything else, once: the learning rate of each step, the batch shard of this rank,
// zero-grad / backward / the all-reduced, clipped optimiser step, the per-image means of the
// epoch's metrics over every rank, progress, resume from a checkpoint, rank 0's weights on every
// rank, and after each epoch the record, the CSV, the checkpoint and a requested stop.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokcom/data/loader.h"
#include "tokcom/train/checkpoint.h"
#include "tokcom/train/distributed.h"
#include "tokcom/train/train_data.h"
#include "tokcom/train/trainer.h"

namespace tokcom {

// One batch as the step sees it: this rank's rows on the training device.
struct StepInput {
  int64_t epoch = 0, step_in_epoch = 0, step = 0;  // step: global index (epoch · batches + step_in_epoch)
  torch::Tensor images, labels;
  Loader::Shard part;  // rows [begin, end) of the global batch of `global` rows
};

// What a step returns; the loop backpropagates `loss`.
struct StepOutput {
  torch::Tensor loss;                // scalar: the batch mean
  torch::Tensor logits;              // (b, classes): the training accuracy
  std::vector<torch::Tensor> extra;  // scalar batch means of the stage's own metrics (CE, budget term)
};

using TrainStep = std::function<StepOutput(const StepInput&)>;

// Per-image means over the epoch and over every rank.
struct EpochMetrics {
  double lr = 0;  // report_lr × the schedule's multiplier at the epoch's last step
  double loss = 0, train_accuracy = 0;
  std::vector<double> extra;  // one per StepOutput::extra
  double images_per_s = 0;    // Σ over ranks
};

struct EpochLoop {
  std::string label;  // progress: "<label> epoch e/E"
  torch::optim::Optimizer* optimizer = nullptr;
  std::vector<double> base_lr;                  // per parameter group: lr = base · multiplier(step)
  std::function<double(int64_t)> multiplier;    // of the global step (train/schedule.h)
  double report_lr = 1.0;                       // EpochMetrics::lr = report_lr · multiplier
  std::vector<torch::Tensor> trained;           // what the gradient all-reduce and clipping cover
  double clip = 0;                              // global grad-norm clip, 0 = off
  Loader* loader = nullptr;
  int64_t batches = 0, epochs = 0;              // per epoch; the stage's total
  torch::Device device = torch::kCPU;
  Distributed* dist = nullptr;
  size_t extra = 0;                             // StepOutput::extra.size()
  // Before each step the global generator is seeded from (seed, rank, epoch, step), so dropout and
  // stochastic depth draw the same on a resumed run as on an uninterrupted one.
  uint64_t seed = 0;

  // One epoch of `step` over the loader (the caller sets training mode first). UsageError naming
  // the epoch and step when a loss is not finite (before it is backpropagated).
  EpochMetrics run(int64_t epoch, const TrainStep& step) const;
};

// The loop over `data`'s loader, batches and epochs; the stage then sets base_lr, multiplier,
// report_lr and extra.
EpochLoop make_epoch_loop(std::string label, torch::optim::Optimizer& optimizer, std::vector<torch::Tensor> trained,
                          double clip, TrainData& data, torch::Device device, Distributed& dist, uint64_t seed);

// Loads `dir`'s checkpoint into module and optimiser when `resume` and one exists (ConfigError
// when it was made with another config); warns that a checkpoint is ignored without --resume.
CheckpointState resume_or_start(const std::string& dir, bool resume, torch::nn::Module& module,
                                torch::optim::Optimizer& optimizer, const std::string& digest, const std::string& label);

// Several ranks: every rank must resume from the same epoch; rank 0's parameters and buffers are
// copied to all; each rank then draws from its own stream (rank 0 keeps the single-process one).
void sync_ranks(Distributed& dist, torch::nn::Module& module, int64_t epoch, uint64_t seed);

// After epoch `epoch` (0-based): appends `record` to the checkpoint state, then rank 0 calls
// `write_csv` and saves the checkpoint. true when run.stop_after_epochs asks to stop here.
bool finish_epoch(int64_t epoch, int64_t epochs, const nlohmann::json& record, CheckpointState& ck,
                  const std::string& ck_dir, const torch::nn::Module& module, const torch::optim::Optimizer& optimizer,
                  const std::string& digest, Distributed& dist, const TrainRunOptions& run,
                  const std::function<void()>& write_csv);

// The optimiser of a stage: train.optimizer (adam | adamw; Adam takes no weight decay) over
// parameter groups of their own lr and weight decay. ConfigError for another name.
struct ParamGroup {
  std::vector<torch::Tensor> params;
  double lr = 0, weight_decay = 0;
};
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name, const std::vector<ParamGroup>& groups);

}  // namespace tokcom

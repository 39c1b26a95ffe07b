// Accuracy and kept tokens of a (possibly adaptive) ViT over a data split at several budgets
// (`tokcom eval`, and the per-epoch evaluation of training).
#pragma once
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "tokcom/core/config.h"
#include "tokcom/core/csv.h"
#include "tokcom/data/dataset.h"
#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/model/vit.h"

namespace tokcom {

struct EvalOptions {
  std::vector<double> alphas = {1.0};      // α = 1: static path, no budget token (METHOD §3.1)
  SelectionMode mode = SelectionMode::kHard;
  int64_t batch_size = 256;
  int64_t max_batches = 0;                 // > 0: this many batches of a seeded random order of the split
  c10::Device device = c10::Device("cpu");
};

struct EvalRow {
  double alpha = 1.0;
  std::string mode;                 // soft | hard
  double accuracy = 0;              // top-1, fraction
  double kept_fraction = 1;         // kept patch tokens after the last adaptive block / patches
  std::vector<int64_t> blocks;      // adaptive block indices
  std::vector<double> kept_mean, kept_std;  // kept patch tokens per adaptive block (over images)
  double images_per_s = 0;
  int64_t n_images = 0;
};

std::vector<EvalRow> evaluate(Vit& model, const ImageDataset& data, const Config& config, const EvalOptions& options);
// A MobileNetV3 classifier: one row per α (all equal, nothing selects tokens), no kept counts.
std::vector<EvalRow> evaluate(MobileNetV3& model, const ImageDataset& data, const Config& config, const EvalOptions& options);

// CSV: alpha,mode,accuracy,kept_fraction,kept_mean_block{i},kept_std_block{i}...,images_per_s,n_images (atomic).
const csv::Schema& eval_schema();  // its own columns; the rest (per block, speed, count) are numbers
void write_eval_csv(const std::string& path, const std::vector<EvalRow>& rows);

std::string mode_name(SelectionMode mode);
SelectionMode parse_mode(const std::string& name);  // "soft" | "hard", else UsageError

}  // namespace tokcom

// eval/link_eval.h — one pass over a data split through a split model for many (decision,
// channel, SNR) points: per batch the device half runs once per distinct budget (every ratio index of
// it encoded from the same tokens, DeviceHalf::encode_each_ratio), the channel and the server half
// once per point. Noise is drawn from a generator seeded by (seed, point id,
// batch), so a point's result does not depend on which other points run beside it (sweep shards
// merge to the unsharded result) nor on the order they run in.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/comm/channel.h"
#include "tokcom/comm/zeta.h"
#include "tokcom/data/dataset.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

class Config;

struct LinkPoint {
  Decision decision;
  const Channel* channel = nullptr;  // not owned
  double snr_db = 0.0;
  uint64_t id = 0;                   // seeds the noise: the point's index in the full grid
};

struct LinkResult {
  int64_t correct = 0, n_images = 0;
  double kept_sum = 0.0;     // Σ kept patch tokens
  double symbols_sum = 0.0;  // Σ complex channel uses per image (what ζ counts)
  double accuracy() const { return n_images ? static_cast<double>(correct) / n_images : 0.0; }
  double kept_tokens() const { return n_images ? kept_sum / n_images : 0.0; }
  double symbols() const { return n_images ? symbols_sum / n_images : 0.0; }
};

struct LinkEvalOptions {
  int64_t batch_size = 256;
  int64_t max_batches = 0;  // > 0: this many batches of a seeded random order of the split (the same for every call)
  uint64_t seed = 0;
  c10::Device device = c10::Device("cpu");
  std::string progress_label;  // empty: no progress line
};

// Evaluation transform of `config` on `data` (no augmentation), one result per point.
std::vector<LinkResult> evaluate_link(SplitModel& model, const std::vector<LinkPoint>& points, const ImageDataset& data,
                                      const Config& config, const LinkEvalOptions& options);

}  // namespace tokcom

// eval/digital_eval.h — the digital baselines over a grid of (codec, ζ, SNR) cells (METHOD §6.3, Q7):
// each image is compressed to fit B = ζ·n·log₂(1 + SNR) bits (or the practical 5G NR rate), a
// fitting image is received perfectly and classified by the clean backbone, a lost one counts as
// misclassified. Per image each distinct (codec, chosen setting) is decoded once and classified in
// batches of about 128 such images, so a grid of many budgets costs one classification per setting.
#pragma once
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/comm/digital/capacity.h"
#include "tokcom/comm/digital/codec.h"
#include "tokcom/comm/digital/per_image.h"
#include "tokcom/data/dataset.h"
#include "tokcom/eval/link_eval.h"
#include "tokcom/model/vit.h"

namespace tokcom {

class Config;

struct DigitalPoint {
  std::string codec;  // resize | jpeg | webp | avif
  digital::CapacityModel capacity = digital::CapacityModel::kShannon;
  double zeta = 0.0, snr_db = 0.0;
};

struct DigitalEvalOptions {
  int64_t max_images = 0;  // > 0: a seeded random sample of this many images (the sweep's own)
  int64_t input_values = 0;  // n of the capacity (C·H·W of the model input)
  c10::Device device = c10::Device("cpu");
  std::string progress_label;
};

// `method` name of a point in CSVs: the codec, with "/practical" for the practical link.
std::string digital_method_name(const DigitalPoint& point);

// One result per point: correct, n_images, symbols_sum = ζ·n per image (the channel uses), kept_sum
// = 0. per_image (optional) gets one row per (point, image).
std::vector<LinkResult> evaluate_digital(Vit& backbone, const std::vector<DigitalPoint>& points,
                                         const ImageDataset& data, const Config& config,
                                         const digital::CodecOptions& codec_options, const DigitalEvalOptions& options,
                                         std::vector<digital::PerImageRow>* per_image = nullptr);

}  // namespace tokcom

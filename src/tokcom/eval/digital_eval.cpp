#include "tokcom/eval/digital_eval.h"

#include <map>
#include <memory>

#include <fmt/format.h>
#include <torch/torch.h>

#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/transforms.h"

namespace tokcom {

std::string digital_method_name(const DigitalPoint& p) {
  return p.capacity == digital::CapacityModel::kPractical ? p.codec + "/practical" : p.codec;
}

std::vector<LinkResult> evaluate_digital(Vit& backbone, const std::vector<DigitalPoint>& points,
                                         const ImageDataset& data, const Config& config,
                                         const digital::CodecOptions& codec_options, const DigitalEvalOptions& o,
                                         std::vector<digital::PerImageRow>* per_image) {
  if (o.input_values <= 0) throw UsageError("evaluate_digital: input_values must be C·H·W > 0");
  // One codec object per name; per codec the distinct budgets of its points (in point order).
  std::map<std::string, std::unique_ptr<digital::DigitalCodec>> codecs;
  std::vector<int64_t> budgets(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    if (!codecs.count(points[i].codec)) codecs[points[i].codec] = digital::make_codec(points[i].codec, codec_options);
    budgets[i] = digital::budget_bits_of(
        digital::link_bits(points[i].capacity, points[i].zeta, o.input_values, points[i].snr_db));
  }
  torch::NoGradGuard no_grad;
  const bool was_training = backbone->is_training();
  backbone->eval();
  const TransformOptions transform = transform_options(config, data);
  const int64_t n = o.max_images > 0 ? std::min(o.max_images, data.size()) : data.size();
  // A subset is the same seeded random sample the neural methods' sweep takes (link_eval), not the
  // first images of a split stored class by class.
  torch::Tensor order = torch::arange(data.size(), torch::kInt64);
  if (n < data.size()) {
    LoaderOptions lo = loader_options(config, /*train=*/false, /*seed=*/0);
    lo.shuffle = true;
    order = Loader(data, transform, lo).epoch_order(0);
  }
  if (n == 0) throw DataError("evaluate_digital: the split '" + data.split + "' of " + data.name + " has no images");
  std::vector<LinkResult> results(points.size());
  std::unique_ptr<Progress> progress;
  if (!o.progress_label.empty()) progress = std::make_unique<Progress>(o.progress_label, n, "img");
  const int64_t channels = data.images.size(1), height = data.images.size(2), width = data.images.size(3);
  // Every codec encodes an image at all its budgets; each distinct (codec, setting) that fits is decoded
  // once (it decodes to the same image at every budget) and becomes a row of a batch, classified with
  // the rows of the next images once about kRows are pending (a batch-1 forward per setting left the
  // cores mostly idle).
  constexpr int64_t kRows = 128;
  struct Cell {
    size_t point;
    int64_t image;
    int64_t row;  // in the pending batch; −1 when lost
    digital::Encoded encoded;
  };
  std::vector<Cell> cells;
  std::vector<torch::Tensor> received;
  std::vector<int64_t> row_labels;
  int64_t pending_images = 0;
  auto flush = [&] {
    torch::Tensor correct_rows = torch::zeros({0}, torch::kBool);
    if (!received.empty()) {
      const torch::Tensor x = eval_transform(torch::stack(received), transform).to(o.device);
      const torch::Tensor labels = torch::tensor(row_labels, torch::kInt64).to(o.device);
      correct_rows = (backbone->forward(x).logits.argmax(1) == labels).to(torch::kCPU).contiguous();
    }
    const auto correct_row = correct_rows.accessor<bool, 1>();
    for (const Cell& c : cells) {
      const DigitalPoint& p = points[c.point];
      LinkResult& r = results[c.point];
      r.correct += c.row >= 0 && correct_row[c.row];
      r.n_images += 1;
      r.symbols_sum += p.zeta * static_cast<double>(o.input_values);
      if (per_image) {
        per_image->push_back(digital::per_image_row(digital_method_name(p), std::to_string(c.image), p.zeta,
                                                    p.snr_db, c.encoded));
      }
    }
    if (progress) progress->tick(pending_images);
    cells.clear();
    received.clear();
    row_labels.clear();
    pending_images = 0;
  };
  for (int64_t k = 0; k < n; ++k) {
    const int64_t img = order[k].item<int64_t>();
    const torch::Tensor image = data.images[img];  // uint8 (C, H, W)
    const int64_t label = data.labels[img].item<int64_t>();
    for (const auto& [name, codec] : codecs) {
      std::vector<size_t> mine;
      std::vector<int64_t> wanted;
      for (size_t i = 0; i < points.size(); ++i) {
        if (points[i].codec == name) mine.push_back(i), wanted.push_back(budgets[i]);
      }
      std::vector<digital::Encoded> encoded = codec->encode_many(image, wanted);
      std::map<int64_t, int64_t> row_of_choice;
      for (size_t j = 0; j < mine.size(); ++j) {
        digital::Encoded& e = encoded[j];
        int64_t row = -1;
        if (e.fits) {
          auto it = row_of_choice.find(e.choice);
          if (it == row_of_choice.end()) {
            it = row_of_choice.emplace(e.choice, static_cast<int64_t>(received.size())).first;
            received.push_back(codec->decode(e, channels, height, width));
            row_labels.push_back(label);
          }
          row = it->second;
        }
        cells.push_back(Cell{mine[j], img, row, std::move(e)});
      }
    }
    ++pending_images;
    if (static_cast<int64_t>(received.size()) >= kRows || k + 1 == n) flush();
  }
  if (progress) progress->finish();
  if (was_training) backbone->train();
  return results;
}

}  // namespace tokcom

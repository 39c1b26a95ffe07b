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
      const std::vector<digital::Encoded> encoded = codec->encode_many(image, wanted);
      std::map<int64_t, bool> correct_by_choice;  // a setting decodes to the same image at every budget
      for (size_t j = 0; j < mine.size(); ++j) {
        const digital::Encoded& e = encoded[j];
        bool correct = false;
        if (e.fits) {
          auto it = correct_by_choice.find(e.choice);
          if (it == correct_by_choice.end()) {
            const torch::Tensor received = codec->decode(e, channels, height, width).unsqueeze(0);
            const torch::Tensor x = eval_transform(received, transform).to(o.device);
            const bool ok = backbone->forward(x).logits.argmax(1).item<int64_t>() == label;
            it = correct_by_choice.emplace(e.choice, ok).first;
          }
          correct = it->second;
        }
        LinkResult& r = results[mine[j]];
        r.correct += correct;
        r.n_images += 1;
        r.symbols_sum += points[mine[j]].zeta * static_cast<double>(o.input_values);
        if (per_image) {
          per_image->push_back(digital::per_image_row(digital_method_name(points[mine[j]]), std::to_string(img),
                                                      points[mine[j]].zeta, points[mine[j]].snr_db, e));
        }
      }
    }
    if (progress) progress->tick(1);
  }
  if (progress) progress->finish();
  if (was_training) backbone->train();
  return results;
}

}  // namespace tokcom

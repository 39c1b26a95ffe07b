#include "tokcom/eval/link_eval.h"

#include <map>
#include <utility>

#include <fmt/format.h>
#include <torch/torch.h>

#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/transforms.h"

namespace tokcom {

std::vector<LinkResult> evaluate_link(SplitModel& model, const std::vector<LinkPoint>& points, const ImageDataset& data,
                                      const Config& config, const LinkEvalOptions& o) {
  if (!model.device || !model.server) throw UsageError("evaluate_link: the split model has no device or server half");
  for (const auto& p : points) {
    if (p.channel == nullptr) throw UsageError("evaluate_link: a point has no channel");
    validate_decision(p.decision, model.device->num_ratios(), "evaluate_link");
  }
  // Distinct decisions, in first-seen order, grouped by budget: per batch the device half runs once per
  // budget (DeviceHalf::encode_each_ratio encodes every ratio index of it from the same tokens), and
  // each decision's payload goes through all of its points' channels.
  std::vector<std::pair<double, int64_t>> decisions;
  std::vector<size_t> decision_of(points.size());
  std::vector<std::pair<double, std::vector<size_t>>> budgets;  // budget → its decisions
  for (size_t i = 0; i < points.size(); ++i) {
    const auto key = std::make_pair(points[i].decision.budget, points[i].decision.ratio_index);
    size_t d = 0;
    while (d < decisions.size() && decisions[d] != key) ++d;
    if (d == decisions.size()) {
      decisions.push_back(key);
      size_t g = 0;
      while (g < budgets.size() && budgets[g].first != key.first) ++g;
      if (g == budgets.size()) budgets.push_back({key.first, {}});
      budgets[g].second.push_back(d);
    }
    decision_of[i] = d;
  }

  torch::NoGradGuard no_grad;
  LoaderOptions lo = loader_options(config, /*train=*/false, /*seed=*/0);
  lo.batch_size = o.batch_size;
  lo.drop_last = false;
  // A subset of the split must be a random sample of it, not its first images: a split stored class
  // by class (Imagenette folders) would otherwise be judged on one or two classes. Fixed seed: every
  // cell, shard and method sees the same images.
  lo.shuffle = o.max_batches > 0;
  Loader loader(data, transform_options(config, data), lo);
  int64_t batches = loader.batches_per_epoch();
  if (o.max_batches > 0) batches = std::min(batches, o.max_batches);
  std::vector<LinkResult> results(points.size());
  std::unique_ptr<Progress> progress;
  if (!o.progress_label.empty()) progress = std::make_unique<Progress>(o.progress_label, batches, "batch");

  Batch batch;
  loader.start_epoch(0);
  for (int64_t b = 0; b < batches && loader.next(batch); ++b) {
    const torch::Tensor images = batch.images.to(o.device);
    const torch::Tensor labels = batch.labels;
    const int64_t n = images.size(0);
    for (const auto& [budget, group] : budgets) {
      std::vector<int64_t> ratio_indices;
      for (size_t d : group) ratio_indices.push_back(decisions[d].second);
      DeviceStats stats;
      const std::vector<Payload> payloads = model.device->encode_each_ratio(images, budget, ratio_indices, &stats);
      const double kept = stats.kept_patches.to(torch::kCPU).sum().item<double>();
      for (size_t j = 0; j < group.size(); ++j) {
        const Payload& sent = payloads[j];
        const double symbols = symbols_per_image(sent).sum().item<double>();
        for (size_t i = 0; i < points.size(); ++i) {
          if (decision_of[i] != group[j]) continue;
          torch::Generator rng =
              make_generator(batch_seed(o.seed ^ (0x5EEDull + points[i].id * 0x9E3779B97F4A7C15ull), 0, b));
          const torch::Tensor snr = torch::full({n}, points[i].snr_db, torch::dtype(torch::kFloat).device(o.device));
          const Received received = points[i].channel->apply(sent, snr, rng);
          const torch::Tensor pred = model.server->decode(received.payload).argmax(1).to(torch::kCPU);
          results[i].correct += pred.eq(labels).sum().item<int64_t>();
          results[i].n_images += n;
          results[i].kept_sum += kept;
          results[i].symbols_sum += symbols;
        }
      }
    }
    if (progress) progress->tick(1);
  }
  if (progress) progress->finish();
  if (!points.empty() && results.front().n_images == 0) {
    throw DataError("evaluate_link: the split '" + data.split + "' of " + data.name + " has no images");
  }
  return results;
}

}  // namespace tokcom

#include "tokcom/eval/evaluate.h"

#include <chrono>
#include <cmath>
#include <functional>

#include <torch/torch.h>
#include <fmt/format.h>

#include "tokcom/core/errors.h"
#include "tokcom/data/loader.h"

namespace tokcom {

std::string mode_name(SelectionMode mode) { return mode == SelectionMode::kSoft ? "soft" : "hard"; }

SelectionMode parse_mode(const std::string& name) {
  if (name == "soft") return SelectionMode::kSoft;
  if (name == "hard") return SelectionMode::kHard;
  throw UsageError("--mode: '" + name + "', expected soft or hard");
}

namespace {

// forward(images, budget, mode) → logits and per-block stats; `patches` and `blocks` describe the
// token selection (0 and none for models without it).
using Forward = std::function<VitOutput(const torch::Tensor&, const torch::Tensor&, SelectionMode)>;

std::vector<EvalRow> evaluate_with(const Forward& forward, torch::nn::Module& model, int64_t patches,
                                   const std::vector<int64_t>& blocks, const ImageDataset& data, const Config& config,
                                   const EvalOptions& o) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  LoaderOptions lo = loader_options(config, /*train=*/false, /*seed=*/0);
  lo.batch_size = o.batch_size;
  lo.drop_last = false;
  lo.shuffle = o.max_batches > 0;  // a subset is a seeded random sample, not the first (class-sorted) images
  Loader loader(data, transform_options(config, data), lo);
  std::vector<EvalRow> rows;
  for (double alpha : o.alphas) {
    if (!(alpha > 0.0 && alpha <= 1.0)) throw UsageError(fmt::format("budget α = {} is outside (0, 1]", alpha));
    EvalRow row;
    row.alpha = alpha;
    row.mode = mode_name(o.mode);
    row.blocks = blocks;
    const size_t nb = row.blocks.size();
    std::vector<double> sum(nb, 0.0), sumsq(nb, 0.0);
    int64_t correct = 0, seen = 0, batches = 0;
    double seconds = 0;
    Batch batch;
    loader.start_epoch(0);
    for (; loader.next(batch); ++batches) {
      if (o.max_batches > 0 && batches >= o.max_batches) break;
      const torch::Tensor images = batch.images.to(o.device);
      const int64_t b = images.size(0);
      torch::Tensor budget;
      if (alpha < 1.0 && nb > 0) budget = torch::full({b}, alpha, images.options());
      const auto t0 = std::chrono::steady_clock::now();
      VitOutput out = forward(images, budget, o.mode);
      const torch::Tensor pred = out.logits.argmax(1).cpu();
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      correct += pred.eq(batch.labels).sum().item<int64_t>();
      seen += b;
      for (size_t k = 0; k < nb; ++k) {
        torch::Tensor kept = k < out.stats.size() ? out.stats[k].kept.to(torch::kDouble).cpu()
                                                  : torch::full({b}, static_cast<double>(patches), torch::kDouble);
        sum[k] += kept.sum().item<double>();
        sumsq[k] += kept.square().sum().item<double>();
      }
    }
    if (seen == 0) throw DataError("evaluate: the split '" + data.split + "' of " + data.name + " has no images");
    row.n_images = seen;
    row.accuracy = static_cast<double>(correct) / seen;
    row.images_per_s = seconds > 0 ? seen / seconds : 0.0;
    for (size_t k = 0; k < nb; ++k) {
      const double mean = sum[k] / seen;
      row.kept_mean.push_back(mean);
      row.kept_std.push_back(std::sqrt(std::max(0.0, sumsq[k] / seen - mean * mean)));
    }
    row.kept_fraction = nb > 0 ? row.kept_mean.back() / static_cast<double>(patches) : 1.0;
    rows.push_back(row);
  }
  if (was_training) model.train();
  return rows;
}

}  // namespace

std::vector<EvalRow> evaluate(Vit& model, const ImageDataset& data, const Config& config, const EvalOptions& o) {
  const Forward forward = [&model](const torch::Tensor& x, const torch::Tensor& budget, SelectionMode mode) {
    return model->forward(x, budget, mode);
  };
  return evaluate_with(forward, *model, model->options.num_patches(), model->options.adaptive_blocks(), data, config, o);
}

std::vector<EvalRow> evaluate(MobileNetV3& model, const ImageDataset& data, const Config& config, const EvalOptions& o) {
  const Forward forward = [&model](const torch::Tensor& x, const torch::Tensor&, SelectionMode) {
    return VitOutput{model->forward(x), {}};
  };
  return evaluate_with(forward, *model, 0, {}, data, config, o);
}

const csv::Schema& eval_schema() {
  static const csv::Schema s =
      csv::schema("an eval CSV written by `tokcom eval`", "alpha,mode,accuracy,kept_fraction", {"mode"}, {}, /*open=*/true);
  return s;
}

void write_eval_csv(const std::string& path, const std::vector<EvalRow>& rows) {
  std::vector<std::string> extra;
  const std::vector<int64_t> blocks = rows.empty() ? std::vector<int64_t>{} : rows.front().blocks;
  for (int64_t b : blocks) {
    extra.push_back(fmt::format("kept_mean_block{}", b));
    extra.push_back(fmt::format("kept_std_block{}", b));
  }
  extra.push_back("images_per_s");
  extra.push_back("n_images");
  csv::Writer out(eval_schema(), extra);
  for (const auto& r : rows) {
    out.number(r.alpha).text(r.mode).fixed(r.accuracy, 6).fixed(r.kept_fraction, 6);
    for (size_t k = 0; k < r.kept_mean.size(); ++k) out.fixed(r.kept_mean[k], 4).fixed(r.kept_std[k], 4);
    out.fixed(r.images_per_s, 2).integer(r.n_images).end_row();
  }
  out.write(path);
}

}  // namespace tokcom

#include "tokcom/eval/budget_calibration.h"

#include <algorithm>

#include <torch/torch.h>
#include <fmt/format.h>

#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"

namespace tokcom {

std::vector<KeptPoint> measure_kept_curve(Vit& model, const torch::Tensor& images, const std::vector<double>& budgets,
                                          int64_t batch_size) {
  const auto& blocks = model->options.adaptive_blocks();
  if (blocks.empty()) throw UsageError("calibrate: the model has no adaptive blocks, so no budget to calibrate");
  if (!images.defined() || images.dim() != 4 || images.size(0) == 0) {
    throw ShapeError("calibrate: images must be a non-empty (N, C, H, W) batch");
  }
  if (batch_size <= 0) throw UsageError(fmt::format("calibrate: batch size {} must be positive", batch_size));
  for (double budget : budgets) {  // before minutes of measuring, not at the bad value
    if (!(budget > 0.0 && budget < 1.0)) {
      throw UsageError(fmt::format("calibrate: budget {} outside (0, 1) (1 is the static model)", budget));
    }
  }
  const int64_t last = blocks.back() + 1;
  const double patches = static_cast<double>(model->options.num_patches());

  // Measure the raw curve in eval mode: the calibration being replaced must not shape it. Both are
  // restored however this returns.
  struct Restore {
    Vit& model;
    std::vector<double> kept, budget;
    bool training;
    ~Restore() {
      model->options.calibration_kept(kept).calibration_budget(budget);
      model->train(training);
    }
  } restore{model, model->options.calibration_kept(), model->options.calibration_budget(), model->is_training()};
  model->options.calibration_kept({}).calibration_budget({});
  model->eval();
  torch::NoGradGuard no_grad;
  const auto device = model->cls_token.device();
  std::vector<KeptPoint> curve;
  Progress progress("calibrate", static_cast<int64_t>(budgets.size()), "budgets");
  for (double budget : budgets) {
    double kept = 0;
    for (int64_t start = 0; start < images.size(0); start += batch_size) {
      const torch::Tensor x = images.slice(0, start, std::min(images.size(0), start + batch_size)).to(device);
      std::vector<BlockStats> stats;
      model->forward_blocks(model->embed(x, torch::full({x.size(0)}, budget, x.options())), 0, last,
                            SelectionMode::kHard, &stats);
      kept += stats.back().kept.to(torch::kDouble).sum().item<double>();
    }
    curve.push_back({budget, kept / (patches * static_cast<double>(images.size(0)))});
    progress.tick(1, fmt::format("budget {:.3f} keeps {:.3f}", budget, curve.back().kept));
  }
  return curve;
}

std::pair<std::vector<double>, std::vector<double>> calibration_from_curve(std::vector<KeptPoint> curve) {
  std::sort(curve.begin(), curve.end(), [](const KeptPoint& a, const KeptPoint& b) { return a.budget < b.budget; });
  std::vector<double> kept, budget;
  double running = 0;
  for (const auto& p : curve) {
    running = std::max(running, p.kept);
    if (running <= 0.0 || running >= 1.0 || !(p.budget > 0.0 && p.budget < 1.0)) continue;
    if (!kept.empty() && running <= kept.back()) continue;
    kept.push_back(running);
    budget.push_back(p.budget);
  }
  if (kept.size() < 2) {
    throw DataError(fmt::format(
        "calibrate: the kept fraction rises at fewer than two of the {} measured budgets (the model's selection "
        "does not depend on the budget); nothing to calibrate",
        curve.size()));
  }
  return {kept, budget};
}

}  // namespace tokcom

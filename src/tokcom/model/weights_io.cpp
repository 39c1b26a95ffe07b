// timm/DeiT weights in and out (weights_io.h).
#include "tokcom/model/weights_io.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <regex>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/state_dict.h"

namespace tokcom {

bool is_method_tensor(const std::string& name) {
  static const std::regex pattern(R"(budget_token_[ab]|blocks\.\d+\.(gate|threshold)\.(weight|bias))");
  return std::regex_match(name, pattern);
}

namespace {
// The side g of a square grid of `patches` positions, or 0 when it is not a square.
int64_t square_side(int64_t patches) {
  if (patches < 1) return 0;
  auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(patches))));
  return g * g == patches ? g : 0;
}
}  // namespace

torch::Tensor resample_pos_embed(const torch::Tensor& pos_embed, int64_t grid, int64_t prefix) {
  if (pos_embed.dim() != 3 || pos_embed.size(0) != 1 || prefix < 0 || pos_embed.size(1) <= prefix || grid < 1) {
    throw ShapeError(fmt::format("resample_pos_embed: pos_embed {} with {} prefix rows to a {}x{} grid, expected "
                                 "[1, prefix + g*g, D] and a grid of at least 1",
                                 shape_string(pos_embed.sizes().vec()), prefix, grid, grid));
  }
  const int64_t old = square_side(pos_embed.size(1) - prefix), dim = pos_embed.size(2);
  if (old == 0) {
    throw ShapeError(fmt::format("resample_pos_embed: pos_embed {} has {} patch rows after {} prefix rows, not a "
                                 "square grid",
                                 shape_string(pos_embed.sizes().vec()), pos_embed.size(1) - prefix, prefix));
  }
  if (old == grid) return pos_embed;
  torch::NoGradGuard no_grad;
  const torch::Tensor patches = pos_embed.slice(1, prefix).to(torch::kFloat).reshape({1, old, old, dim}).permute({0, 3, 1, 2});
  const torch::Tensor resized =
      torch::nn::functional::interpolate(patches, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{grid, grid})
                                                      .mode(torch::kBicubic)
                                                      .align_corners(false)
                                                      .antialias(true));
  const torch::Tensor rows = resized.permute({0, 2, 3, 1}).reshape({1, grid * grid, dim}).to(pos_embed.scalar_type());
  return torch::cat({pos_embed.slice(1, 0, prefix), rows}, 1);
}

int64_t fit_pos_embed(TensorMap& tensors, const Vit& model, const std::string& origin) {
  const auto it = tensors.find("pos_embed");
  if (it == tensors.end()) return 0;
  const torch::Tensor& given = it->second;
  const torch::Tensor& own = model->pos_embed;
  if (given.dim() != 3 || given.size(0) != 1 || given.size(2) != own.size(2) || given.size(1) == own.size(1)) return 0;
  const int64_t old = square_side(given.size(1) - 1), grid = square_side(own.size(1) - 1);
  if (old == 0 || grid == 0) return 0;
  it->second = resample_pos_embed(given, grid, /*prefix=*/1);
  spdlog::info("{}: pos_embed resampled from a {}x{} to a {}x{} patch grid (bicubic, antialiased, as timm)", origin,
               old, old, grid, grid);
  return old;
}

WeightsImport import_timm_weights(Vit& model, const TensorMap& file_tensors, const std::string& origin) {
  const TensorMap own = named_tensors(*model);
  WeightsImport report;
  TensorMap tensors = file_tensors;  // a copy of the map, not of the tensors
  report.pos_embed_resampled_from = fit_pos_embed(tensors, model, origin);
  std::vector<std::string> unexpected, missing;
  for (const auto& [name, t] : tensors) {
    if (!own.count(name)) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    throw FormatError(fmt::format("{}: tensors the model does not have: {} (a distilled DeiT? another "
                                  "architecture?)", origin, fmt::join(unexpected, ", ")));
  }
  TensorMap load;
  for (const auto& [name, t] : own) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      if (is_method_tensor(name)) {
        report.fresh.push_back(name);
        continue;
      }
      missing.push_back(name);
      continue;
    }
    if ((name == "head.weight" || name == "head.bias") && !it->second.sizes().equals(t.sizes())) {
      report.head_reinitialised = true;
      continue;
    }
    if (!it->second.sizes().equals(t.sizes())) {
      throw ShapeError(fmt::format("{}: tensor '{}' has shape {}, the model expects {}", origin, name,
                                   shape_string(it->second.sizes().vec()), shape_string(t.sizes().vec())));
    }
    load[name] = it->second.to(t.scalar_type());
    report.loaded.push_back(name);
  }
  if (!missing.empty()) {
    throw FormatError(fmt::format("{}: missing tensors: {}", origin, fmt::join(missing, ", ")));
  }
  load_tensors(*model, load, origin, /*strict=*/false);
  if (report.head_reinitialised) {
    spdlog::info("{}: head has another class count; head re-initialised for {} classes", origin,
                 model->options.num_classes());
  }
  if (!report.fresh.empty()) {
    spdlog::info("{}: {} method tensors not in the file, initialised fresh: {}", origin,
                 report.fresh.size(), fmt::join(report.fresh, ", "));
  }
  spdlog::info("{}: loaded {} tensors", origin, report.loaded.size());
  return report;
}

TensorMap export_timm_weights(const Vit& model, bool timm_only) {
  TensorMap out;
  for (const auto& [name, t] : named_tensors(*model)) {
    if (timm_only && is_method_tensor(name)) continue;
    out[name] = t.detach();
  }
  return out;
}

}  // namespace tokcom

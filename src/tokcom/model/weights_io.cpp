// timm/DeiT weights in and out (weights_io.h).
#include "tokcom/model/weights_io.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <regex>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/state_dict.h"

namespace tokcom {

bool is_method_tensor(const std::string& name) {
  static const std::regex pattern(R"(budget_token_[ab]|blocks\.\d+\.(gate|threshold)\.(weight|bias))");
  return std::regex_match(name, pattern);
}

WeightsImport import_timm_weights(Vit& model, const TensorMap& tensors, const std::string& origin) {
  const TensorMap own = named_tensors(*model);
  WeightsImport report;
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

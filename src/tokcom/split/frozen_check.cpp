#include "tokcom/split/frozen_check.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "tokcom/core/errors.h"

namespace tokcom {

void FrozenCheck::add(const std::string& path, const TensorMap& tensors) {
  for (const auto& [name, value] : tensors) {
    if (trained_(name)) continue;
    if (first_.empty()) {
      frozen_.emplace(name, value);
    } else if (!frozen_.count(name) || !torch::equal(frozen_.at(name), value)) {
      throw FormatError(fmt::format("{}: frozen tensor '{}' differs from {}: the bank's files were trained from "
                                    "different device halves (retrain them from one train.init)",
                                    path, name, first_));
    }
  }
  if (first_.empty()) first_ = path;
}

}  // namespace tokcom

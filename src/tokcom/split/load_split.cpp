#include <fmt/format.h>

#include "tokcom/core/errors.h"
#include "tokcom/split/mobilenet_split.h"
#include "tokcom/split/proposal.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

SplitModel load_split(const Config& config, const std::string& bank_dir, const std::string& method,
                      const std::string& regime, const std::vector<double>& ratios, SelectionMode mode,
                      c10::Device device) {
  if (is_mobilenet_method(method)) return load_mobilenet_split(config, bank_dir, regime, ratios, method, device);
  if (method != "proposal" && method != "vit-ae") {
    throw UsageError(fmt::format("method '{}' has no trained bank (expected proposal, vit-ae, mobilenet-flat or "
                                 "mobilenet-cnn)",
                                 method));
  }
  SplitModel model = load_proposal(config, bank_dir, regime, ratios, mode, device);
  if (model.device->method() != method) {
    throw UsageError(fmt::format("{}: the bank holds a '{}' model (its config's model.adaptive_blocks), not '{}'",
                                 bank_dir, model.device->method(), method));
  }
  return model;
}

}  // namespace tokcom

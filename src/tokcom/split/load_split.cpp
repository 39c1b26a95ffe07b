#include <fmt/format.h>

#include "tokcom/core/errors.h"
#include "tokcom/split/method.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

SplitModel load_split(const Config& config, const std::string& bank_dir, const std::string& method,
                      const std::string& regime, const std::vector<double>& ratios, SelectionMode mode,
                      c10::Device device) {
  const Method* m = find_method(method);
  if (!m || !m->has_bank()) {
    throw UsageError(fmt::format("method '{}' has no trained bank (expected {})", method,
                                 method_names([](const Method& x) { return x.has_bank(); })));
  }
  return m->load(config, bank_dir, method, regime, ratios, mode, device);
}

}  // namespace tokcom

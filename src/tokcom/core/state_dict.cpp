#include "tokcom/core/state_dict.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"

namespace tokcom {
namespace {

// "'a'" or "'a' (and 3 others)".
std::string first_and_count(const std::vector<std::string>& names) {
  std::string s = "'" + names.front() + "'";
  if (names.size() > 1)
    s += fmt::format(" (and {} other{})", names.size() - 1, names.size() > 2 ? "s" : "");
  return s;
}

// A stored dtype that converts into the module's without loss: the same, or a narrower float into a
// wider one (F16/BF16 weights committed to save space load into an fp32 model exactly as stored).
bool widens_exactly(c10::ScalarType from, c10::ScalarType to) {
  if (from == to) return true;
  const bool half = from == c10::kHalf || from == c10::kBFloat16;
  return (half && (to == c10::kFloat || to == c10::kDouble)) || (from == c10::kFloat && to == c10::kDouble);
}

}  // namespace

TensorMap named_tensors(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    if (item.value().defined()) out.emplace(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    if (item.value().defined()) out.emplace(item.key(), item.value());
  return out;
}

LoadReport load_tensors(torch::nn::Module& module,
                        const TensorMap& tensors,
                        const std::string& origin,
                        bool strict) {
  const TensorMap targets = named_tensors(module);
  LoadReport report;
  for (const auto& [name, target] : targets)
    if (!tensors.count(name)) report.missing.push_back(name);
  for (const auto& [name, value] : tensors)
    if (!targets.count(name)) report.unexpected.push_back(name);
  if (strict && !report.missing.empty())
    throw FormatError(
        fmt::format("{}: missing tensor {}: the module has {} tensors, the file lacks {}", origin,
                    first_and_count(report.missing), targets.size(), report.missing.size()));
  if (strict && !report.unexpected.empty())
    throw FormatError(fmt::format("{}: unexpected tensor {}, not in the module", origin,
                                  first_and_count(report.unexpected)));

  for (const auto& [name, target] : targets) {  // check all before copying any
    auto it = tensors.find(name);
    if (it == tensors.end()) continue;
    const at::Tensor& value = it->second;
    if (!value.defined())
      throw ShapeError(fmt::format("{}: tensor '{}' is undefined", origin, name));
    if (!widens_exactly(value.scalar_type(), target.scalar_type()))
      throw ShapeError(fmt::format("{}: tensor '{}' has dtype {}, expected {} (or a narrower float)", origin, name,
                                   c10::toString(value.scalar_type()),
                                   c10::toString(target.scalar_type())));
    if (!value.sizes().equals(target.sizes()))
      throw ShapeError(fmt::format("{}: tensor '{}' has shape {}, expected {}", origin, name,
                                   shape_string(value.sizes().vec()),
                                   shape_string(target.sizes().vec())));
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, target] : targets) {
    auto it = tensors.find(name);
    if (it != tensors.end()) target.copy_(it->second);
  }
  return report;
}

void save_module(const std::string& path,
                 const torch::nn::Module& module,
                 const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, named_tensors(module), metadata);
}

LoadReport load_module(const std::string& path, torch::nn::Module& module, bool strict) {
  return load_tensors(module, read_safetensors(path).tensors, path, strict);
}

}  // namespace tokcom

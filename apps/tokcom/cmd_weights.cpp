// `tokcom weights info FILE`: the tensors (name, dtype, shape), metadata and totals of a
// safetensors file; `tokcom weights convert FILE -o OUT --dtype f16`: the same file with its float
// tensors in another precision (how a study commits its weights at half the size; they load back
// into the fp32 models exactly as stored). `weights import/export` live in cmd_weights_io.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <limits>
#include <memory>
#include <string>

#include "command.h"
#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/text.h"

namespace tokcom::cli {
namespace {

struct WeightsInfoArgs {
  std::string file;
};

void run_weights_info(const WeightsInfoArgs& a) {
  const Safetensors st = read_safetensors(a.file);  // FormatError on any malformed file
  size_t name_width = 4, dtype_width = 5;
  for (const auto& [name, t] : st.tensors) {
    name_width = std::max(name_width, name.size());
    dtype_width = std::max(dtype_width, safetensors_dtype_name(t.scalar_type()).size());
  }
  std::string out = fmt::format("{}\n{:<{}}  {:<{}}  {}\n", a.file, "name", name_width, "dtype",
                                dtype_width, "shape");
  int64_t elements = 0;
  for (const auto& [name, t] : st.tensors) {
    out += fmt::format("{:<{}}  {:<{}}  {}\n", name, name_width,
                       safetensors_dtype_name(t.scalar_type()), dtype_width,
                       shape_string(t.sizes().vec()));
    elements += t.numel();
  }
  if (!st.metadata.empty()) {
    out += "metadata:\n";
    for (const auto& [key, value] : st.metadata) out += fmt::format("  {}: {}\n", key, value);
  }
  out += fmt::format("{} tensors, {} elements\n", st.tensors.size(), elements);
  std::cout << out;
}

struct WeightsConvertArgs {
  std::string file, out, dtype = "f16";
};

c10::ScalarType float_dtype(const std::string& name) {
  const std::string n = to_lower(name);
  if (n == "f16" || n == "fp16" || n == "float16") return c10::kHalf;
  if (n == "bf16" || n == "bfloat16") return c10::kBFloat16;
  if (n == "f32" || n == "fp32" || n == "float32") return c10::kFloat;
  throw UsageError("--dtype '" + name + "': expected f16, bf16 or f32");
}

void run_weights_convert(const WeightsConvertArgs& a) {
  const c10::ScalarType to = float_dtype(a.dtype);
  Safetensors st = read_safetensors(a.file);
  // A finite value the target cannot hold would become inf: refuse, naming the tensor (F16 holds
  // magnitudes up to 65,504; BF16 and F32 hold every finite F32).
  const double limit = to == c10::kHalf ? 65504.0 : std::numeric_limits<double>::infinity();
  size_t converted = 0;
  double worst = 0;
  std::string worst_name;
  for (auto& [name, t] : st.tensors) {
    if (!t.is_floating_point() || t.scalar_type() == to) continue;
    const at::Tensor wide = t.to(c10::kDouble);
    const at::Tensor finite = wide.masked_select(wide.isfinite());
    const double largest = finite.numel() ? finite.abs().max().item<double>() : 0.0;
    if (largest > limit)
      throw DataError(fmt::format("{}: tensor '{}' holds {:g}, beyond {}'s largest finite value {:g}; keep it in "
                                  "F32 (--dtype f32)",
                                  a.file, name, largest, safetensors_dtype_name(to), limit));
    at::Tensor narrow = t.to(to);
    const at::Tensor both = narrow.to(c10::kDouble).isfinite().logical_and(wide.isfinite());
    const double err = both.any().item<bool>()
                           ? (narrow.to(c10::kDouble) - wide).masked_select(both).abs().max().item<double>()
                           : 0.0;
    if (err > worst) worst = err, worst_name = name;
    t = narrow;
    ++converted;
  }
  st.metadata["dtype"] = safetensors_dtype_name(to);
  write_safetensors(a.out, st.tensors, st.metadata);  // temp file + rename: in place is safe
  std::cout << fmt::format("wrote {}: {} of {} tensors to {}, largest rounding error {:.3g}{}\n", a.out, converted,
                           st.tensors.size(), safetensors_dtype_name(to), worst,
                           worst_name.empty() ? "" : " (" + worst_name + ")");
}

void add_weights(CLI::App& app) {
  CLI::App* weights = group(app, "weights", "Inspect, import and export safetensors weights");
  auto args = std::make_shared<WeightsInfoArgs>();
  CLI::App* info = weights->add_subcommand(
      "info", "Tensors (name, dtype, shape), metadata and totals of a safetensors file");
  info->add_option("file", args->file, "A .safetensors file")->required();
  set_action(info, [args] { run_weights_info(*args); });

  auto conv = std::make_shared<WeightsConvertArgs>();
  CLI::App* convert = weights->add_subcommand(
      "convert", "Write a safetensors file with its float tensors in another precision (names, shapes, integer "
                 "tensors and metadata kept; a value the target cannot hold is an error)");
  convert->add_option("file", conv->file, "A .safetensors file")->required()->check(CLI::ExistingFile);
  convert->add_option("-o,--out", conv->out, "safetensors file to write (temp file + rename; may be FILE)")->required();
  convert->add_option("--dtype", conv->dtype, "f16 | bf16 | f32")->capture_default_str();
  set_action(convert, [conv] { run_weights_convert(*conv); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(30, add_weights);
}  // namespace tokcom::cli

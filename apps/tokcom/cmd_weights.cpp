// `tokcom weights info FILE`: the tensors (name, dtype, shape), metadata and totals of a
// safetensors file. `weights import/export` live in cmd_weights_io.cpp under the same group.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

#include "command.h"
#include "tokcom/core/check.h"
#include "tokcom/core/safetensors.h"

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

void add_weights(CLI::App& app) {
  CLI::App* weights = group(app, "weights", "Inspect, import and export safetensors weights");
  auto args = std::make_shared<WeightsInfoArgs>();
  CLI::App* info = weights->add_subcommand(
      "info", "Tensors (name, dtype, shape), metadata and totals of a safetensors file");
  info->add_option("file", args->file, "A .safetensors file")->required();
  set_action(info, [args] { run_weights_info(*args); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(30, add_weights);
}  // namespace tokcom::cli

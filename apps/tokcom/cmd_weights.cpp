// `tokcom weights info FILE`: the tensors (name, dtype, shape), metadata and totals of a
// safetensors file; `tokcom weights convert FILE -o OUT --dtype f16`: the same file with its float
// tensors in another precision (how a study commits its weights at half the size; they load back
// into the fp32 models exactly as stored), optionally as a delta: `--delta-from BASE` leaves out the
// tensors equal to BASE's (a JSCC model whose frozen device half is its init's), `--fill-from BASE`
// puts them back, checked against a digest the delta carries. `weights import/export` live in
// cmd_weights_io.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

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
  std::string file, out, dtype = "f16", delta_from, fill_from;
};

c10::ScalarType float_dtype(const std::string& name) {
  const std::string n = to_lower(name);
  if (n == "f16" || n == "fp16" || n == "float16") return c10::kHalf;
  if (n == "bf16" || n == "bfloat16") return c10::kBFloat16;
  if (n == "f32" || n == "fp32" || n == "float32") return c10::kFloat;
  throw UsageError("--dtype '" + name + "': expected f16, bf16 or f32");
}

// Metadata of a delta file: the names of the tensors left out (comma-separated) and an FNV-1a digest
// of them (name, shape and values as F32 after rounding to the delta's dtype), so that a fill from
// another base is an error rather than a silently different model.
constexpr const char* kDeltaTensors = "delta_tensors";
constexpr const char* kDeltaDigest = "delta_digest";

void append_digest_bytes(std::string& bytes, const std::string& name, const at::Tensor& t) {
  const at::Tensor f = t.to(c10::kFloat).contiguous();
  bytes += name;
  bytes += '\0';
  bytes += shape_string(t.sizes().vec());
  bytes.append(static_cast<const char*>(f.data_ptr()), f.numel() * sizeof(float));
}

// Leaves out of `st` every tensor equal (name, shape, dtype, values) to BASE's after BASE's is
// rounded to `to`; records their names and digest.
void make_delta(Safetensors& st, const std::string& base_path, c10::ScalarType to) {
  const Safetensors base = read_safetensors(base_path);
  std::string bytes, names;
  for (auto it = st.tensors.begin(); it != st.tensors.end();) {
    const auto b = base.tensors.find(it->first);
    const bool same = b != base.tensors.end() && b->second.sizes() == it->second.sizes() &&
                      (it->second.is_floating_point() ? b->second.is_floating_point()
                                                      : b->second.scalar_type() == it->second.scalar_type()) &&
                      torch::equal(it->second.is_floating_point() ? b->second.to(to) : b->second, it->second);
    // A name the comma-separated list cannot hold as it is (a comma, spaces at its ends) stays in the file.
    const bool listable = it->first.find(',') == std::string::npos && !it->first.empty() &&
                          it->first.front() != ' ' && it->first.back() != ' ';
    if (!same || !listable) {
      ++it;
      continue;
    }
    append_digest_bytes(bytes, it->first, it->second);
    names += (names.empty() ? "" : ",") + it->first;
    it = st.tensors.erase(it);
  }
  st.metadata[kDeltaTensors] = names;
  st.metadata[kDeltaDigest] = fnv1a_hex(bytes);
}

// Puts the tensors the delta `st` left out back from BASE (rounded to the delta's dtype, then to
// `to`), refusing a base that lacks one or whose values are not the ones left out.
void fill_delta(Safetensors& st, const std::string& file, const std::string& base_path, c10::ScalarType to) {
  if (!st.metadata.count(kDeltaDigest) || !st.metadata.count(kDeltaTensors))
    throw UsageError(fmt::format("--fill-from: {} is not a delta (no {} metadata); it needs nothing filled", file,
                                 kDeltaDigest));
  const auto dtype = st.metadata.count("dtype") ? float_dtype(st.metadata.at("dtype")) : to;
  const Safetensors base = read_safetensors(base_path);
  std::vector<std::string> names;
  for (const auto& name : split_list(st.metadata.at(kDeltaTensors), ',')) {
    if (name.empty()) continue;
    if (!base.tensors.count(name))
      throw DataError(fmt::format("{} is a delta of another base than {}: it left out '{}', which that file lacks",
                                  file, base_path, name));
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());  // the delta's digest went in name order (an ordered map)
  std::string bytes;
  for (const auto& name : names) {
    const at::Tensor& t = base.tensors.at(name);
    const at::Tensor as_stored = t.is_floating_point() ? t.to(dtype) : t;
    append_digest_bytes(bytes, name, as_stored);
    st.tensors[name] = as_stored.is_floating_point() ? as_stored.to(to) : as_stored;
  }
  const std::string digest = fnv1a_hex(bytes);
  if (digest != st.metadata.at(kDeltaDigest))
    throw DataError(fmt::format("{} is a delta of another base than {}: the {} tensors it left out have digest {}, "
                                "that file's {}",
                                file, base_path, names.size(), st.metadata.at(kDeltaDigest), digest));
  st.metadata.erase(kDeltaTensors);
  st.metadata.erase(kDeltaDigest);
}

void run_weights_convert(const WeightsConvertArgs& a) {
  const c10::ScalarType to = float_dtype(a.dtype);
  if (!a.delta_from.empty() && !a.fill_from.empty())
    throw UsageError("--delta-from and --fill-from: expected one of them (a delta is made or filled, not both)");
  Safetensors st = read_safetensors(a.file);
  if (!a.fill_from.empty()) fill_delta(st, a.file, a.fill_from, to);
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
  const size_t total = st.tensors.size();
  if (!a.delta_from.empty()) make_delta(st, a.delta_from, to);
  write_safetensors(a.out, st.tensors, st.metadata);  // temp file + rename: in place is safe
  std::cout << fmt::format("wrote {}: {} of {} tensors to {}, largest rounding error {:.3g}{}{}\n", a.out, converted,
                           total, safetensors_dtype_name(to), worst, worst_name.empty() ? "" : " (" + worst_name + ")",
                           a.delta_from.empty() ? ""
                                                : fmt::format("; {} equal to {}'s left out (a delta: --fill-from restores it)",
                                                              total - st.tensors.size(), a.delta_from));
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
  convert->add_option("--delta-from", conv->delta_from,
                      "Leave out the tensors equal to this file's (after rounding to --dtype): a delta, with a digest of "
                      "what was left out")
      ->check(CLI::ExistingFile);
  convert->add_option("--fill-from", conv->fill_from,
                      "Put back the tensors a delta left out, from this file (the base it was made from; another base "
                      "is an error)")
      ->check(CLI::ExistingFile);
  set_action(convert, [conv] { run_weights_convert(*conv); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(30, add_weights);
}  // namespace tokcom::cli

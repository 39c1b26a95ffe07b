#include "tokcom/core/precision.h"

#include <ATen/autocast_mode.h>

#include <atomic>

#include "tokcom/core/errors.h"

namespace tokcom {

namespace {
std::atomic<Precision> g_inference_precision{Precision::kFp32};
}  // namespace

Precision parse_precision(const std::string& value, const std::string& what) {
  if (value == "fp32") return Precision::kFp32;
  if (value == "bf16") return Precision::kBf16;
  throw ConfigError(what + ": '" + value + "', expected fp32 or bf16");
}

const char* precision_name(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

void set_inference_precision(Precision precision) { g_inference_precision = precision; }
Precision inference_precision() { return g_inference_precision; }

AutocastScope::AutocastScope(Precision precision, const c10::Device& device) {
  if (precision == Precision::kFp32) return;
  active_ = true;
  cuda_ = device.is_cuda();
  if (cuda_) {
    was_enabled_ = at::autocast::is_enabled();
    was_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    was_enabled_ = at::autocast::is_cpu_enabled();
    was_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (cuda_) {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(was_dtype_);
  } else {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(was_dtype_);
  }
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

}  // namespace tokcom

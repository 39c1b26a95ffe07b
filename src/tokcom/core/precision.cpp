#include "tokcom/core/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

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

// LibTorch 2.4 replaced the per-device autocast switches (is_enabled / is_cpu_enabled, …) by ones that
// take the device type; the old ones are gone from later releases. Debian's LibTorch is 1.13, pip's
// CUDA builds (the device check, scripts/cuda_check.sh) are 2.x.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define TOKCOM_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace {

bool autocast_enabled(bool cuda) {
#ifdef TOKCOM_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast_enabled(bool cuda, bool enabled) {
#ifdef TOKCOM_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, enabled);
#else
  if (cuda) at::autocast::set_enabled(enabled); else at::autocast::set_cpu_enabled(enabled);
#endif
}

at::ScalarType autocast_dtype(bool cuda) {
#ifdef TOKCOM_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast_dtype(bool cuda, at::ScalarType dtype) {
#ifdef TOKCOM_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
#else
  if (cuda) at::autocast::set_autocast_gpu_dtype(dtype); else at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace

AutocastScope::AutocastScope(Precision precision, const c10::Device& device) {
  if (precision == Precision::kFp32) return;
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = autocast_enabled(cuda_);
  was_dtype_ = autocast_dtype(cuda_);
  set_autocast_dtype(cuda_, at::kBFloat16);
  set_autocast_enabled(cuda_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  set_autocast_enabled(cuda_, was_enabled_);
  set_autocast_dtype(cuda_, was_dtype_);
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

}  // namespace tokcom

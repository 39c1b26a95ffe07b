// Numeric precision of the models' forward passes (docs/PERF.md, "bf16").
// fp32 everywhere by default. bf16 = LibTorch's autocast: matrix products and convolutions in
// bfloat16 (CPU: oneDNN; fast only on CPUs with avx512_bf16 or AMX, emulated elsewhere), norms,
// softmax and reductions in fp32. Training takes it from `train.precision`; every other verb
// (eval, sweep, calibrate, predict, serve, device) from `tokcom --precision`, which `train` also
// honours when it is given.
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace tokcom {

enum class Precision { kFp32, kBf16 };

// "fp32" | "bf16"; anything else is a ConfigError naming `what` (a flag or config key).
Precision parse_precision(const std::string& value, const std::string& what);
const char* precision_name(Precision precision);

// The precision of model forwards outside training in this process (set once by the CLI).
void set_inference_precision(Precision precision);
Precision inference_precision();
// What a model's own forward runs at: inference_precision() in eval mode, fp32 in training (the
// trainer sets train.precision around the whole step itself).
inline Precision forward_precision(bool training) { return training ? Precision::kFp32 : inference_precision(); }

// Autocast to bf16 on `device` for this scope; fp32 does nothing. Nests: restores the previous
// state on exit and clears the cast-weight cache when it was the outermost scope.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const c10::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
  bool active() const { return active_; }

 private:
  bool active_ = false, cuda_ = false, was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::BFloat16;
};

}  // namespace tokcom

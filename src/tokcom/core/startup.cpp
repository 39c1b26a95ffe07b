#include "tokcom/core/startup.h"

#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/utils.h>
#include <spdlog/spdlog.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "tokcom/core/blas_kernel.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/precision.h"

namespace tokcom {

int core_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

void startup(const StartupOptions& options) {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);

  set_inference_precision(parse_precision(options.precision.empty() ? "fp32" : options.precision, "--precision"));
  const int threads = options.threads > 0 ? options.threads : core_count();
  at::set_num_threads(threads);
  torch::manual_seed(options.seed);

  static bool logger_made = false;
  if (!logger_made) {
    auto logger = spdlog::stderr_color_mt("tokcom");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    logger_made = true;
  }
  const auto level = spdlog::level::from_str(options.log_level);
  if (level == spdlog::level::off && options.log_level != "off") {
    throw ConfigError("--log-level: unknown level '" + options.log_level +
                      "', expected one of trace, debug, info, warn, error, critical, off");
  }
  spdlog::set_level(level);

  // The BLAS kernel was chosen before main (core/blas_kernel.cpp); say so where it went wrong.
  const BlasKernelState& blas = blas_kernel_state();
  if (blas.openblas && !blas.note.empty()) spdlog::warn("BLAS core {}: {}", blas.in_use, blas.note);
  spdlog::debug("BLAS core {}{}", blas.in_use, blas.switched ? " (OpenBLAS alone picked " + blas.picked + ")" : "");
}

}  // namespace tokcom

// The one start-up function every binary (CLI, tests, benchmarks) calls first.
#pragma once
#include <cstdint>
#include <string>

namespace tokcom {

struct StartupOptions {
  int threads = 0;                 // 0 = all cores
  uint64_t seed = 0;               // seeds LibTorch's default generator
  std::string log_level = "info";  // trace|debug|info|warn|error|off
  std::string precision;           // fp32|bf16 for every model forward outside training; "" = fp32
                                   // (and train.precision for training: core/precision.h)
};

// Sets LibTorch intra-op threads (and OpenBLAS/OpenMP through them), glibc malloc thresholds
// (M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB: without them LibTorch training here runs
// ~2.5x slower from page-fault churn), seeds the RNGs and configures spdlog.
void startup(const StartupOptions& options);

// Number of cores the process may use (sched_getaffinity), at least 1.
int core_count();

}  // namespace tokcom

// Learning-rate schedules (METHOD §7; METHOD §10 P8: the reference's stages 2–3 run at constant lr).
#pragma once
#include <cstdint>
#include <string>

namespace tokcom {

struct ScheduleOptions {
  std::string kind = "cosine";  // cosine (linear warmup, then cosine to min_lr) | constant
  double lr = 1e-3;
  double min_lr = 1e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
};

// Learning rate for optimiser step `step` (0-based). Throws ConfigError on an unknown kind.
double learning_rate(const ScheduleOptions& options, int64_t step);

}  // namespace tokcom

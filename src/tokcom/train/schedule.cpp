#include "tokcom/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "tokcom/core/errors.h"

namespace tokcom {

double learning_rate(const ScheduleOptions& o, int64_t step) {
  if (o.kind == "constant") return o.lr;
  if (o.kind != "cosine") throw ConfigError("train.schedule: unknown schedule '" + o.kind + "', expected cosine or constant");
  if (o.warmup_steps > 0 && step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / o.warmup_steps;
  const int64_t span = std::max<int64_t>(1, o.total_steps - o.warmup_steps);
  const double t = std::clamp(static_cast<double>(step - o.warmup_steps) / span, 0.0, 1.0);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * t));
}

}  // namespace tokcom

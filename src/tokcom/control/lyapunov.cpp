#include "tokcom/control/lyapunov.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokcom/core/errors.h"

namespace tokcom {

LyapunovController::LyapunovController(const ProxyTable& table, LyapunovOptions options)
    : table_(&table), options_(options) {
  if (table.decision_count() == 0) throw ConfigError("LyapunovController: the proxy table is empty");
  if (!(options.tradeoff >= 0.0) || !std::isfinite(options.tradeoff))
    throw ConfigError(fmt::format("LyapunovController: V (tradeoff) is {}, expected a finite value >= 0", options.tradeoff));
  if (!(options.queue_step > 0.0) || !std::isfinite(options.queue_step))
    throw ConfigError(fmt::format("LyapunovController: mu (queue_step) is {}, expected > 0", options.queue_step));
  if (!(options.zeta_max > 0.0) || !std::isfinite(options.zeta_max))
    throw ConfigError(fmt::format("LyapunovController: zeta_max is {}, expected > 0", options.zeta_max));
}

Choice LyapunovController::choose(double snr_db) const {
  const ProxyTable& t = *table_;
  const int n = t.decision_count();
  const double v = options_.tradeoff, z = queue_;
  const SnrLookup at = t.lookup(snr_db, options_.interpolate);
  const double* acc = t.accuracy_row(at.lower);
  const double* zeta = t.zeta_row(at.lower);
  int best = 0;
  double best_cost = 0.0;
  if (at.weight == 0.0) {
    best_cost = -v * acc[0] + z * zeta[0];
    for (int d = 1; d < n; ++d) {
      const double cost = -v * acc[d] + z * zeta[d];
      if (cost < best_cost) {  // strict: ties keep the first in table order (METHOD §8.3)
        best_cost = cost;
        best = d;
      }
    }
    return Choice{t.decisions()[best], best, acc[best], zeta[best]};
  }
  // METHOD §10 P19: blend the two neighbouring rows.
  const double w = at.weight;
  const double* acc_hi = t.accuracy_row(at.upper);
  const double* zeta_hi = t.zeta_row(at.upper);
  auto blend = [w](const double* lo, const double* hi, int d) { return (1.0 - w) * lo[d] + w * hi[d]; };
  best_cost = -v * blend(acc, acc_hi, 0) + z * blend(zeta, zeta_hi, 0);
  for (int d = 1; d < n; ++d) {
    const double cost = -v * blend(acc, acc_hi, d) + z * blend(zeta, zeta_hi, d);
    if (cost < best_cost) {
      best_cost = cost;
      best = d;
    }
  }
  return Choice{t.decisions()[best], best, blend(acc, acc_hi, best), blend(zeta, zeta_hi, best)};
}

void LyapunovController::observe(double zeta_sent) {
  if (!std::isfinite(zeta_sent) || zeta_sent < 0.0)
    throw UsageError(fmt::format("LyapunovController::observe: zeta_sent is {}, expected a finite value >= 0", zeta_sent));
  queue_ = std::max(0.0, queue_ + options_.queue_step * (zeta_sent - options_.zeta_max));
  ++slots_;
}

void LyapunovController::set_queue(double queue) {
  if (!std::isfinite(queue) || queue < 0.0)
    throw UsageError(fmt::format("LyapunovController::set_queue: queue is {}, expected a finite value >= 0", queue));
  queue_ = queue;
}

std::string LyapunovController::save_state() const {
  nlohmann::json j;
  j["queue"] = queue_;  // nlohmann writes doubles with round-trip precision
  j["slots"] = slots_;
  j["tradeoff"] = options_.tradeoff;
  j["queue_step"] = options_.queue_step;
  j["zeta_max"] = options_.zeta_max;
  j["decisions"] = table_->decision_count();
  j["interpolate"] = options_.interpolate;
  return j.dump();
}

LyapunovController LyapunovController::from_state(const ProxyTable& table, const std::string& state) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(state);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("LyapunovController::from_state: not JSON: ") + e.what());
  }
  LyapunovOptions o;
  for (auto [key, field] : {std::pair<const char*, double*>{"tradeoff", &o.tradeoff}, {"queue_step", &o.queue_step},
                            {"zeta_max", &o.zeta_max}}) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number())
      throw FormatError(std::string("LyapunovController::from_state: missing numeric key '") + key + "'");
    *field = j[key].get<double>();
  }
  o.interpolate = j.is_object() && j.value("interpolate", false);
  LyapunovController c(table, o);
  c.restore_state(state);
  return c;
}

void LyapunovController::restore_state(const std::string& state) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(state);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(std::string("LyapunovController::restore_state: not JSON: ") + e.what());
  }
  for (const char* key : {"queue", "slots", "tradeoff", "queue_step", "zeta_max", "decisions"}) {
    if (!j.contains(key) || !j[key].is_number())
      throw FormatError(std::string("LyapunovController::restore_state: missing numeric key '") + key + "'");
  }
  if (j["decisions"].get<int>() != table_->decision_count())
    throw ConfigError(fmt::format("LyapunovController::restore_state: state is for {} decisions, this "
                                  "table has {}", j["decisions"].get<int>(), table_->decision_count()));
  const double v = j["tradeoff"], mu = j["queue_step"], zmax = j["zeta_max"];
  if (v != options_.tradeoff || mu != options_.queue_step || zmax != options_.zeta_max)
    throw ConfigError(fmt::format("LyapunovController::restore_state: state has V={}, mu={}, zeta_max={}; "
                                  "this controller has V={}, mu={}, zeta_max={}", v, mu, zmax,
                                  options_.tradeoff, options_.queue_step, options_.zeta_max));
  set_queue(j["queue"].get<double>());
  slots_ = j["slots"].get<int64_t>();
}

}  // namespace tokcom

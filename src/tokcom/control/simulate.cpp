#include "tokcom/control/simulate.h"

#include <fmt/format.h>

#include "tokcom/core/errors.h"

namespace tokcom {

SimulationResult simulate(LyapunovController& controller, const std::vector<double>& snr_db,
                          int64_t window, bool keep_trace) {
  const int64_t slots = static_cast<int64_t>(snr_db.size());
  if (window < 1 || window > slots)
    throw ConfigError(fmt::format("simulate: window is {}, expected 1..{} (the number of slots)", window, slots));
  SimulationResult result;
  if (keep_trace) result.trace.reserve(static_cast<size_t>(slots));
  const int64_t window_start = slots - window;
  double accuracy_sum = 0.0, zeta_sum = 0.0;
  for (int64_t t = 0; t < slots; ++t) {
    const double z_before = controller.queue();
    const Choice c = controller.choose(snr_db[t]);
    controller.observe(c.zeta);  // simulation: the proxy ζ̂ is what gets sent
    if (t >= window_start) {
      accuracy_sum += c.accuracy;
      zeta_sum += c.zeta;
    }
    if (keep_trace) {
      result.trace.push_back(SlotRecord{t, snr_db[t], c.decision.ratio, c.decision.budget, c.zeta,
                                        z_before, c.accuracy});
    }
  }
  SimulationSummary& s = result.summary;
  s.slots = slots;
  s.window = window;
  s.accuracy_mean = accuracy_sum / static_cast<double>(window);
  s.zeta_mean = zeta_sum / static_cast<double>(window);
  s.feasible = s.zeta_mean < controller.options().zeta_max;
  s.queue_final = controller.queue();
  return result;
}

SimulationResult simulate(LyapunovController& controller, SnrProcess& process, int64_t slots,
                          int64_t window, std::mt19937_64& rng, bool keep_trace) {
  if (slots < 1) throw ConfigError(fmt::format("simulate: T is {}, expected >= 1", slots));
  return simulate(controller, draw_snr(process, slots, rng), window, keep_trace);
}

void write_trace_csv(const std::string& path, const std::vector<SlotRecord>& trace) {
  csv::Writer out(trace_schema());
  for (const SlotRecord& r : trace) {
    out.integer(r.slot).number(r.snr_db).number(r.ratio).number(r.budget).number(r.zeta).number(r.z_before);
    out.number(r.correct).end_row();
  }
  out.write(path);
}

const csv::Schema& trace_schema() {
  static const csv::Schema s = csv::schema("a trace CSV (tokcom optimize --simulate, --bank; tokcom device)", kTraceHeader);
  return s;
}

}  // namespace tokcom

// Proxy-table simulation of the controller (METHOD §8.4): T slots, each draws an SNR, decides,
// "sends" the proxy ζ̂ of the decision and updates the queue. No models, no images.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tokcom/control/lyapunov.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/core/csv.h"

namespace tokcom {

// One row of trace.csv: `slot,snr_db,ratio,budget,zeta,z_before,correct`. In simulation
// `correct` is the proxy accuracy Â of the chosen decision (the expected correctness of the
// slot's image, not a Bernoulli draw: less noise, same mean). Deployment writes 0/1 there.
struct SlotRecord {
  int64_t slot = 0;
  double snr_db = 0.0, ratio = 0.0, budget = 0.0, zeta = 0.0, z_before = 0.0, correct = 0.0;
};
constexpr const char* kTraceHeader = "slot,snr_db,ratio,budget,zeta,z_before,correct";

struct SimulationSummary {
  int64_t slots = 0, window = 0;
  double accuracy_mean = 0.0;  // mean Â over the last `window` slots
  double zeta_mean = 0.0;      // mean ζ over the last `window` slots
  bool feasible = false;       // zeta_mean < ζ_max, strictly (METHOD §8.4)
  double queue_final = 0.0;    // Z after the last slot (deployment continues from it, METHOD §8.5)
};

struct SimulationResult {
  std::vector<SlotRecord> trace;  // empty unless asked for
  SimulationSummary summary;
};

// Runs the controller over the given SNR sequence (one slot per value), continuing from its
// current queue. ConfigError when window is not in [1, slots].
SimulationResult simulate(LyapunovController& controller, const std::vector<double>& snr_db,
                          int64_t window, bool keep_trace = true);
// Same, drawing `slots` values from `process` (reset first) with `rng`.
SimulationResult simulate(LyapunovController& controller, SnrProcess& process, int64_t slots,
                          int64_t window, std::mt19937_64& rng, bool keep_trace = true);

// The trace CSV: header kTraceHeader, all numbers.
const csv::Schema& trace_schema();
// Writes the trace with header kTraceHeader (atomic).
void write_trace_csv(const std::string& path, const std::vector<SlotRecord>& trace);

}  // namespace tokcom

// The per-slot Lyapunov drift-plus-penalty controller (METHOD §8.3), as a small library API a
// deployment calls once per slot: decide(snr) → Decision, then observe(ζ actually sent).
#pragma once
#include <cstdint>
#include <string>

#include "tokcom/split/decision.h"
#include "tokcom/control/proxy_table.h"

namespace tokcom {

struct LyapunovOptions {
  double tradeoff = 100.0;   // V
  double queue_step = 10.0;  // μ
  double zeta_max = 0.01;    // ζ_max, long-term bound on E[ζ]
  bool interpolate = false;  // METHOD §10 P19: linear in SNR between grid points (off = nearest)
};

// Everything decide() looked at for the chosen decision (for traces and simulation).
struct Choice {
  Decision decision;
  int index = -1;         // decision index in table order
  double accuracy = 0.0;  // Â(φ, ŝ)
  double zeta = 0.0;      // ζ̂(φ, ŝ)
};

class LyapunovController {
 public:
  // Keeps a reference to `table`: it must outlive the controller. ConfigError on V < 0, μ ≤ 0,
  // ζ_max ≤ 0 or an empty table.
  LyapunovController(const ProxyTable& table, LyapunovOptions options);

  // φ(t) = argmin_φ −V·Â(φ, ŝ) + Z·ζ̂(φ, ŝ); exhaustive over the table, ties → first in table order.
  Decision decide(double snr_db) { return choose(snr_db).decision; }
  Choice choose(double snr_db) const;
  // Z ← max(0, Z + μ·(ζ − ζ_max)) with the ζ actually sent (proxy in simulation, measured in
  // deployment; paper Eq. 11).
  void observe(double zeta_sent);

  double queue() const { return queue_; }
  void set_queue(double queue);
  int64_t slots() const { return slots_; }  // observe() calls so far
  const LyapunovOptions& options() const { return options_; }
  const ProxyTable& table() const { return *table_; }

  // JSON text {"queue", "slots", "tradeoff", "queue_step", "zeta_max", "decisions"}; doubles
  // round-trip exactly, so a restored controller continues identically. restore_state throws
  // FormatError on malformed text and ConfigError when the state came from another table size
  // or other options.
  std::string save_state() const;
  void restore_state(const std::string& state);
  // A controller on `table` continued from save_state() text, with the state's V, μ, ζ_max and
  // interpolation (an edge server continuing a device's controller). Errors as restore_state.
  static LyapunovController from_state(const ProxyTable& table, const std::string& state);

 private:
  const ProxyTable* table_;
  LyapunovOptions options_;
  double queue_ = 0.0;  // Z(t), Z(0) = 0
  int64_t slots_ = 0;
};

}  // namespace tokcom

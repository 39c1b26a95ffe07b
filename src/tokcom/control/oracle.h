// Oracle bound (not in the paper): the best long-term mean accuracy any policy can reach on a
// proxy table under an SNR distribution with E[ζ] ≤ ζ_max. It is the LP over stationary randomised
// policies  max Σ_s p_s Σ_φ π(φ|s) Â(φ,s)  s.t.  Σ_s p_s Σ_φ π(φ|s) ζ̂(φ,s) ≤ ζ_max, solved exactly
// through its Lagrangian dual over one multiplier λ ≥ 0:
//   g(λ) = Σ_s p_s max_φ [Â(φ,s) − λ ζ̂(φ,s)] + λ ζ_max   (convex, piecewise linear).
// The minimiser λ* is a breakpoint (or 0); the primal optimum mixes the greedy policies just
// left and right of λ* so that E[ζ] = ζ_max. Because every policy's long-run state–action
// frequencies have the state marginal p, the value bounds any causal or clairvoyant policy.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "tokcom/control/proxy_table.h"
#include "tokcom/control/snr_process.h"

namespace tokcom {

// One channel state s: its probability and Â, ζ̂ of every decision there.
struct OracleState {
  double weight = 0.0;
  std::vector<double> accuracy, zeta;
};

struct OracleResult {
  bool feasible = false;       // the cheapest decision in every state meets ζ_max
  double accuracy = 0.0;       // value of the recovered randomised policy (primal)
  double dual_value = 0.0;     // g(λ*): equals `accuracy` up to rounding (strong duality)
  double zeta = 0.0;           // E[ζ] of the recovered policy (≤ ζ_max)
  double multiplier = 0.0;     // λ*
  double mix = 0.0;            // θ: probability of policy_left (1 − θ for policy_right)
  std::vector<int> policy_left, policy_right;  // decision index per state
};

// Exact solution for explicit states (weights must sum to 1 within 1e-9; ConfigError otherwise).
OracleResult oracle_bound(const std::vector<OracleState>& states, double zeta_max);

// P(nearest grid point = s) under the process's stationary marginal, ties → lower (METHOD §8.2).
std::vector<double> grid_distribution(const ProxyTable& table, const SnrProcess& process);

// Oracle for the controller's view of `process`: nearest lookup → exact over the grid
// distribution; interpolate → Monte Carlo over `samples` stationary draws (the blended rows).
OracleResult oracle_bound(const ProxyTable& table, const SnrProcess& process, double zeta_max,
                          bool interpolate = false, int64_t samples = 100000, uint64_t seed = 0);

}  // namespace tokcom

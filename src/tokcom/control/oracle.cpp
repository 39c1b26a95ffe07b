#include "tokcom/control/oracle.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "tokcom/core/errors.h"

namespace tokcom {
namespace {

struct Breakpoint {
  double lambda;
  int state, decision;
};

// Upper envelope of the lines a_d − λ z_d over λ ≥ 0, walked from λ = 0: appends the breakpoints
// (λ where the maximiser switches to a cheaper decision) and returns the maximiser at λ = 0.
int envelope(const OracleState& st, int state, std::vector<Breakpoint>& out) {
  const int n = static_cast<int>(st.accuracy.size());
  int cur = 0;
  for (int d = 1; d < n; ++d) {  // max Â, ties → smaller ζ̂
    if (st.accuracy[d] > st.accuracy[cur] ||
        (st.accuracy[d] == st.accuracy[cur] && st.zeta[d] < st.zeta[cur])) {
      cur = d;
    }
  }
  const int first = cur;
  double lambda = 0.0;
  while (true) {
    int next = -1;
    double next_lambda = std::numeric_limits<double>::infinity();
    for (int d = 0; d < n; ++d) {
      if (!(st.zeta[d] < st.zeta[cur])) continue;
      const double x = std::max(lambda, (st.accuracy[cur] - st.accuracy[d]) / (st.zeta[cur] - st.zeta[d]));
      if (x < next_lambda || (x == next_lambda && st.zeta[d] < st.zeta[next])) {
        next_lambda = x;
        next = d;
      }
    }
    if (next < 0) break;
    out.push_back(Breakpoint{next_lambda, state, next});
    cur = next;
    lambda = next_lambda;
  }
  return first;
}

}  // namespace

OracleResult oracle_bound(const std::vector<OracleState>& states, double zeta_max) {
  if (states.empty()) throw ConfigError("oracle_bound: no states");
  double total = 0.0;
  for (const auto& s : states) {
    if (s.accuracy.size() != s.zeta.size() || s.accuracy.empty() || s.weight < 0.0)
      throw ConfigError("oracle_bound: a state has mismatched accuracy/zeta sizes or a negative weight");
    total += s.weight;
  }
  if (std::abs(total - 1.0) > 1e-9) throw ConfigError(fmt::format("oracle_bound: state weights sum to {}, expected 1", total));

  const int n_states = static_cast<int>(states.size());
  std::vector<Breakpoint> events;
  std::vector<int> current(n_states);
  double zeta_now = 0.0, acc_now = 0.0;
  for (int s = 0; s < n_states; ++s) {
    current[s] = envelope(states[s], s, events);
    zeta_now += states[s].weight * states[s].zeta[current[s]];
    acc_now += states[s].weight * states[s].accuracy[current[s]];
  }
  std::stable_sort(events.begin(), events.end(), [](const Breakpoint& a, const Breakpoint& b) { return a.lambda < b.lambda; });

  // Running sums drift by rounding; compare with a relative slack and recompute exactly below.
  const double bound = zeta_max * (1.0 + 1e-12);
  OracleResult r;
  double zeta_left = zeta_now, acc_left = acc_now;
  std::vector<std::pair<int, int>> undo;  // (state, decision before) of the last group applied
  size_t i = 0;
  if (zeta_now > bound) {  // the greedy λ = 0 policy violates the bound: raise λ
    while (i < events.size()) {
      const double lambda = events[i].lambda;
      zeta_left = zeta_now;
      acc_left = acc_now;
      undo.clear();
      for (; i < events.size() && events[i].lambda == lambda; ++i) {
        const Breakpoint& e = events[i];
        const OracleState& st = states[e.state];
        zeta_now += st.weight * (st.zeta[e.decision] - st.zeta[current[e.state]]);
        acc_now += st.weight * (st.accuracy[e.decision] - st.accuracy[current[e.state]]);
        undo.emplace_back(e.state, current[e.state]);
        current[e.state] = e.decision;
      }
      r.multiplier = lambda;
      if (zeta_now <= bound) break;
    }
    if (zeta_now > bound) {  // even the cheapest decision everywhere is too expensive
      r.feasible = false;
      r.zeta = zeta_now;
      r.accuracy = std::nan("");
      r.dual_value = std::numeric_limits<double>::infinity();
      r.policy_left = r.policy_right = current;
      return r;
    }
  }
  std::vector<int> left = current;  // the greedy policy just below λ*
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) left[it->first] = it->second;
  auto totals = [&](const std::vector<int>& policy, double& acc, double& zeta) {
    acc = zeta = 0.0;
    for (int s = 0; s < n_states; ++s) {
      acc += states[s].weight * states[s].accuracy[policy[s]];
      zeta += states[s].weight * states[s].zeta[policy[s]];
    }
  };
  totals(left, acc_left, zeta_left);
  totals(current, acc_now, zeta_now);
  // θ so that E[ζ] = ζ_max (θ = 0 when the right policy alone already meets it).
  r.mix = zeta_now < zeta_max && zeta_left > zeta_max ? (zeta_max - zeta_now) / (zeta_left - zeta_now) : 0.0;
  r.feasible = true;
  r.policy_left = left;
  r.policy_right = current;
  r.accuracy = r.mix * acc_left + (1.0 - r.mix) * acc_now;
  r.zeta = r.mix * zeta_left + (1.0 - r.mix) * zeta_now;
  double g = r.multiplier * zeta_max;
  for (const auto& st : states) {
    double best = -std::numeric_limits<double>::infinity();
    for (size_t d = 0; d < st.accuracy.size(); ++d) best = std::max(best, st.accuracy[d] - r.multiplier * st.zeta[d]);
    g += st.weight * best;
  }
  r.dual_value = g;
  return r;
}

std::vector<double> grid_distribution(const ProxyTable& table, const SnrProcess& process) {
  const auto& g = table.snr_grid();
  std::vector<double> p(g.size());
  double below = 0.0;  // F at the previous cell's upper edge
  for (size_t s = 0; s < g.size(); ++s) {
    // Cell s = (m_{s−1}, m_s], m = midpoints; a midpoint belongs to the lower point (METHOD §8.2).
    const double upper = s + 1 < g.size() ? process.marginal_cdf(0.5 * (g[s] + g[s + 1])) : 1.0;
    p[s] = std::max(0.0, upper - below);
    below = upper;
  }
  return p;
}

OracleResult oracle_bound(const ProxyTable& table, const SnrProcess& process, double zeta_max,
                          bool interpolate, int64_t samples, uint64_t seed) {
  const int n = table.decision_count();
  std::vector<OracleState> states;
  if (!interpolate) {
    const std::vector<double> p = grid_distribution(table, process);
    for (int s = 0; s < table.snr_count(); ++s) {
      if (p[s] <= 0.0) continue;
      states.push_back(OracleState{p[s], {table.accuracy_row(s), table.accuracy_row(s) + n},
                                   {table.zeta_row(s), table.zeta_row(s) + n}});
    }
    double total = 0.0;
    for (const auto& st : states) total += st.weight;
    for (auto& st : states) st.weight /= total;  // remove erfc rounding
  } else {
    if (samples < 1) throw ConfigError("oracle_bound: samples must be >= 1");
    // A fresh process from the same spec, so the caller's process state is left alone.
    auto copy = make_snr_process(process.spec());
    std::mt19937_64 rng(seed);
    for (int64_t k = 0; k < samples; ++k) {
      const SnrLookup at = table.lookup(copy->next(rng), true);
      OracleState st;
      st.weight = 1.0 / static_cast<double>(samples);
      st.accuracy.resize(n);
      st.zeta.resize(n);
      for (int d = 0; d < n; ++d) {
        st.accuracy[d] = (1 - at.weight) * table.accuracy(d, at.lower) + at.weight * table.accuracy(d, at.upper);
        st.zeta[d] = (1 - at.weight) * table.zeta(d, at.lower) + at.weight * table.zeta(d, at.upper);
      }
      states.push_back(std::move(st));
    }
  }
  return oracle_bound(states, zeta_max);
}

}  // namespace tokcom

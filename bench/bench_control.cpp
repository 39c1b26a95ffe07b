// Control layer timings: one decide() over the 77-decision table (METHOD §8.1), one 10,000-slot
// proxy simulation, and the full (V, μ) grid of METHOD §8.4 (18 runs × 10,000 slots).
// Compare with bench/lyapunov_reference.py (the reference's loop in NumPy / pure Python).
#include <benchmark/benchmark.h>

#include <random>

#include "tokcom/control/lyapunov.h"
#include "tokcom/control/search.h"
#include "tokcom/control/simulate.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/control/synthetic_table.h"
#include "tokcom/core/startup.h"

using namespace tokcom;

namespace {

const ProxyTable& table() {
  static const ProxyTable t = make_synthetic_table();
  return t;
}

std::vector<double> snrs(int64_t n) {
  auto p = make_snr_process("gauss:10,2.5");
  std::mt19937_64 rng(0);
  return draw_snr(*p, n, rng);
}

// decide() + observe() per slot, queue in play (ζ_max binds), SNRs cycling through 4096 draws.
void BM_Decide(benchmark::State& state) {
  const bool interpolate = state.range(0) != 0;
  LyapunovController c(table(), LyapunovOptions{100.0, 10.0, 0.01, interpolate});
  const std::vector<double> snr = snrs(4096);
  size_t k = 0;
  for (auto _ : state) {
    const Choice ch = c.choose(snr[k++ & 4095]);
    c.observe(ch.zeta);
    benchmark::DoNotOptimize(ch);
  }
  state.counters["decisions"] = table().decision_count();
  state.counters["slots/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Decide)->Arg(0)->Arg(1)->ArgNames({"interpolate"})->UseRealTime()->Unit(benchmark::kNanosecond);

void BM_Simulate(benchmark::State& state) {
  const int64_t slots = state.range(0);
  const std::vector<double> snr = snrs(slots);
  for (auto _ : state) {
    LyapunovController c(table(), LyapunovOptions{100.0, 10.0, 0.01});
    SimulationResult r = simulate(c, snr, 1000, /*keep_trace=*/false);
    benchmark::DoNotOptimize(r);
  }
  state.counters["slots/s"] = benchmark::Counter(static_cast<double>(state.iterations() * slots), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Simulate)->Arg(10000)->ArgNames({"slots"})->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_SearchGrid(benchmark::State& state) {
  SearchOptions o;  // V ∈ {1 … 1e5} × μ ∈ {1, 10, 100}, T = 10,000, window 1,000
  const std::vector<double> snr = snrs(o.slots);
  for (auto _ : state) {
    std::vector<SearchRow> rows = grid_search(table(), snr, 0.01, o);
    benchmark::DoNotOptimize(rows);
  }
  const double runs = static_cast<double>(o.tradeoffs.size() * o.queue_steps.size());
  state.counters["runs/s"] = benchmark::Counter(state.iterations() * runs, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SearchGrid)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  tokcom::startup(tokcom::StartupOptions{/*threads=*/2, /*seed=*/0, "warn", /*precision=*/""});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

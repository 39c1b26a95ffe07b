// The machine's limit for our workloads: the best fp32 and bf16 GEMM rate at 1 and 2 threads,
// large square products through the same LibTorch call the model uses (fp32: the BLAS, with the
// core tokcom chose at start-up; bf16: oneDNN). docs/PERF.md divides every ViT workload by it.
//   build/bench/bench_peak --benchmark_out=peak.json --benchmark_out_format=json
//   OPENBLAS_CORETYPE=Prescott build/bench/bench_peak    # the generic kernel, for comparison
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "tokcom/core/blas_kernel.h"
#include "tokcom/core/startup.h"

namespace {

// Arguments: n (square size), threads, dtype (0 fp32, 1 bf16).
void BM_Gemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const auto dtype = state.range(2) == 0 ? torch::kFloat : torch::kBFloat16;
  at::set_num_threads(threads);
  c10::InferenceMode guard;
  torch::manual_seed(0);
  const torch::Tensor a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  torch::Tensor c = torch::empty({n, n}, a.options());
  torch::mm_out(c, a, b);  // warm-up: buffers, oneDNN primitive cache
  for (auto _ : state) {
    torch::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(state.range(2) == 0 ? "fp32" : "bf16");
}

}  // namespace

BENCHMARK(BM_Gemm)->ArgNames({"n", "threads", "bf16"})->ArgsProduct({{1024, 2048, 4096}, {1, 2}, {0, 1}})
    ->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  tokcom::startup(tokcom::StartupOptions{2, /*seed=*/0, "warn", /*precision=*/""});
  benchmark::AddCustomContext("blas_core", tokcom::blas_core_in_use());
  benchmark::AddCustomContext("cpu", tokcom::describe(tokcom::detect_cpu_features()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// ViT forward / train step / hard token dropping (docs/model.md). The PyTorch side with the same
// names, shapes and threads is bench/torch_vit.py.
//   build/bench/bench_vit --benchmark_repetitions=3 --benchmark_out=cpp.json
// Times: real (wall) and process CPU time (all threads).
// Presets: "64" = Imagenette-64 (64 px, patch 8, dim 192, heads 3, depth 6, adaptive {1, 2});
// "128" = Imagenette-128 geometry (128 px, patch 16: the same 64 tokens, depth 6);
// "224" = DeiT-Tiny (224 px, patch 16, depth 12, adaptive {1, 2}).
// TOKCOM_BENCH_PRECISION=bf16 runs every case under bf16 autocast (core/precision.h; the train
// step as `train.precision: bf16` does).
// Every case also reports GFLOP/s from vit_forward_flops, the FLOPs it computes (inference's last
// block on the class token, Vit::classify; a train step = 3× the whole forward); bench/compare_vit.py
// divides it by bench_peak's measured GEMM peak.
// Dropping is simulated with VitImpl::keep_fraction_hook: every image keeps exactly
// round(keep/100 · N) patches at the first adaptive block (the highest gate scores).
#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include <cstdlib>

#include "tokcom/core/blas_kernel.h"
#include "tokcom/core/precision.h"
#include "tokcom/core/startup.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/model/vit.h"

using namespace tokcom;

namespace {

VitOptions preset(int64_t size) {
  if (size == 224) return VitOptions().image_size(224).patch_size(16).depth(12);
  if (size == 128) return VitOptions().image_size(128).patch_size(16).depth(6);
  return VitOptions().image_size(64).patch_size(8).depth(6);
}

void report_rates(benchmark::State& state, int64_t batch, double flops_per_image) {
  const double images = static_cast<double>(state.iterations() * batch);
  state.counters["images/s"] = benchmark::Counter(images, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(images * flops_per_image / 1e9, benchmark::Counter::kIsRate);
}

Precision train_precision() {
  const char* p = std::getenv("TOKCOM_BENCH_PRECISION");
  return parse_precision(p ? p : "fp32", "TOKCOM_BENCH_PRECISION");
}

Vit make_model(int64_t size) {
  torch::manual_seed(0);
  Vit model(preset(size));
  model->eval();
  return model;
}

// Static model (no budget token): the plain ViT forward.
void run_forward(benchmark::State& state, int64_t size) {
  const int64_t batch = state.range(0);
  Vit model = make_model(size);
  c10::InferenceMode guard;
  const torch::Tensor images = torch::randn({batch, 3, size, size});
  for (auto _ : state) {
    torch::Tensor logits = model->forward(images).logits;
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  report_rates(state, batch, vit_forward_flops(model->options, false, 1.0, /*cls_only_last=*/true));
}

// Hard path (METHOD §3.5 + P4) with a budget token; keep = percent of patches kept (100: none dropped,
// the hook off: the method's own gates at init, which keep everything).
void run_hard(benchmark::State& state, int64_t size) {
  const int64_t batch = state.range(0), keep = state.range(1);
  Vit model = make_model(size);
  if (keep < 100) model->keep_fraction_hook = keep / 100.0;
  c10::InferenceMode guard;
  const torch::Tensor images = torch::randn({batch, 3, size, size});
  const torch::Tensor budget = torch::full({batch}, keep < 100 ? keep / 100.0 : 0.5);
  for (auto _ : state) {
    torch::Tensor logits = model->forward(images, budget, SelectionMode::kHard).logits;
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  report_rates(state, batch, vit_forward_flops(model->options, true, keep / 100.0, /*cls_only_last=*/true));
}

// One training step: soft path with stratified α, CE + L_out + L_in (margin), backward, Adam.
void run_train(benchmark::State& state, int64_t size) {
  const int64_t batch = state.range(0);
  Vit model = make_model(size);
  model->train();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-4));
  const torch::Tensor images = torch::randn({batch, 3, size, size});
  const torch::Tensor labels = torch::randint(10, {batch});
  auto gen = at::detail::createCPUGenerator(1);
  for (auto _ : state) {
    torch::Tensor budget = sample_budgets(batch, gen);
    VitOutput out;
    {
      const AutocastScope autocast(train_precision(), torch::kCPU);
      out = model->forward(images, budget, SelectionMode::kSoft);
    }
    BudgetLoss budget_terms = budget_loss(out.stats, budget, InnerLoss::kMargin);
    torch::Tensor loss = torch::cross_entropy_loss(out.logits, labels) + budget_terms.out + budget_terms.inner;
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  report_rates(state, batch, 3.0 * vit_forward_flops(model->options, true));
}

void BM_Forward64(benchmark::State& s) { run_forward(s, 64); }
void BM_Forward128(benchmark::State& s) { run_forward(s, 128); }
void BM_Forward224(benchmark::State& s) { run_forward(s, 224); }
void BM_Hard64(benchmark::State& s) { run_hard(s, 64); }
void BM_Hard128(benchmark::State& s) { run_hard(s, 128); }
void BM_Hard224(benchmark::State& s) { run_hard(s, 224); }
void BM_TrainStep64(benchmark::State& s) { run_train(s, 64); }
void BM_TrainStep128(benchmark::State& s) { run_train(s, 128); }

}  // namespace

BENCHMARK(BM_Forward64)->ArgNames({"batch"})->Arg(1)->Arg(64)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Forward128)->ArgNames({"batch"})->Arg(1)->Arg(64)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Forward224)->ArgNames({"batch"})->Arg(1)->Arg(64)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Hard64)->ArgNames({"batch", "keep"})->ArgsProduct({{1, 64}, {25, 50, 75, 100}})
    ->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Hard128)->ArgNames({"batch", "keep"})->ArgsProduct({{1, 64}, {25, 50, 100}})
    ->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Hard224)->ArgNames({"batch", "keep"})->ArgsProduct({{1}, {25, 50, 75, 100}})
    ->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStep64)->ArgNames({"batch"})->Arg(64)->Arg(128)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStep128)->ArgNames({"batch"})->Arg(64)->Arg(128)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  // 2 threads as the PyTorch side; TOKCOM_BENCH_THREADS overrides (docs/model.md: on a loaded
  // machine 1 thread + process CPU time is the comparison that survives contention).
  const char* threads = std::getenv("TOKCOM_BENCH_THREADS");
  tokcom::startup(tokcom::StartupOptions{threads ? std::atoi(threads) : 2, /*seed=*/0, "warn", /*precision=*/""});
  tokcom::set_inference_precision(train_precision());
  benchmark::AddCustomContext("blas_core", tokcom::blas_core_in_use());
  benchmark::AddCustomContext("precision", tokcom::precision_name(train_precision()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

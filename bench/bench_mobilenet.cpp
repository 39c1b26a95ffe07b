// MobileNetV3 forward (eval, inference mode), whole model and the two halves of
// the METHOD §6.2 split. The PyTorch side (torchvision, same names, shapes,
// threads) is bench/torch_mobilenet.py, which also joins both into the table of
// docs/mobilenet.md:
//   build/bench/bench_mobilenet --benchmark_repetitions=3
//   --benchmark_format=json > cpp.json /usr/bin/python3
//   bench/torch_mobilenet.py --out py.json --cpp cpp.json
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>

#include "tokcom/core/startup.h"
#include "tokcom/model/mobilenet_v3.h"

using namespace tokcom;

namespace {

enum class Part { kWhole, kDevice, kServer };

// Args: large (0 = Small, 1 = Large), batch, side (px).
void run(benchmark::State& state, Part part) {
  const bool large = state.range(0) == 1;
  const int64_t batch = state.range(1), side = state.range(2);
  torch::manual_seed(0);
  MobileNetV3 model(MobileNetV3Options().variant(large ? "large" : "small"));
  model->eval();
  c10::InferenceMode guard;
  torch::Tensor x = torch::randn({batch, 3, side, side});
  if (part == Part::kServer) x = model->forward_device(x);
  for (auto _ : state) {
    torch::Tensor y = part == Part::kWhole    ? model->forward(x)
                      : part == Part::kDevice ? model->forward_device(x)
                                              : model->forward_server(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations() * batch),
                                                  benchmark::Counter::kIsRate);
}

// One training step (train mode, cross-entropy, AdamW) of the whole model, as `tokcom train
// train.model=mobilenet` runs it. Args: large, batch, side, in_chans (1 = Fashion-MNIST).
void BM_MobileNetTrainStep(benchmark::State& state) {
  const bool large = state.range(0) == 1;
  const int64_t batch = state.range(1), side = state.range(2), in_chans = state.range(3);
  torch::manual_seed(0);
  MobileNetV3 model(MobileNetV3Options().variant(large ? "large" : "small").in_chans(in_chans));
  model->train();
  torch::optim::AdamW adam(model->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.05));
  const torch::Tensor x = torch::randn({batch, in_chans, side, side});
  const torch::Tensor y = torch::randint(10, {batch});
  for (auto _ : state) {
    adam.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    adam.step();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations() * batch),
                                                  benchmark::Counter::kIsRate);
}

void BM_MobileNetForward(benchmark::State& s) { run(s, Part::kWhole); }
void BM_MobileNetDevice(benchmark::State& s) { run(s, Part::kDevice); }
void BM_MobileNetServer(benchmark::State& s) { run(s, Part::kServer); }

}  // namespace

BENCHMARK(BM_MobileNetForward)
    ->ArgNames({"large", "batch", "side"})
    ->ArgsProduct({{0, 1}, {1, 64}, {64, 224}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// Fashion-MNIST's 28 px (1 channel; the demo's baseline), the 64- and 128-px Imagenette presets.
BENCHMARK(BM_MobileNetTrainStep)
    ->ArgNames({"large", "batch", "side", "in_chans"})
    ->Args({0, 128, 28, 1})
    ->Args({0, 128, 64, 3})
    ->Args({0, 128, 128, 3})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MobileNetDevice)
    ->ArgNames({"large", "batch", "side"})
    ->Args({0, 1, 224})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MobileNetServer)
    ->ArgNames({"large", "batch", "side"})
    ->Args({0, 1, 224})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  const char* threads = std::getenv("TOKCOM_BENCH_THREADS");  // 2 as the PyTorch side
  tokcom::startup(tokcom::StartupOptions{threads ? std::atoi(threads) : 2,
                                         /*seed=*/0, "warn", /*precision=*/""});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

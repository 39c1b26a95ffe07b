// Throughput of every neural baseline's split pipeline at batch 64 (issue "baselines", PERF):
// device half → JSCC encoder → AWGN at 10 dB → decoder → server half, on the Imagenette-64
// geometry, random weights, inference mode. The PyTorch side with the same shapes and threads is
// bench/torch_baselines.py; bench/baselines_compare.py prints the table.
//   build/bench/bench_baselines --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
//       --benchmark_format=json > cpp.json
// Methods: 0 = ViT-AE (static ViT, depth 6, split 3, every token), 1 = MobileNetV3-Small + flat
// JSCC (24 channel tokens of 64 reals), 2 = MobileNetV3-Small + CNN JSCC (24×8×8 map).
#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include <cstdlib>

#include "tokcom/comm/channel.h"
#include "tokcom/core/startup.h"
#include "tokcom/split/mobilenet_split.h"
#include "tokcom/split/proposal.h"

using namespace tokcom;

namespace {

SplitModel make_baseline(int64_t method, double ratio) {
  torch::manual_seed(0);
  SplitModel m;
  if (method == 0) {
    Vit vit(VitOptions().image_size(64).patch_size(8).depth(6).adaptive_blocks(std::vector<int64_t>{}));
    vit->eval();
    JsccCodec codec(JsccOptions().dim(192).ratio(ratio));
    codec->eval();
    ProposalOptions o;
    o.split = 3;
    o.method = "vit-ae";
    m.device = std::make_shared<ProposalDevice>(vit, std::vector<JsccEncoder>{codec->encoder}, std::vector<double>{ratio}, o);
    m.server = std::make_shared<ProposalServer>(std::vector<Vit>{vit}, std::vector<JsccDecoder>{codec->decoder}, o);
  } else {
    MobileNetJsccNet net(MobileNetV3(MobileNetV3Options().variant("small")), method == 1 ? "mobilenet-flat" : "mobilenet-cnn",
                         ratio, 64);
    net->eval();
    m.device = std::make_shared<MobileNetDevice>(std::vector<MobileNetJsccNet>{net});
    m.server = std::make_shared<MobileNetServer>(std::vector<MobileNetJsccNet>{net});
  }
  return m;
}

// Args: method, batch, r in thousandths.
void BM_Baseline(benchmark::State& state) {
  const int64_t method = state.range(0), batch = state.range(1);
  const double ratio = state.range(2) / 1000.0;
  SplitModel m = make_baseline(method, ratio);
  c10::InferenceMode guard;
  const auto images = torch::randn({batch, 3, 64, 64});
  const auto awgn = make_channel("awgn");
  const auto snr = torch::full({batch}, 10.0f);
  torch::Generator rng = make_generator(1);
  for (auto _ : state) {
    const Payload sent = m.device->encode(images, Decision{1.0, 0});
    const torch::Tensor logits = m.server->decode(awgn->apply(sent, snr, rng).payload);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.SetLabel(method == 0 ? "vit-ae" : method == 1 ? "mobilenet-flat" : "mobilenet-cnn");
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations() * batch), benchmark::Counter::kIsRate);
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"method", "batch", "r"});
  for (int64_t method : {0, 1, 2})
    for (int64_t r : {100, 500}) b->Args({method, 64, r});
}

BENCHMARK(BM_Baseline)->Apply(grid)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // 2 threads as the PyTorch side; TOKCOM_BENCH_THREADS overrides.
  const char* threads = std::getenv("TOKCOM_BENCH_THREADS");
  tokcom::startup(tokcom::StartupOptions{threads ? std::atoi(threads) : 2, /*seed=*/0, "warn", /*precision=*/""});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

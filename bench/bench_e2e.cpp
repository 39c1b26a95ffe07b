// The whole semantic link at inference (issue "semantic channel", docs/comm.md): device half
// (embedding, blocks 0–2 with hard token selection) → JSCC encoder (with per-token power
// normalisation) → AWGN → JSCC decoder → server half (blocks 3–5, norm, head), on the
// Imagenette-64 geometry (64 px, patch 8, dim 192, depth 6, adaptive {1, 2}, split 3).
// The PyTorch side with the same shapes and threads is bench/torch_e2e.py.
//   build/bench/bench_e2e --benchmark_repetitions=3 --benchmark_out=cpp.json
// Dropping uses VitImpl::keep_fraction_hook: every image keeps exactly round(α·N) patches, so
// both sides do the same work. BM_Parts times the channel and the normalisation alone on the
// payload the pipeline sends, to give their share of the end-to-end time.
#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include <cstdlib>

#include "tokcom/comm/channel.h"
#include "tokcom/comm/power.h"
#include "tokcom/core/startup.h"
#include "tokcom/split/proposal.h"

using namespace tokcom;

namespace {

constexpr int64_t kSplit = 3;

struct Link {
  Vit vit{nullptr};
  JsccCodec codec{nullptr};
  std::unique_ptr<ProposalDevice> device;
  std::unique_ptr<ProposalServer> server;
};

Link make_link(double alpha, double ratio) {
  torch::manual_seed(0);
  Link l;
  l.vit = Vit(VitOptions().image_size(64).patch_size(8).depth(6));
  if (alpha < 1.0) l.vit->keep_fraction_hook = alpha;
  l.vit->eval();
  l.codec = JsccCodec(JsccOptions().dim(192).ratio(ratio));
  l.codec->eval();
  ProposalOptions o;
  o.split = kSplit;
  o.mode = SelectionMode::kHard;
  l.device = std::make_unique<ProposalDevice>(l.vit, std::vector<JsccEncoder>{l.codec->encoder}, std::vector<double>{ratio}, o);
  l.server = std::make_unique<ProposalServer>(std::vector<Vit>{l.vit}, std::vector<JsccDecoder>{l.codec->decoder}, o);
  return l;
}

// Args: batch, α in percent, r in thousandths.
void BM_E2E(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const double alpha = state.range(1) / 100.0, ratio = state.range(2) / 1000.0;
  Link l = make_link(alpha, ratio);
  c10::InferenceMode guard;
  const auto images = torch::randn({batch, 3, 64, 64});
  const auto awgn = make_channel("awgn");
  const auto snr = torch::full({batch}, 10.0f);
  torch::Generator rng = make_generator(1);
  for (auto _ : state) {
    const Payload sent = l.device->encode(images, Decision{alpha, 0});
    const torch::Tensor logits = l.server->decode(awgn->apply(sent, snr, rng).payload);
    benchmark::DoNotOptimize(logits.data_ptr());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations() * batch), benchmark::Counter::kIsRate);
}

// The channel (noise draw + power measure + add) and the per-token normalisation alone, on the
// shapes the pipeline above sends. Arg 3: 0 = AWGN apply, 1 = normalisation.
void BM_Parts(benchmark::State& state) {
  const int64_t batch = state.range(0), part = state.range(3);
  const double alpha = state.range(1) / 100.0, ratio = state.range(2) / 1000.0;
  Link l = make_link(alpha, ratio);
  c10::InferenceMode guard;
  const Payload sent = l.device->encode(torch::randn({batch, 3, 64, 64}), Decision{alpha, 0});
  const auto awgn = make_channel("awgn");
  const auto snr = torch::full({batch}, 10.0f);
  torch::Generator rng = make_generator(1);
  const auto re = torch::view_as_real(sent.symbols).select(-1, 0).contiguous();
  const auto im = torch::view_as_real(sent.symbols).select(-1, 1).contiguous();
  for (auto _ : state) {
    torch::Tensor out = part == 0 ? awgn->apply(sent, snr, rng).payload.symbols : normalize_unit_norm(re, im);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.SetLabel(part == 0 ? "awgn" : "normalise");
}

void grid(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "alpha", "r"});
  for (int64_t batch : {1, 64})
    for (int64_t alpha : {25, 50, 100})
      for (int64_t r : {100, 500}) b->Args({batch, alpha, r});
}

void parts(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "alpha", "r", "part"});
  for (int64_t batch : {1, 64})
    for (int64_t alpha : {25, 50, 100})
      for (int64_t r : {100, 500})
        for (int64_t part : {0, 1}) b->Args({batch, alpha, r, part});
}

BENCHMARK(BM_E2E)->Apply(grid)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Parts)->Apply(parts)->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMicrosecond);

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

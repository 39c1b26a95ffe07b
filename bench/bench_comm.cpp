// Communication layer micro-benchmarks: encode + channel + decode, and each part alone
// (METHOD §5.2–5.4). Run: build/bench/bench_comm --benchmark_repetitions=5 --benchmark_format=json
#include <benchmark/benchmark.h>

#include <torch/torch.h>

#include "tokcom/comm/channel.h"
#include "tokcom/comm/jscc.h"
#include "tokcom/comm/power.h"
#include "tokcom/core/startup.h"

using namespace tokcom;

namespace {

struct Setup {
  int64_t batch, tokens, d_r;
  JsccCodec codec{nullptr};
  torch::Tensor x, snr;
  explicit Setup(const benchmark::State& state)
      : batch(state.range(0)), tokens(state.range(1)) {
    const double ratio = static_cast<double>(state.range(2)) / 100.0;
    torch::manual_seed(0);
    codec = JsccCodec(JsccOptions().dim(192).ratio(ratio));
    codec->eval();
    d_r = codec->options.symbols_per_token();
    x = torch::randn({batch, tokens, 192});
    snr = torch::full({batch}, 10.0);
  }
  void count(benchmark::State& state) const {
    state.counters["symbols/s"] = benchmark::Counter(
        static_cast<double>(state.iterations() * batch * tokens * d_r), benchmark::Counter::kIsRate);
  }
};

Payload payload_of(const torch::Tensor& symbols) {
  Payload p;
  p.method = "proposal";
  p.symbols = symbols;
  return p;
}

// encode (MLPs + unit-norm) → AWGN → decode.
void BM_CommPipeline(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  Setup s(state);
  const auto channel = make_channel("awgn");
  auto rng = make_generator(1);
  for (auto _ : state) {
    const Received got = channel->apply(payload_of(s.codec->encoder->forward(s.x)), s.snr, rng);
    auto out = s.codec->decoder->forward(got.payload.symbols);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  s.count(state);
}

void BM_JsccEncode(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  Setup s(state);
  for (auto _ : state) {
    auto z = s.codec->encoder->forward(s.x);
    benchmark::DoNotOptimize(z.data_ptr());
  }
  s.count(state);
}

// Power normalisation alone (part of the encoder): u / ‖u‖ per token.
void BM_Normalize(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  Setup s(state);
  const auto re = torch::randn({s.batch, s.tokens, s.d_r}), im = torch::randn({s.batch, s.tokens, s.d_r});
  for (auto _ : state) {
    auto z = normalize_unit_norm(re, im);
    benchmark::DoNotOptimize(z.data_ptr());
  }
  s.count(state);
}

template <int kChannel>
void BM_ChannelApply(benchmark::State& state) {
  static const char* kSpecs[] = {"awgn", "rayleigh-mmse", "rayleigh-symbol"};
  torch::NoGradGuard no_grad;
  Setup s(state);
  const auto channel = make_channel(kSpecs[kChannel]);
  const Payload sent = payload_of(s.codec->encoder->forward(s.x));
  auto rng = make_generator(1);
  for (auto _ : state) {
    const Received got = channel->apply(sent, s.snr, rng);
    benchmark::DoNotOptimize(got.payload.symbols.data_ptr());
  }
  s.count(state);
  state.SetLabel(kSpecs[kChannel]);
}

void BM_JsccDecode(benchmark::State& state) {
  torch::NoGradGuard no_grad;
  Setup s(state);
  const auto y = s.codec->encoder->forward(s.x);
  for (auto _ : state) {
    auto out = s.codec->decoder->forward(y);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  s.count(state);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgsProduct({{1, 64}, {198, 50}, {10, 50}})->ArgNames({"batch", "tokens", "r_pct"})
      ->UseRealTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_CommPipeline)->Apply(shapes);
BENCHMARK(BM_JsccEncode)->Apply(shapes);
BENCHMARK(BM_Normalize)->Apply(shapes);
BENCHMARK_TEMPLATE(BM_ChannelApply, 0)->Apply(shapes);
BENCHMARK_TEMPLATE(BM_ChannelApply, 1)->Apply(shapes);
BENCHMARK_TEMPLATE(BM_ChannelApply, 2)->Apply(shapes);
BENCHMARK(BM_JsccDecode)->Apply(shapes);

int main(int argc, char** argv) {
  tokcom::StartupOptions options;
  options.threads = 2;  // the machine's share (docs/comm.md)
  options.log_level = "warn";
  tokcom::startup(options);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

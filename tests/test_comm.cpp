// Communication layer: payload checks, power normalisation, channels, JSCC dims, ζ, CNN JSCC.
#include <gtest/gtest.h>

#include <array>

#include "common/helpers.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "tokcom/comm/channel.h"
#include "tokcom/comm/cnn_jscc.h"
#include "tokcom/comm/jscc.h"
#include "tokcom/comm/payload.h"
#include "tokcom/comm/power.h"
#include "tokcom/comm/zeta.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"

using namespace tokcom;
using tokcom::test::error_of;

namespace {

// Unit-norm tokens (B, T, d_r), as the encoder sends them.
Payload unit_norm_payload(int64_t images, int64_t tokens, int64_t d_r, torch::Generator& rng,
                          torch::Device device = torch::kCPU) {
  Payload p;
  p.method = "test";
  const auto u = complex_normal({images, tokens, d_r}, 1.0, rng, device);
  p.symbols = u / u.abs().square().sum(-1, /*keepdim=*/true).sqrt();
  return p;
}

// One-sample Kolmogorov–Smirnov statistic against Exp(1): D = sup |F_n − F|.
double ks_statistic_exponential(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double f = 1.0 - std::exp(-x[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  return d;
}

// Asymptotic p-value Q_KS(λ), λ = (√n + 0.12 + 0.11/√n)·D (Numerical Recipes, 14.3).
double ks_p_value(double d, double n) {
  const double lambda = (std::sqrt(n) + 0.12 + 0.11 / std::sqrt(n)) * d;
  double sum = 0, sign = 1;
  for (int k = 1; k <= 100; ++k, sign = -sign) sum += 2.0 * sign * std::exp(-2.0 * k * k * lambda * lambda);
  return std::clamp(sum, 0.0, 1.0);
}

// Broadcastable block gain (B) → (B, 1, 1[, 1]); a per-symbol gain is returned as is.
torch::Tensor broadcast_gain(const torch::Tensor& gain, const torch::Tensor& symbols) {
  if (gain.dim() == symbols.dim()) return gain;
  std::vector<int64_t> view(symbols.dim(), 1);
  view[0] = gain.size(0);
  return gain.view(view);
}

}  // namespace

TEST(Power, EveryTokenHasUnitEnergy) {
  torch::manual_seed(3);
  for (double scale : {1e-3, 1.0, 1e3}) {
    const auto re = torch::randn({8, 50, 19}) * scale, im = torch::randn({8, 50, 19}) * scale;
    const auto z = normalize_unit_norm(re, im);
    ASSERT_EQ(z.scalar_type(), torch::kComplexFloat);
    const auto energy = z.abs().square().sum(-1);
    EXPECT_LT((energy - 1).abs().max().item<double>(), 1e-5) << "scale " << scale;
  }
  JsccEncoder encoder(JsccOptions().dim(192).ratio(0.15));
  const auto energy = encoder->forward(torch::randn({4, 198, 192}) * 5).abs().square().sum(-1);
  EXPECT_LT((energy - 1).abs().max().item<double>(), 1e-5);
}

TEST(Power, ReferenceBiasOnRowNormalisedMapsIsFiveLogS) {  // METHOD §10 P14: +5·log10(s) dB
  auto rng = make_generator(5);
  for (int64_t s : {14, 7, 4, 2, 1}) {
    const auto u = complex_normal({2, 24, s, s}, 1.0, rng);
    const auto z = u / u.abs().square().sum(-1, true).sqrt();  // rows unit norm (METHOD §6.2)
    const auto squared = signal_power(z, PowerOptions());
    const auto reference = signal_power(z, PowerOptions().reference_power(true));
    EXPECT_NEAR(squared.mean().item<double>(), 1.0 / s, 1e-6);
    const double bias_db = 10 * std::log10((squared / reference).mean().item<double>());
    // The reference under-measures P_sig by √s, so its true SNR is 5·log10(s) dB above nominal.
    EXPECT_NEAR(bias_db, 5 * std::log10(static_cast<double>(s)), 1e-4) << "s " << s;
  }
}

TEST(Awgn, MeasuredSnrWithinFiveHundredthsDb) {
  auto rng = make_generator(7);
  const Payload sent = unit_norm_payload(/*images=*/10, /*tokens=*/1000, /*d_r=*/100, rng);  // 1e6
  AwgnChannel channel;
  for (double snr : {-10.0, 0.0, 20.0}) {
    const Received got = channel.apply(sent, torch::full({10}, snr), rng);
    const double signal = sent.symbols.abs().square().mean().item<double>();
    const double noise = (got.payload.symbols - sent.symbols).abs().square().mean().item<double>();
    EXPECT_NEAR(10 * std::log10(signal / noise), snr, 0.05) << "requested " << snr << " dB";
  }
}

TEST(Rayleigh, GainPowerIsExponentialAndConstantWithinImage) {
  auto rng = make_generator(2024);
  const int64_t n = 100000;
  const Payload sent = unit_norm_payload(n, /*tokens=*/3, /*d_r=*/2, rng);
  const Received got = make_channel("rayleigh")->apply(sent, torch::full({n}, 100.0), rng);
  ASSERT_EQ(got.gain.sizes(), torch::IntArrayRef({n}));
  const auto power = got.gain.abs().square().to(torch::kDouble).contiguous();
  std::vector<double> x(power.data_ptr<double>(), power.data_ptr<double>() + n);
  const double p = ks_p_value(ks_statistic_exponential(x), static_cast<double>(n));
  EXPECT_GT(p, 0.01) << "KS p-value of |h|^2 against Exp(1)";
  // The test can fail: |h| itself (Rayleigh, not exponential) is rejected.
  for (auto& v : x) v = std::sqrt(v);
  EXPECT_LT(ks_p_value(ks_statistic_exponential(x), static_cast<double>(n)), 0.01);
  // At 100 dB (noise std ~7e-6) every token of an image sees the same h: y = h·z everywhere.
  const auto residual = got.payload.symbols - got.gain.view({n, 1, 1}) * sent.symbols;
  EXPECT_LT(residual.abs().max().item<double>(), 1e-4);
  // ... which is not true of any other image's h (the check can fail).
  const auto shifted = got.payload.symbols - got.gain.roll(1).view({n, 1, 1}) * sent.symbols;
  EXPECT_GT(shifted.abs().max().item<double>(), 0.1);
}

TEST(Rayleigh, PerSymbolGainVariesWithinImage) {
  auto rng = make_generator(4);
  const Payload sent = unit_norm_payload(4, 8, 16, rng);
  const Received got = make_channel("rayleigh-symbol")->apply(sent, torch::full({4}, 100.0), rng);
  ASSERT_EQ(got.gain.sizes(), sent.symbols.sizes());
  EXPECT_GT(got.gain.abs().std().item<double>(), 0.1);
  EXPECT_LT((got.payload.symbols - got.gain * sent.symbols).abs().max().item<double>(), 1e-3);
}

TEST(Equalization, ZeroForcingAndMmseRecoverPayloadAt100Db) {
  for (const std::string spec : {"rayleigh-csi", "rayleigh-mmse", "rician:K=4,csi=zf"}) {
    auto rng = make_generator(19);
    const Payload sent = unit_norm_payload(16, 10, 19, rng);
    const Received got = make_channel(spec)->apply(sent, torch::full({16}, 100.0), rng);
    EXPECT_LT((got.payload.symbols - sent.symbols).abs().max().item<double>(), 1e-4) << spec;
  }
  // Without CSI the payload is rotated and scaled by h: far from z.
  auto rng = make_generator(19);
  const Payload sent = unit_norm_payload(16, 10, 19, rng);
  const Received got = make_channel("rayleigh")->apply(sent, torch::full({16}, 100.0), rng);
  EXPECT_GT((got.payload.symbols - sent.symbols).abs().max().item<double>(), 0.01);
}

TEST(Rician, LargeKApproachesAwgn) {
  auto rng = make_generator(1);
  const Payload sent = unit_norm_payload(32, 20, 9, rng);
  const auto snr = torch::linspace(-10, 20, 32);
  auto rng_a = make_generator(77), rng_b = make_generator(77);
  const auto awgn = make_channel("awgn")->apply(sent, snr, rng_a).payload.symbols;
  const auto rician = make_channel("rician:K=1e12")->apply(sent, snr, rng_b);
  EXPECT_LT((rician.payload.symbols - awgn).abs().max().item<double>(), 1e-4);
  EXPECT_LT((rician.gain - 1).abs().max().item<double>(), 1e-4);
  auto rng_c = make_generator(77);
  const auto k4 = make_channel("rician:K=4")->apply(sent, snr, rng_c).payload.symbols;
  EXPECT_GT((k4 - awgn).abs().max().item<double>(), 0.1);  // a finite K does fade
}

TEST(Zeta, HandCountedSoftAndHard) {  // METHOD §5.5
  auto rng = make_generator(0);
  Payload soft = unit_norm_payload(2, /*tokens=*/198, /*d_r=*/19, rng);  // cls + 196 + budget
  EXPECT_EQ(soft.symbols_per_image(0), 198 * 19);  // soft: every position is sent
  EXPECT_DOUBLE_EQ(zeta(soft, 1), 3762.0 / 150528.0);
  Payload hard = soft;  // hard: image 0 keeps cls + 10 patches + budget, image 1 keeps 50 + 2
  hard.token_mask = torch::zeros({2, 198}, torch::kBool);
  hard.token_mask.index_put_({0, torch::indexing::Slice(0, 11)}, true);
  hard.token_mask.index_put_({0, 197}, true);
  hard.token_mask.index_put_({1, torch::indexing::Slice(0, 51)}, true);
  hard.token_mask.index_put_({1, 197}, true);
  EXPECT_EQ(hard.tokens_per_image(0), 12);
  EXPECT_EQ(hard.symbols_per_image(0), 12 * 19);
  EXPECT_EQ(hard.symbols_per_image(1), 52 * 19);
  EXPECT_DOUBLE_EQ(zeta(hard, 0), 228.0 / 150528.0);
  // Reference proxy (P15): fractional 192·r; max at r = 0.5, 198 tokens = 0.12628.
  EXPECT_NEAR(proxy_zeta_reference(198, 0.5), 0.12628, 5e-6);
  EXPECT_NEAR(proxy_zeta_reference(12, 0.001), 12 * 0.192 / 150528, 1e-12);
  Payload cnn;
  cnn.method = "mobilenet-cnn";
  cnn.symbols = torch::zeros({1, 24, 7, 7}, torch::kComplexFloat);
  EXPECT_NEAR(zeta(cnn, 0), 0.0078125, 1e-9);  // METHOD §6.2: 24·7² = 1176
  EXPECT_NE(error_of([] { zeta(-1); }).find("channel_uses"), std::string::npos);
}

struct SpecRow { double ratio; int64_t d_r; std::vector<int64_t> enc, dec; int64_t k; double zeta; };

TEST(JsccDims, MatchesSpecTableForEveryRatio) {  // METHOD §5.1
  const std::vector<SpecRow> rows = {
      {1.0, 192, {192, 192, 192, 192}, {384, 320, 256, 192}, 37824, 0.25128},
      {0.5, 96, {192, 160, 128, 96}, {192, 192, 192, 192}, 18912, 0.12564},
      {0.25, 48, {192, 144, 96, 48}, {96, 128, 160, 192}, 9456, 0.06282},
      {0.15, 28, {192, 137, 82, 28}, {56, 101, 146, 192}, 5516, 0.03664},
      {0.1, 19, {192, 134, 76, 19}, {38, 89, 140, 192}, 3743, 0.02487},
      {0.05, 9, {192, 131, 70, 9}, {18, 76, 134, 192}, 1773, 0.01178},
      {0.01, 1, {192, 128, 64, 1}, {2, 65, 128, 192}, 197, 0.001309},
      {0.001, 1, {192, 128, 64, 1}, {2, 65, 128, 192}, 197, 0.001309}};
  for (const auto& row : rows) {
    SCOPED_TRACE("r = " + std::to_string(row.ratio));
    EXPECT_EQ(symbols_per_token(192, row.ratio), row.d_r);
    EXPECT_EQ(encoder_widths(192, row.ratio), row.enc);
    EXPECT_EQ(decoder_widths(192, row.ratio), row.dec);
    EXPECT_EQ(197 * row.d_r, row.k);
    EXPECT_NEAR(zeta(197 * row.d_r), row.zeta, 5e-6);
    const auto options = JsccOptions().dim(192).ratio(row.ratio);
    JsccEncoder encoder(options);
    JsccDecoder decoder(options);
    const auto& w = encoder->named_parameters();
    EXPECT_EQ(w["re.0.weight"].sizes(), torch::IntArrayRef({row.enc[1], 192}));
    EXPECT_EQ(w["im.4.weight"].sizes(), torch::IntArrayRef({row.d_r, row.enc[2]}));
    EXPECT_EQ(decoder->named_parameters()["mlp.0.weight"].sizes(), torch::IntArrayRef({row.dec[1], 2 * row.d_r}));
    const auto z = encoder->forward(torch::randn({2, 5, 192}));
    EXPECT_EQ(z.sizes(), torch::IntArrayRef({2, 5, row.d_r}));
    EXPECT_EQ(decoder->forward(z).sizes(), torch::IntArrayRef({2, 5, 192}));
  }
  // Flattened MNv3 (METHOD §6.2): 24 tokens of 784 → k = 24·d_r.
  const std::vector<std::pair<double, int64_t>> mnv3 = {{0.5, 9408}, {0.25, 4704}, {0.15, 2808}, {0.1, 1872},
                                                        {0.05, 936}, {0.01, 168}, {0.001, 24}};
  for (const auto& [r, k] : mnv3) EXPECT_EQ(24 * symbols_per_token(784, r), k) << r;
}

TEST(JsccBank, NamesIndicesAndRoundTrip) {
  JsccBank bank(JsccBankOptions().dim(16).ratios({0.5, 0.25, 0.01}));
  const auto params = bank->named_parameters();
  EXPECT_TRUE(params.contains("0.encoder.re.0.weight"));
  EXPECT_TRUE(params.contains("2.encoder.im.4.bias"));
  EXPECT_TRUE(params.contains("1.decoder.mlp.2.weight"));
  EXPECT_EQ(params.size(), 3u * 18u);  // 3 codecs × (re, im, dec) × 3 layers × (w, b)
  EXPECT_EQ(bank->index_of(0.25), 1);
  EXPECT_EQ(bank->symbols_per_token(1), 4);
  EXPECT_NE(error_of([&] { bank->index_of(0.3); }).find("0.25"), std::string::npos);
  const Payload p = bank->encode(torch::randn({2, 7, 16}), 1, "proposal");
  EXPECT_EQ(p.symbols.sizes(), torch::IntArrayRef({2, 7, 4}));
  EXPECT_EQ(p.ratio_index, 1);
  EXPECT_EQ(bank->decode(p).sizes(), torch::IntArrayRef({2, 7, 16}));
  Payload wrong = p;
  wrong.ratio_index = 0;  // width 4 against the r = 0.5 decoder (8)
  const auto msg = error_of([&] { bank->decode(wrong); });
  EXPECT_NE(msg.find("ShapeError"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected width 8"), std::string::npos) << msg;
}

TEST(CnnJscc, KernelStrideTableForEveryRatio) {  // METHOD §6.2
  using Steps = std::vector<std::tuple<int64_t, int64_t, int64_t>>;  // (kernel, stride, size)
  const std::vector<std::tuple<double, int64_t, Steps, Steps>> table = {
      {0.5, 14, {{6, 1, 23}, {6, 1, 18}, {5, 1, 14}}, {{5, 1, 18}, {6, 1, 23}, {6, 1, 28}}},
      {0.25, 7, {{8, 1, 21}, {8, 1, 14}, {1, 2, 7}}, {{2, 2, 14}, {8, 1, 21}, {8, 1, 28}}},
      {0.15, 4, {{9, 1, 20}, {9, 1, 12}, {1, 3, 4}}, {{3, 3, 12}, {9, 1, 20}, {9, 1, 28}}},
      {0.1, 2, {{10, 1, 19}, {1, 2, 10}, {1, 5, 2}}, {{1, 9, 10}, {1, 2, 19}, {10, 1, 28}}},
      {0.05, 1, {{10, 1, 19}, {1, 2, 10}, {1, 10, 1}}, {{10, 1, 10}, {1, 2, 19}, {10, 1, 28}}},
      {0.01, 1, {{10, 1, 19}, {1, 2, 10}, {1, 10, 1}}, {{10, 1, 10}, {1, 2, 19}, {10, 1, 28}}},
      {0.001, 1, {{10, 1, 19}, {1, 2, 10}, {1, 10, 1}}, {{10, 1, 10}, {1, 2, 19}, {10, 1, 28}}}};
  for (const auto& [r, s, enc, dec] : table) {
    SCOPED_TRACE("r = " + std::to_string(r));
    const auto plan = plan_cnn_jscc(28, r);
    EXPECT_EQ(plan.side, s);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(std::make_tuple(plan.encoder[k].kernel, plan.encoder[k].stride, plan.encoder[k].out_size), enc[k]);
      EXPECT_EQ(std::make_tuple(plan.decoder[k].kernel, plan.decoder[k].stride, plan.decoder[k].out_size), dec[k]);
      EXPECT_FALSE(plan.encoder[k].transposed);
      EXPECT_TRUE(plan.decoder[k].transposed);
    }
    const auto options = CnnJsccOptions().ratio(r);
    CnnJsccEncoder encoder(options);
    CnnJsccDecoder decoder(options);
    const auto z = encoder->forward(torch::randn({2, 24, 28, 28}));
    EXPECT_EQ(z.sizes(), torch::IntArrayRef({2, 24, s, s}));
    EXPECT_LT((z.abs().square().sum(-1) - 1).abs().max().item<double>(), 1e-5);  // per row
    EXPECT_EQ(decoder->forward(z).sizes(), torch::IntArrayRef({2, 24, 28, 28}));
    EXPECT_NEAR(zeta(24 * s * s), 24.0 * s * s / 150528, 1e-12);
  }
  const auto& p = CnnJsccDecoder(CnnJsccOptions())->named_parameters();
  EXPECT_EQ(p["net.0.weight"].sizes(), torch::IntArrayRef({48, 40, 5, 5}));  // ConvTranspose: (in, out, k, k)
  EXPECT_EQ(p["net.4.weight"].sizes(), torch::IntArrayRef({32, 24, 6, 6}));
}

TEST(Gradients, FlowThroughEncoderChannelDecoder) {
  for (const std::string spec : {"awgn", "noiseless", "rayleigh-csi", "awgn:power=reference"}) {
    SCOPED_TRACE(spec);
    torch::manual_seed(0);
    JsccCodec codec(JsccOptions().dim(32).ratio(0.25));
    auto rng = make_generator(3);
    Payload sent;
    sent.method = "proposal";
    sent.symbols = codec->encoder->forward(torch::randn({3, 6, 32}));
    sent.token_mask = torch::ones({3, 6}, torch::kBool);
    sent.token_mask.index_put_({0, 3}, false);  // a padded slot must not poison the gradients
    const Received got = make_channel(spec)->apply(sent, torch::tensor({0.0, 5.0, 10.0}), rng);
    codec->decoder->forward(got.payload.symbols).square().mean().backward();
    for (const auto& item : codec->named_parameters()) {
      const auto& grad = item.value().grad();
      ASSERT_TRUE(grad.defined()) << item.key();
      EXPECT_TRUE(grad.isfinite().all().item<bool>()) << item.key();
      EXPECT_GT(grad.abs().sum().item<double>(), 0) << item.key();
    }
  }
}

TEST(Validation, BadPayloadsAndSnrAreRejectedByName) {
  auto rng = make_generator(0);
  const Payload good = unit_norm_payload(2, 4, 19, rng);
  AwgnChannel awgn;
  auto msg = error_of([&] { awgn.apply(good, torch::tensor({10.0, std::nan("")}), rng); });
  EXPECT_NE(msg.find("snr_db[1] is nan"), std::string::npos) << msg;
  msg = error_of([&] { awgn.apply(good, torch::tensor({10.0, 1.0, 2.0}), rng); });
  EXPECT_NE(msg.find("snr_db has shape [3], expected [2]"), std::string::npos) << msg;
  JsccDecoder decoder(JsccOptions().ratio(0.15));  // 28 symbols/token
  msg = error_of([&] { decoder->forward(good.symbols); });
  EXPECT_NE(msg.find("expected [*, *, 28]"), std::string::npos) << msg;
  msg = error_of([&] { validate(good, "test", /*expected_width=*/28); });
  EXPECT_NE(msg.find("expected width 28"), std::string::npos) << msg;
  Payload nan = good;
  nan.symbols = good.symbols.clone();
  nan.symbols.index_put_({1, 2, 3}, c10::complex<float>(NAN, 0));
  msg = error_of([&] { validate(nan, "test"); });
  EXPECT_NE(msg.find("FormatError: test: payload.symbols"), std::string::npos) << msg;
  Payload real = good;
  real.symbols = torch::view_as_real(good.symbols);
  msg = error_of([&] { validate(real, "test"); });
  EXPECT_NE(msg.find("payload.symbols has dtype Float, expected ComplexFloat"), std::string::npos) << msg;
  Payload mask = good;
  mask.token_mask = torch::ones({2, 5}, torch::kBool);
  msg = error_of([&] { validate(mask, "test"); });
  EXPECT_NE(msg.find("payload.token_mask has shape [2, 5], expected [2, 4]"), std::string::npos) << msg;
  msg = error_of([] { make_channel("rayleig"); });
  EXPECT_NE(msg.find("ConfigError: unknown channel 'rayleig'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rayleigh-csi"), std::string::npos) << msg;
  msg = error_of([] { make_channel("awgn:K=4"); });
  EXPECT_NE(msg.find("unknown option 'K'"), std::string::npos) << msg;
  msg = error_of([] { make_channel("rician:K=abc"); });
  EXPECT_NE(msg.find("K=abc is not a number"), std::string::npos) << msg;
  msg = error_of([] { make_channel("rician:csi=yes"); });
  EXPECT_NE(msg.find("expected none|zf|mmse"), std::string::npos) << msg;
}

TEST(Channels, PaddedSlotsAreNotSentAndDoNotChangeRealSlots) {
  auto rng = make_generator(8);
  Payload sent = unit_norm_payload(2, 6, 9, rng);
  sent.token_mask = torch::tensor({1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0}, torch::kBool).view({2, 6});
  Payload loud = sent;  // padding garbage 1000× louder must not change what real slots receive
  loud.symbols = sent.symbols * (sent.token_mask.logical_not().unsqueeze(-1) * 999 + 1);
  for (const std::string spec : {"awgn", "rayleigh", "rayleigh-mmse", "rayleigh-symbol"}) {
    auto rng_a = make_generator(9), rng_b = make_generator(9);
    const auto a = make_channel(spec)->apply(sent, torch::full({2}, 0.0), rng_a);
    const auto b = make_channel(spec)->apply(loud, torch::full({2}, 0.0), rng_b);
    EXPECT_TRUE(torch::equal(a.payload.symbols, b.payload.symbols)) << spec;
    const auto padded = sent.token_mask.logical_not();
    EXPECT_EQ(a.payload.symbols.index({padded}).abs().max().item<double>(), 0.0) << spec;
  }
  EXPECT_EQ(sent.symbols_per_image(0), 3 * 9);
  EXPECT_EQ(sent.symbols_per_image(1), 5 * 9);
}

TEST(Channels, CnnMapPowerIsMeasuredOverTheMap) {  // METHOD §6.2, 10 P14
  auto rng = make_generator(12);
  const int64_t s = 7;
  Payload sent;
  sent.method = "mobilenet-cnn";
  const auto u = complex_normal({64, 24, s, s}, 1.0, rng);
  sent.symbols = u / u.abs().square().sum(-1, true).sqrt();  // rows unit norm: map power 1/s
  const auto snr = torch::full({64}, 10.0);
  const auto squared = make_channel("awgn")->apply(sent, snr, rng);
  EXPECT_EQ(squared.noise_var.sizes(), torch::IntArrayRef({64, 24, 1, 1}));
  EXPECT_NEAR(squared.noise_var.mean().item<double>(), (1.0 / s) / 10.0, 1e-7);
  const auto noise = (squared.payload.symbols - sent.symbols).abs().square().mean().item<double>();
  EXPECT_NEAR(noise / ((1.0 / s) / 10.0), 1.0, 0.03);
  const auto reference = make_channel("awgn:power=reference")->apply(sent, snr, rng);
  EXPECT_NEAR(reference.noise_var.mean().item<double>(), std::sqrt(double(s)) / (s * s) / 10.0, 1e-7);
  const auto rows = make_channel("awgn:power=reference,power_axes=last")->apply(sent, snr, rng);
  EXPECT_EQ(rows.noise_var.sizes(), torch::IntArrayRef({64, 24, s, 1}));
  EXPECT_NEAR(rows.noise_var.mean().item<double>(), (1.0 / s) / 10.0, 1e-7);  // ‖row‖ = 1
}

TEST(Channels, NamesRoundTripAndDigitalPassesThrough) {
  for (const std::string spec : {"noiseless", "awgn", "rayleigh", "rayleigh-csi", "rayleigh-mmse", "rayleigh-symbol",
                                 "rician:K=4", "rician:K=10,csi=mmse", "rayleigh-symbol:var=2",
                                 "awgn:power=reference,power_axes=last"}) {
    EXPECT_EQ(make_channel(spec)->name(), spec);
  }
  EXPECT_EQ(make_channel("rician")->name(), "rician:K=4");
  EXPECT_EQ(make_channel("rayleigh:csi=zf")->name(), "rayleigh-csi");
  Payload jpeg;
  jpeg.method = "jpeg";
  jpeg.bytes = {"\xff\xd8 abc", "\xff\xd8 de"};
  auto rng = make_generator(0);
  const auto got = make_channel("rayleigh")->apply(jpeg, torch::zeros({2}), rng);
  EXPECT_EQ(got.payload.bytes, jpeg.bytes);
  EXPECT_EQ(jpeg.symbols_per_image(1), 0);
}

TEST(Channels, SpecListsKeepOptionsWithTheirChannel) {
  EXPECT_EQ(split_channel_specs("awgn,rician:K=4,csi=zf,rayleigh"),
            (std::vector<std::string>{"awgn", "rician:K=4,csi=zf", "rayleigh"}));
  EXPECT_EQ(split_channel_specs("rician:K=4,csi=zf;awgn"), (std::vector<std::string>{"rician:K=4,csi=zf", "awgn"}));
  EXPECT_EQ(split_channel_specs("awgn"), (std::vector<std::string>{"awgn"}));
  for (const std::string& spec : split_channel_specs("awgn, rayleigh-symbol:var=2,csi=zf")) EXPECT_NO_THROW(make_channel(spec));
}

// On every channel the raw residual y − h·z (before any equalisation) carries the noise power the
// SNR asks for: σ² = (1/d_r)/snr_lin for unit-norm tokens (× σ_f² for per-symbol fading).
struct ChannelCase { std::string spec; Equalizer equalizer; double noise_scale; };
class ChannelTest : public ::testing::TestWithParam<ChannelCase> {};

TEST_P(ChannelTest, ResidualNoiseMatchesSnr) {
  const auto& param = GetParam();
  auto channel = make_channel(param.spec);
  auto rng = make_generator(11);
  const int64_t images = 256, d_r = 28;
  const Payload sent = unit_norm_payload(images, /*tokens=*/32, d_r, rng);
  const auto snr = torch::full({images}, 10.0);
  const Received got = channel->apply(sent, snr, rng);
  const auto h = broadcast_gain(got.gain, sent.symbols);
  const double expected = param.noise_scale * (1.0 / d_r) / db_to_lin(10.0);
  if (param.noise_scale > 0) {
    EXPECT_NEAR(got.noise_var.mean().item<double>() / expected, 1.0, 1e-5);
  }
  auto raw = got.payload.symbols;  // undo the receiver's equaliser
  if (param.equalizer == Equalizer::kZeroForcing) raw = raw * h;
  if (param.equalizer == Equalizer::kMmse) raw = raw * (h.abs().square() + got.noise_var * d_r) / h.conj();
  const auto noise = raw - h * sent.symbols;
  if (param.noise_scale == 0) {
    EXPECT_EQ(noise.abs().max().item<double>(), 0.0);
  } else {
    EXPECT_NEAR(noise.abs().square().mean().item<double>() / expected, 1.0, 0.02);  // ~10σ
  }
}

INSTANTIATE_TEST_SUITE_P(
    Comm, ChannelTest,
    ::testing::Values(ChannelCase{"noiseless", Equalizer::kNone, 0.0}, ChannelCase{"awgn", Equalizer::kNone, 1.0},
                      ChannelCase{"rayleigh", Equalizer::kNone, 1.0},
                      ChannelCase{"rayleigh-csi", Equalizer::kZeroForcing, 1.0},
                      ChannelCase{"rayleigh-mmse", Equalizer::kMmse, 1.0},
                      ChannelCase{"rayleigh-symbol", Equalizer::kNone, 1.0},
                      ChannelCase{"rayleigh-symbol:var=2", Equalizer::kNone, 2.0},
                      ChannelCase{"rayleigh-symbol:csi=zf", Equalizer::kZeroForcing, 1.0},
                      ChannelCase{"rician:K=4", Equalizer::kNone, 1.0},
                      ChannelCase{"rician:K=4,csi=zf", Equalizer::kZeroForcing, 1.0}),
    [](const auto& info) {
      std::string label = info.param.spec;
      for (auto& c : label) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return label;
    });

TEST(CommConfig, DefaultsBuildTheBankAndChannel) {
  const Config config = Config::load("");
  const auto ratios = config.get_doubles("comm.ratios");
  EXPECT_EQ(ratios, (std::vector<double>{0.001, 0.01, 0.05, 0.1, 0.15, 0.25, 0.5}));
  EXPECT_EQ(make_channel(config.get_string("comm.channel"))->name(), "awgn");
  EXPECT_FALSE(config.get_bool("comm.reference_power"));
  EXPECT_DOUBLE_EQ(config.get_double("comm.train_snr_min"), -20.0);
  EXPECT_EQ(config.get_int("comm.input_values"), 0);  // auto: C·H·W of the model
  EXPECT_EQ(config.get_int("comm.split"), 3);
  JsccBank bank(JsccBankOptions().ratios(ratios));
  EXPECT_EQ(bank->size(), 7);
  EXPECT_EQ(bank->symbols_per_token(bank->index_of(0.15)), 28);
}

// MobileNetV3 (METHOD §6.2, 10 P11): torchvision parity on a committed fixture
// (scripts/make_mobilenet_fixture.py), torchvision's names/shapes/parameter
// counts, the device/server split, input checks, the 1000-way reference head,
// init, BN momentum, a few Adam steps.
#include <gtest/gtest.h>

#include "common/helpers.h"
#include <torch/torch.h>

#include <fstream>
#include <map>
#include <sstream>

#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/model/mobilenet_v3.h"

using namespace tokcom;
using tokcom::test::error_of;

namespace {

std::string shape_text(const at::Tensor& t) {
  std::string s;
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s.empty() ? "scalar" : s;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// tests/data/mobilenet_v3_keys.txt: "<variant> <name> <shape>" and "<variant>
// params <count>".
struct TorchvisionKeys {
  std::map<std::string, std::string> shapes;
  int64_t params = 0;
};
TorchvisionKeys torchvision_keys(const std::string& variant) {
  std::ifstream in(std::string(TOKCOM_TEST_DATA) + "/mobilenet_v3_keys.txt");
  TorchvisionKeys keys;
  std::string v, name, shape;
  while (in >> v >> name >> shape) {
    if (v != variant) continue;
    if (name == "params")
      keys.params = std::stoll(shape);
    else
      keys.shapes[name] = shape;
  }
  return keys;
}

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace

// C++ = torchvision mobilenet_v3_small (random weights, randomised BN
// statistics, eval mode).
TEST(MobileNetV3, MatchesTorchvisionFixture) {
  const Safetensors file =
      read_safetensors(std::string(TOKCOM_TEST_DATA) + "/mobilenet_v3_small_fixture.safetensors");
  TensorMap weights;
  for (const auto& [name, t] : file.tensors)  // weights are stored as F16 (see the script)
    if (name != "input" && name != "logits" && name.rfind("hidden.", 0) != 0)
      weights[name] = t.is_floating_point() ? t.to(torch::kFloat) : t;
  MobileNetV3 model(MobileNetV3Options().variant("small").num_classes(10));
  const LoadReport report = load_tensors(*model, weights, "fixture", /*strict=*/true);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty());
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = file.tensors.at("input");
  const torch::Tensor logits = model->forward(x);
  const torch::Tensor expected = file.tensors.at("logits");
  ASSERT_EQ(logits.sizes(), expected.sizes());
  EXPECT_GT(expected.abs().max().item<double>(),
            1.0);  // the fixture is not degenerate
  EXPECT_GT(max_abs_diff(expected[0], expected[1]), 0.1);
  EXPECT_LE(max_abs_diff(logits, expected), 1e-4);
  EXPECT_LE(max_abs_diff(model->forward_device(x), file.tensors.at("hidden.features.2")), 1e-4);
  const TensorMap outputs = mobilenet_predict_outputs(model, x, /*hidden=*/true);
  EXPECT_LE(max_abs_diff(outputs.at("logits"), expected), 1e-4);
  EXPECT_LE(max_abs_diff(outputs.at("hidden.features.2"), file.tensors.at("hidden.features.2")),
            1e-4);
  EXPECT_EQ(outputs.count("hidden.features.12"), 1u);
  EXPECT_EQ(outputs.size(), 1u + 13u);
  // A wrong weight must break parity (the test can fail).
  weights["features.4.block.2.fc1.bias"] = weights["features.4.block.2.fc1.bias"] + 0.5;
  load_tensors(*model, weights, "fixture");
  EXPECT_GT(max_abs_diff(model->forward(x), expected), 1e-3);
}

// The depthwise convolutions crop their kernel to the taps that reach the map: known crops, and
// the same outputs and gradients as the full kernel (torch::conv2d) on maps smaller and larger
// than the kernel, stride 1 and 2.
TEST(MobileNetV3, DepthwiseCropIsExact) {
  EXPECT_EQ(unreachable_taps(1, 5, 1, 2), 2);  // 1×1 map: only the centre tap
  EXPECT_EQ(unreachable_taps(2, 5, 1, 2), 1);  // 2×2: the middle 3×3
  EXPECT_EQ(unreachable_taps(2, 5, 2, 2), 1);  // 2×2 → 1×1 with stride 2: taps 2, 3 reach; 3×3 pad 1
  EXPECT_EQ(unreachable_taps(4, 5, 2, 2), 0);
  EXPECT_EQ(unreachable_taps(4, 5, 1, 2), 0);
  EXPECT_EQ(unreachable_taps(1, 3, 1, 1), 1);
  EXPECT_EQ(unreachable_taps(7, 3, 2, 1), 0);
  torch::manual_seed(3);
  for (const int64_t n : {1, 2, 3, 4, 7})
    for (const int64_t k : {3, 5})
      for (const int64_t stride : {1, 2}) {
        const int64_t pad = (k - 1) / 2, channels = 6;
        const torch::Tensor x0 = torch::randn({2, channels, n, n}, torch::kDouble);
        const torch::Tensor w0 = torch::randn({channels, 1, k, k}, torch::kDouble);
        torch::Tensor x1 = x0.clone().requires_grad_(), w1 = w0.clone().requires_grad_();
        torch::Tensor x2 = x0.clone().requires_grad_(), w2 = w0.clone().requires_grad_();
        const torch::Tensor full = torch::conv2d(x1, w1, {}, stride, pad, 1, channels);
        const torch::Tensor cropped = conv2d_reachable(x2, w2, stride, pad, channels);
        ASSERT_EQ(cropped.sizes(), full.sizes()) << "n " << n << " k " << k << " stride " << stride;
        EXPECT_LE(max_abs_diff(cropped, full), 1e-12) << "n " << n << " k " << k << " stride " << stride;
        const torch::Tensor g = torch::randn_like(full);
        full.backward(g);
        cropped.backward(g);
        EXPECT_LE(max_abs_diff(x2.grad(), x1.grad()), 1e-12);
        EXPECT_LE(max_abs_diff(w2.grad(), w1.grad()), 1e-12);
      }
  EXPECT_THROW(conv2d_reachable(torch::randn({2, 6, 4}), torch::randn({6, 1, 3, 3}), 1, 1, 6), ShapeError);
}

class MobileNetVariant : public ::testing::TestWithParam<std::string> {};

// Names, shapes (parameters and buffers) and parameter count are torchvision's.
TEST_P(MobileNetVariant, NamesAndShapesAreTorchvisions) {
  const TorchvisionKeys expected = torchvision_keys(GetParam());
  ASSERT_GT(expected.shapes.size(), 200u);
  MobileNetV3 model(MobileNetV3Options().variant(GetParam()));
  std::map<std::string, std::string> got;
  for (const auto& [name, t] : named_tensors(*model)) got[name] = shape_text(t);
  EXPECT_EQ(got, expected.shapes);
  EXPECT_EQ(parameter_count(*model), expected.params);
}

// METHOD §6.2: the device half at 224 px; forward == forward_server ∘
// forward_device.
TEST_P(MobileNetVariant, SplitShapesAndComposition) {
  torch::manual_seed(3);
  MobileNetV3 model(MobileNetV3Options().variant(GetParam()));
  model->eval();
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> expected = GetParam() == "small" ? std::vector<int64_t>{1, 24, 28, 28}
                                                              : std::vector<int64_t>{1, 24, 56, 56};
  const torch::Tensor f = model->forward_device(torch::randn({1, 3, 224, 224}));
  EXPECT_EQ(f.sizes().vec(), expected);
  EXPECT_EQ(model->device_shape(224, 224),
            std::vector<int64_t>(expected.begin() + 1, expected.end()));
  EXPECT_EQ(model->device_shape(64, 65)[2],
            model->forward_device(torch::randn({1, 3, 64, 65})).size(3));
  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  const torch::Tensor direct = model->forward(x);
  EXPECT_EQ(direct.sizes().vec(), (std::vector<int64_t>{2, 10}));
  EXPECT_TRUE(torch::equal(direct, model->forward_server(model->forward_device(x))));
  const auto hidden = model->forward_hidden(x);
  ASSERT_EQ(static_cast<int64_t>(hidden.size()), model->num_features());
  EXPECT_EQ(hidden[2].first, "features.2");
  EXPECT_TRUE(torch::equal(hidden[2].second, model->forward_device(x)));
}

INSTANTIATE_TEST_SUITE_P(Variants, MobileNetVariant, ::testing::Values("small", "large"));

TEST(MobileNetV3, BadInputsNameShapes) {
  MobileNetV3 model{MobileNetV3Options()};
  const std::string e = error_of([&] { model->forward(torch::zeros({2, 1, 64, 64})); });
  EXPECT_NE(e.find("MobileNetV3::forward: x has shape [2, 1, 64, 64], expected "
                   "[*, 3, *, *]"),
            std::string::npos)
      << e;
  EXPECT_THROW(model->forward(torch::zeros({3, 64, 64})), ShapeError);
  const std::string s = error_of([&] { model->forward_server(torch::zeros({2, 16, 8, 8})); });
  EXPECT_NE(s.find("f has shape [2, 16, 8, 8], expected [*, 24, *, *]"), std::string::npos) << s;
  EXPECT_THROW(MobileNetV3(MobileNetV3Options().variant("medium")), ConfigError);
  EXPECT_NE(
      error_of([] { mobilenet_variant_from_model_name("mobilenet-v2"); }).find("mobilenet-v2"),
      std::string::npos);
  EXPECT_EQ(mobilenet_variant_from_model_name("mobilenet-v3-large"), "large");
}

// METHOD §10 P11: 10-way head by default, the reference's 1000-way head behind the
// switch.
TEST(MobileNetV3, ReferenceHeadSwitch) {
  const Config defaults = Config::from_yaml("{}");
  MobileNetV3 ours = make_mobilenet(defaults);
  EXPECT_EQ(ours->classifier[3]->as<torch::nn::Linear>()->weight.sizes().vec(),
            (std::vector<int64_t>{10, 1024}));
  const Config reference =
      Config::from_yaml("{}", {"mobilenet.reference_head=true", "mobilenet.variant=large"});
  MobileNetV3 ref = make_mobilenet(reference);
  ref->eval();
  EXPECT_EQ(ref->forward(torch::randn({1, 3, 32, 32})).size(1), 1000);
  EXPECT_EQ(ref->classifier[3]->as<torch::nn::Linear>()->weight.sizes().vec(),
            (std::vector<int64_t>{1000, 1280}));
  EXPECT_THROW(make_mobilenet(Config::from_yaml("{}", {"mobilenet.variant=tiny"})), ConfigError);
}

// torchvision `_make_divisible` known answers, and width_mult 0.5 / 0.75
// parameter counts computed with torchvision 0.14.1
// (mobilenet_v3_small(num_classes=10, width_mult=w)).
TEST(MobileNetV3, WidthMultiplier) {
  EXPECT_EQ(make_divisible(8.0), 8);
  EXPECT_EQ(make_divisible(3.0), 8);    // at least the divisor
  EXPECT_EQ(make_divisible(54.0), 56);  // 72 · 0.75
  EXPECT_EQ(make_divisible(42.0), 40);  // 40 ≥ 0.9 · 42
  EXPECT_EQ(make_divisible(100.0), 104);
  MobileNetV3 half(MobileNetV3Options().width_mult(0.5));
  EXPECT_EQ(parameter_count(*half), 409394);
  EXPECT_EQ(parameter_count(*MobileNetV3(MobileNetV3Options().width_mult(0.75))), 892610);
}

// One-channel input (Fashion-MNIST at 28 px) only changes features.0.0.
TEST(MobileNetV3, OneChannelInput) {
  MobileNetV3 model(MobileNetV3Options().in_chans(1));
  EXPECT_EQ(named_tensors(*model).at("features.0.0.weight").sizes().vec(),
            (std::vector<int64_t>{16, 1, 3, 3}));
  model->eval();
  EXPECT_EQ(model->forward(torch::randn({4, 1, 28, 28})).sizes().vec(),
            (std::vector<int64_t>{4, 10}));
  EXPECT_EQ(model->forward_device(torch::randn({1, 1, 28, 28})).sizes().vec(),
            (std::vector<int64_t>{1, 24, 4, 4}));
}

// torchvision init: BN ones/zeros, eps 1e-3, momentum 0.01; Linear N(0, 0.01),
// zero biases; conv kaiming normal fan_out (std √(2 / (out/groups · k²))).
TEST(MobileNetV3, InitAndBatchNorm) {
  torch::manual_seed(0);
  MobileNetV3 model(MobileNetV3Options().variant("large"));
  const TensorMap t = named_tensors(*model);
  EXPECT_TRUE(torch::equal(t.at("features.0.1.weight"), torch::ones({16})));
  EXPECT_TRUE(torch::equal(t.at("features.0.1.bias"), torch::zeros({16})));
  EXPECT_TRUE(torch::equal(t.at("classifier.0.bias"), torch::zeros({1280})));
  EXPECT_TRUE(torch::equal(t.at("features.4.block.2.fc1.bias"), torch::zeros({24})));  // 72/4 → 24
  EXPECT_NEAR(t.at("classifier.0.weight").std().item<double>(), 0.01, 0.0005);
  // features.16.0: 1×1 conv 160 → 960, fan_out 960: std √(2/960) = 0.0456 over
  // 153 600 values.
  EXPECT_NEAR(t.at("features.16.0.weight").std().item<double>(), std::sqrt(2.0 / 960), 0.001);
  // Depthwise 5×5 on 672 channels (features.13.block.1): PyTorch's fan_out
  // ignores groups, size(0) · k² = 672 · 25, in torchvision as here.
  EXPECT_NEAR(t.at("features.13.block.1.0.weight").std().item<double>(),
              std::sqrt(2.0 / (672 * 25)), 0.0005);
  auto* bn = model->features[0]->as<ConvNormActivation>()->norm.get();
  EXPECT_DOUBLE_EQ(bn->options.eps(), 1e-3);
  EXPECT_DOUBLE_EQ(bn->options.momentum().value(), 0.01);
  // Train mode: running_mean ← 0.99 · 0 + 0.01 · batch mean (of conv output).
  model->train();
  const torch::Tensor x = torch::randn({4, 3, 32, 32});
  torch::Tensor conv = model->features[0]->as<ConvNormActivation>()->conv->forward(x).detach();
  model->forward_device(x);
  EXPECT_LE(max_abs_diff(bn->running_mean, 0.01 * conv.mean({0, 2, 3})), 1e-6);
}

// Usable with Adam through parameters(): a few steps fit a fixed tiny batch;
// train/eval differ (dropout, batch statistics) and eval is deterministic.
TEST(MobileNetV3, AdamFitsTinyBatch) {
  torch::manual_seed(1);
  MobileNetV3 model(MobileNetV3Options().in_chans(1).dropout(0.0).width_mult(0.5));
  const torch::Tensor x = torch::randn({4, 1, 32, 32});
  const torch::Tensor y = torch::arange(4);
  torch::optim::AdamW adam(model->parameters(),
                           torch::optim::AdamWOptions(3e-3).weight_decay(0.05));
  model->train();
  double first = 0, last = 0;
  for (int step = 0; step < 8; ++step) {
    adam.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    adam.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
  model->eval();
  torch::NoGradGuard no_grad;
  // Eval uses the running statistics, training mode the batch's: they differ.
  const torch::Tensor eval_out = model->forward(x);
  model->train();
  EXPECT_GT(max_abs_diff(model->forward(x), eval_out), 1e-3);
  // With dropout, training mode draws anew at every forward; eval is deterministic.
  MobileNetV3 dropping(MobileNetV3Options().in_chans(1).dropout(0.5).width_mult(0.5));
  dropping->train();
  EXPECT_FALSE(torch::equal(dropping->forward(x), dropping->forward(x)));
  dropping->eval();
  EXPECT_TRUE(torch::equal(dropping->forward(x), dropping->forward(x)));
}

// `tokcom predict --model mobilenet-v3-small`: the CLI's logits are the library's forward of the
// same weights; a wrong channel count is a clear shape error.
TEST(MobileNetV3, PredictCliMatchesLibrary) {
  const std::string dir = test::temp_dir("mnv3-predict");
  const Config config = Config::load("imagenette64", {"mobilenet.variant=small"});
  torch::manual_seed(5);
  MobileNetV3 model = make_mobilenet(config);
  model->eval();
  save_module(dir + "/w.safetensors", *model);
  const auto x = torch::randn({2, 3, 64, 64});
  write_safetensors(dir + "/in.safetensors", {{"input", x}});
  std::string out;
  ASSERT_EQ(test::run_cli("predict --model mobilenet-v3-small --weights " + dir + "/w.safetensors -c imagenette64 --input " +
                              dir + "/in.safetensors --out " + dir + "/out.safetensors",
                          &out),
            0)
      << out;
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(read_safetensors(dir + "/out.safetensors").tensors.at("logits"), model->forward(x), 1e-5, 1e-5));
  write_safetensors(dir + "/bad.safetensors", {{"input", torch::randn({2, 1, 64, 64})}});
  EXPECT_EQ(test::run_cli("predict --model mobilenet-v3-small --weights " + dir + "/w.safetensors -c imagenette64 --input " +
                              dir + "/bad.safetensors --out " + dir + "/o2.safetensors",
                          &out),
            5);
  EXPECT_NE(out.find("input has shape [2, 1, 64, 64]"), std::string::npos) << out;
  // Positional key=value words are config overrides, as in every verb, and --set is the same: a
  // 5-way head no longer fits the 10-way weights.
  for (const std::string form : {"mobilenet.num_classes=5", "--set mobilenet.num_classes=5"}) {
    EXPECT_NE(test::run_cli("predict --model mobilenet-v3-small --weights " + dir + "/w.safetensors -c imagenette64 " +
                                "--input " + dir + "/in.safetensors -o " + dir + "/o3.safetensors " + form,
                            &out),
              0)
        << form;
    EXPECT_NE(out.find("classifier"), std::string::npos) << form << ": " << out;
  }
}

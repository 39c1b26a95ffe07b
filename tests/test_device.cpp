// Every device gives the CPU's answers. The split model runs on a CUDA GPU unchanged (torch::Device
// everywhere); these tests hold it to that: the same weights and inputs on the CPU and on CUDA, the
// same logits, kept tokens, gradients, optimiser step and channel noise. Without a GPU the CUDA
// comparisons skip and say so; scripts/cuda_check.sh builds this file alone (CMake option
// TOKCOM_DEVICE_CHECK: layers core, model and comm) on a GPU machine with a CUDA LibTorch and runs it.
// The pipeline test keeps a stored CPU answer, so its CPU instance can fail too.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "tokcom/comm/channel.h"
#include "tokcom/comm/cnn_jscc.h"
#include "tokcom/comm/jscc.h"
#include "tokcom/comm/payload.h"
#include "tokcom/core/precision.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/model/vit.h"

using namespace tokcom;

namespace {

// The device compared with the CPU: CUDA, or $TOKCOM_TEST_DEVICE (e.g. "cpu", to check the tests
// themselves on a machine without a GPU: then both sides run the same code and must agree).
torch::Device test_device() {
  const char* name = std::getenv("TOKCOM_TEST_DEVICE");
  return torch::Device(name && *name ? name : "cuda");
}

#define SKIP_WITHOUT_CUDA()                                                                    \
  do {                                                                                          \
    if (test_device().is_cuda() && !torch::cuda::is_available())                               \
      GTEST_SKIP() << "no CUDA device (scripts/cuda_check.sh runs these tests on a GPU machine)"; \
  } while (false)

// fp32 on both sides: cuDNN's convolutions default to TF32 on Ampere and later (a 10-bit mantissa),
// which would compare TF32 with fp32 rather than the code on two devices.
class ExactFp32 {
 public:
  ExactFp32() : cublas_(at::globalContext().allowTF32CuBLAS()), cudnn_(at::globalContext().allowTF32CuDNN()) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  ~ExactFp32() {
    at::globalContext().setAllowTF32CuBLAS(cublas_);
    at::globalContext().setAllowTF32CuDNN(cudnn_);
  }

 private:
  bool cublas_, cudnn_;
};

// max |a − b| / (atol + rtol·max|a|) ≤ 1, with the worst element named on failure.
::testing::AssertionResult close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol,
                                 double atol) {
  // Complex symbols compare as (re, im) pairs: a cast to a real dtype would drop the imaginary part.
  const auto real = [](const torch::Tensor& t) {
    const auto c = t.detach().cpu();
    return (c.is_complex() ? torch::view_as_real(c) : c).to(torch::kDouble);
  };
  const auto a = real(actual), e = real(expected);
  if (a.sizes() != e.sizes())
    return ::testing::AssertionFailure() << "shape " << a.sizes() << ", expected " << e.sizes();
  const double scale = e.abs().max().item<double>();
  const double worst = (a - e).abs().max().item<double>();
  if (worst <= atol + rtol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |difference| " << worst << " over " << atol + rtol * scale
                                       << " (max |expected| " << scale << ")";
}

// A small adaptive ViT (32 px, patch 8: N = 16, dim 64, depth 4, adaptive blocks 1 and 2) whose gates
// vary enough that images keep different numbers of tokens; the same seed gives the same weights.
Vit make_small_vit(uint64_t seed, const torch::Device& device) {
  torch::manual_seed(seed);
  Vit vit(VitOptions().image_size(32).patch_size(8).dim(64).depth(4).heads(2).adaptive_blocks({1, 2}));
  {
    torch::NoGradGuard no_grad;
    for (int64_t b : {1, 2}) vit->blocks[b]->as<BlockImpl>()->gate->weight.normal_(0.0, 2.0);
  }
  vit->to(device);
  return vit;
}

torch::Tensor small_images(uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({8, 3, 32, 32});
}

torch::Tensor budgets() { return torch::tensor({0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.3}, torch::kFloat); }

}  // namespace

TEST(Device, VitSoftAndHardPathsGiveTheCpuLogitsAndKeptTokens) {
  SKIP_WITHOUT_CUDA();
  ExactFp32 exact;
  const torch::Device other = test_device();
  Vit cpu = make_small_vit(3, torch::kCPU), gpu = make_small_vit(3, other);
  cpu->eval();
  gpu->eval();
  const auto images = small_images(4);
  torch::NoGradGuard no_grad;
  for (const auto mode : {SelectionMode::kSoft, SelectionMode::kHard}) {
    const auto on_cpu = cpu->forward(images, budgets(), mode);
    const auto on_gpu = gpu->forward(images.to(other), budgets().to(other), mode);
    const std::string name = mode == SelectionMode::kSoft ? "soft" : "hard";
    EXPECT_EQ(on_gpu.logits.device().type(), other.type()) << name;
    EXPECT_TRUE(close(on_gpu.logits, on_cpu.logits, 1e-4, 1e-5)) << name;
    ASSERT_EQ(on_gpu.stats.size(), on_cpu.stats.size()) << name;
    for (size_t i = 0; i < on_cpu.stats.size(); ++i) {
      EXPECT_TRUE(torch::equal(on_gpu.stats[i].kept.cpu(), on_cpu.stats[i].kept)) << name << " block " << i;
      if (on_cpu.stats[i].patch_mask.defined()) {
        EXPECT_TRUE(close(on_gpu.stats[i].patch_mask, on_cpu.stats[i].patch_mask, 1e-4, 1e-5)) << name << " block " << i;
      }
    }
  }
  // The hard path really drops: the budgets differ, so the kept counts do too (not all N).
  const auto hard = cpu->forward(images, budgets(), SelectionMode::kHard);
  EXPECT_LT(hard.stats.back().kept.min().item<int64_t>(), hard.stats.back().kept.max().item<int64_t>());
}

TEST(Device, VitTrainingStepGivesTheCpuGradientsAndWeights) {
  SKIP_WITHOUT_CUDA();
  ExactFp32 exact;
  const torch::Device other = test_device();
  const auto images = small_images(6);
  const auto labels = torch::tensor({0, 1, 2, 3, 4, 5, 6, 7}, torch::kLong);
  // Each side's own gradients are compared; the step is then taken from the CPU's gradients on both
  // sides, so the weights compare the optimiser itself. (From each side's own gradients, Adam's
  // normalisation g/√v turns the last-bit differences of near-zero gradients into differences of a
  // few percent of the learning rate: seen on an H200, up to 3.4e-5 at lr 1e-3.)
  std::vector<std::vector<torch::Tensor>> grads(2), weights(2);
  for (int side = 0; side < 2; ++side) {
    const torch::Device device = side == 0 ? torch::Device(torch::kCPU) : other;
    Vit vit = make_small_vit(5, device);
    vit->train();
    torch::optim::AdamW optimizer(vit->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.05));
    const auto out = vit->forward(images.to(device), budgets().to(device), SelectionMode::kSoft);
    const auto losses = budget_loss(out.stats, budgets().to(device));
    const auto loss = torch::cross_entropy_loss(out.logits, labels.to(device)) + 2.0 * losses.out + losses.inner;
    optimizer.zero_grad();
    loss.backward();
    auto params = vit->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      auto& p = params[i];
      grads[side].push_back(p.grad().defined() ? p.grad().cpu() : torch::Tensor());
      if (side == 1 && i < grads[0].size() && grads[0][i].defined() && p.grad().defined())
        p.mutable_grad() = grads[0][i].to(device);
    }
    optimizer.step();
    for (const auto& p : params) weights[side].push_back(p.detach().cpu());
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  size_t with_grad = 0;
  for (size_t i = 0; i < grads[0].size(); ++i) {
    ASSERT_EQ(grads[0][i].defined(), grads[1][i].defined()) << "parameter " << i;
    if (!grads[0][i].defined()) continue;
    ++with_grad;
    EXPECT_TRUE(close(grads[1][i], grads[0][i], 1e-3, 1e-6)) << "gradient of parameter " << i;
    EXPECT_TRUE(close(weights[1][i], weights[0][i], 1e-6, 1e-8)) << "parameter " << i << " after the step";
  }
  EXPECT_GT(with_grad, grads[0].size() / 2);
}

TEST(Device, MobileNetV3GivesTheCpuLogitsInBothModes) {
  SKIP_WITHOUT_CUDA();
  ExactFp32 exact;
  const torch::Device other = test_device();
  torch::manual_seed(7);
  MobileNetV3 cpu(MobileNetV3Options().dropout(0.0));
  torch::manual_seed(7);
  MobileNetV3 gpu(MobileNetV3Options().dropout(0.0));
  gpu->to(other);
  torch::manual_seed(8);
  const auto images = torch::randn({4, 3, 64, 64});
  torch::NoGradGuard no_grad;
  // Training mode normalises with the batch's statistics and updates the running ones; eval uses those.
  for (const bool training : {true, false}) {
    cpu->train(training);
    gpu->train(training);
    EXPECT_TRUE(close(gpu->forward(images.to(other)), cpu->forward(images), 1e-4, 1e-5)) << "training " << training;
  }
  EXPECT_TRUE(close(gpu->forward_server(gpu->forward_device(images.to(other))),
                    cpu->forward_server(cpu->forward_device(images)), 1e-4, 1e-5));
}

// The MobileNetV3 baseline's CNN JSCC (convolutions down to an s×s map, transposed ones back, the
// power normalisation over the map): the same symbols, decoded map and gradients on both devices, at a
// ratio whose plan has both kinds of step.
TEST(Device, CnnJsccGivesTheCpuSymbolsMapAndGradients) {
  SKIP_WITHOUT_CUDA();
  ExactFp32 exact;
  const torch::Device other = test_device();
  const auto options = CnnJsccOptions().channels(24).side(16).ratio(0.25);
  torch::manual_seed(11);
  CnnJsccCodec cpu(options);
  torch::manual_seed(11);
  CnnJsccCodec gpu(options);
  gpu->to(other);
  torch::manual_seed(12);
  const auto maps = torch::randn({4, 24, 16, 16});
  const auto sent_cpu = cpu->encoder->forward(maps), sent_gpu = gpu->encoder->forward(maps.to(other));
  EXPECT_TRUE(sent_cpu.is_complex());
  EXPECT_TRUE(close(sent_gpu, sent_cpu, 1e-4, 1e-5));
  const auto back_cpu = cpu->decoder->forward(sent_cpu), back_gpu = gpu->decoder->forward(sent_gpu);
  EXPECT_EQ(back_cpu.sizes(), maps.sizes());
  EXPECT_TRUE(close(back_gpu, back_cpu, 1e-4, 1e-5));
  (back_cpu - maps).pow(2).mean().backward();
  (back_gpu - maps.to(other)).pow(2).mean().backward();
  const auto pc = cpu->parameters(), pg = gpu->parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) EXPECT_TRUE(close(pg[i].grad(), pc[i].grad(), 1e-3, 1e-6)) << "parameter " << i;
}

TEST(Device, Bf16AutocastRunsTheViTInBf16OnCuda) {
  SKIP_WITHOUT_CUDA();
  const torch::Device other = test_device();
  Vit gpu = make_small_vit(9, other);
  gpu->eval();
  const auto images = small_images(10).to(other);
  torch::NoGradGuard no_grad;
  const auto fp32 = gpu->forward(images).logits;
  torch::Tensor bf16, product;
  {
    AutocastScope scope(Precision::kBf16, other);
    bf16 = gpu->forward(images).logits;
    product = torch::matmul(images.flatten(1), images.flatten(1).t());
  }
  EXPECT_EQ(product.scalar_type(), torch::kBFloat16);  // autocast was on for CUDA inside the scope
  EXPECT_EQ(torch::matmul(images.flatten(1), images.flatten(1).t()).scalar_type(), torch::kFloat);  // and off after
  EXPECT_TRUE(torch::isfinite(bf16).all().item<bool>());
  EXPECT_TRUE(close(bf16.to(torch::kFloat), fp32, 5e-2, 5e-2));
  EXPECT_FALSE(torch::equal(bf16.to(torch::kFloat), fp32));  // bf16 rounding is visible
}

// The JSCC code and three channels at four SNRs against the answer stored from the CPU with this
// project's LibTorch (sum, absolute sum and two elements of each decoded tensor): noise is drawn on
// the CPU generator and moved, so CUDA gives the same numbers; a change in the code, the channel
// noise or the generator moves them, so the CPU instance can fail too.
class DevicePipeline : public ::testing::TestWithParam<std::string> {};

TEST_P(DevicePipeline, MatchesTheStoredCpuReference) {
  const torch::Device device(GetParam());
  if (device.is_cuda() && !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(0);
  JsccCodec codec(JsccOptions().dim(32).ratio(0.5));
  const auto x = torch::randn({4, 10, 32});
  codec->to(device);
  Payload sent;
  sent.method = "proposal";
  sent.symbols = codec->encoder->forward(x.to(device));
  auto rng = make_generator(5);
  const std::vector<std::string> specs = {"awgn", "rayleigh-mmse", "rayleigh-symbol"};
  // sum, Σ|·|, [0][0][0], [3][9][31] of the decoded (4, 10, 32) tensor, per channel.
  const std::vector<std::array<double, 4>> reference = {{-17.2190228, 137.726166, 0.243693843, 0.0807545334},
                                                        {-17.7455254, 136.121582, 0.22997731, 0.0867122635},
                                                        {-21.5990257, 139.050415, 0.211186916, 0.0658069104}};
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto got = make_channel(specs[i])->apply(sent, torch::tensor({-5.0, 0.0, 5.0, 10.0}), rng);
    EXPECT_EQ(got.payload.symbols.device().type(), device.type());
    const torch::Tensor out = codec->decoder->forward(got.payload.symbols).cpu().to(torch::kDouble);
    const std::array<double, 4> actual = {out.sum().item<double>(), out.abs().sum().item<double>(),
                                          out[0][0][0].item<double>(), out[3][9][31].item<double>()};
    for (size_t k = 0; k < 4; ++k)
      EXPECT_NEAR(actual[k], reference[i][k], 1e-4 * (1 + std::abs(reference[i][k]))) << specs[i] << " value " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Device, DevicePipeline, ::testing::Values("cpu", "cuda"),
                         [](const auto& info) { return info.param; });

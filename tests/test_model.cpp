// Model: timm names, init (nothing dropped), token selection invariants (METHOD §3), soft vs hard
// paths (METHOD §10 P3–P5), budget losses and α sampling (METHOD §4), parity with an independent
// PyTorch implementation (scripts/make_vit_fixture.py), input validation.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "common/helpers.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/precision.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/eval/budget_calibration.h"
#include "tokcom/eval/checkpoint_config.h"
#include "tokcom/eval/evaluate.h"
#include "common/tiny_vit.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/model/vit.h"
#include "tokcom/model/weights_io.h"

using namespace tokcom;
using tokcom::test::error_of;

namespace {

// The fixture's geometry: 32 px, patch 8 (16 patches), dim 48, depth 4, heads 3.
VitOptions tiny(bool reference = false) {
  return VitOptions().image_size(32).patch_size(8).dim(48).depth(4).heads(3).num_classes(10)
      .adaptive_blocks({1, 2}).reference(reference);
}

// Sharper gates than the init so that tokens get dropped, with different counts per image.
Vit dropping_model(bool reference = false, uint64_t seed = 3) {
  torch::manual_seed(seed);
  Vit model(tiny(reference));
  torch::NoGradGuard no_grad;
  for (int64_t i : {1, 2}) {
    auto& block = *model->blocks[i]->as<BlockImpl>();
    block.gate->weight.normal_(0.0, 2.0);
    block.gate->bias.fill_(i == 1 ? 0.5 : 0.0);
    block.threshold->bias.fill_(0.0);
  }
  model->eval();
  return model;
}

torch::Tensor images_of(int64_t batch, uint64_t seed = 5) {
  torch::manual_seed(seed);
  return torch::randn({batch, 3, 32, 32});
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST(Vit, NamedParametersAreTimmNames) {
  Vit model(VitOptions().image_size(32).patch_size(8).dim(48).depth(2).heads(3).num_classes(10)
                .adaptive_blocks({1}));
  std::map<std::string, std::vector<int64_t>> expected = {
      {"cls_token", {1, 1, 48}}, {"pos_embed", {1, 17, 48}},
      {"patch_embed.proj.weight", {48, 3, 8, 8}}, {"patch_embed.proj.bias", {48}},
      {"budget_token_a", {1, 1, 48}}, {"budget_token_b", {1, 1, 48}},
      {"norm.weight", {48}}, {"norm.bias", {48}}, {"head.weight", {10, 48}}, {"head.bias", {10}},
      {"blocks.1.gate.weight", {1, 48}}, {"blocks.1.gate.bias", {1}},
      {"blocks.1.threshold.weight", {1, 48}}, {"blocks.1.threshold.bias", {1}}};
  for (const std::string b : {"blocks.0.", "blocks.1."}) {
    expected[b + "norm1.weight"] = {48};
    expected[b + "norm1.bias"] = {48};
    expected[b + "attn.qkv.weight"] = {144, 48};
    expected[b + "attn.qkv.bias"] = {144};
    expected[b + "attn.proj.weight"] = {48, 48};
    expected[b + "attn.proj.bias"] = {48};
    expected[b + "norm2.weight"] = {48};
    expected[b + "norm2.bias"] = {48};
    expected[b + "mlp.fc1.weight"] = {192, 48};
    expected[b + "mlp.fc1.bias"] = {192};
    expected[b + "mlp.fc2.weight"] = {48, 192};
    expected[b + "mlp.fc2.bias"] = {48};
  }
  std::map<std::string, std::vector<int64_t>> got;
  for (const auto& p : model->named_parameters()) got[p.key()] = p.value().sizes().vec();
  EXPECT_EQ(got, expected);
  // A static model has no budget tokens and no gates.
  Vit plain(VitOptions().image_size(32).patch_size(8).dim(48).depth(2).heads(3).adaptive_blocks({}));
  EXPECT_EQ(plain->named_parameters().size(), expected.size() - 6);
}

TEST(Vit, InitMatchesSpec) {  // METHOD §2 / 3.3: timm init, gate bias ≈ 5, threshold bias ≈ −5
  torch::manual_seed(1);
  Vit model(VitOptions().depth(4));
  auto& block = *model->blocks[1]->as<BlockImpl>();
  EXPECT_NEAR(block.gate->bias.item<double>(), 5.0, 0.5);
  EXPECT_NEAR(block.threshold->bias.item<double>(), -5.0, 0.5);
  EXPECT_LE(block.gate->weight.abs().max().item<double>(), 1.0 / std::sqrt(192.0) + 1e-6);
  EXPECT_NEAR(model->pos_embed.std().item<double>(), 0.02, 0.002);
  EXPECT_NEAR(block.attn->qkv->weight.std().item<double>(), 0.02, 0.001);
  EXPECT_EQ(block.attn->qkv->bias.abs().max().item<double>(), 0.0);
  EXPECT_EQ(block.norm1->weight.min().item<double>(), 1.0);
  EXPECT_NEAR(model->budget_token_a.std().item<double>(), 0.02, 0.006);
}

TEST(Vit, AtInitNothingIsDropped) {
  torch::manual_seed(2);
  Vit model(tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  VitOutput out = model->forward(images_of(3), torch::tensor({0.1f, 0.5f, 0.9f}), SelectionMode::kSoft);
  ASSERT_EQ(out.stats.size(), 2u);
  for (const BlockStats& s : out.stats) {
    EXPECT_GT(s.patch_mask.min().item<double>(), 0.95);  // σ(5) − σ(−5) ≈ 0.987 per block
    EXPECT_GT(s.patch_mask.mean().item<double>(), 0.97);
    EXPECT_EQ(s.kept.min().item<int64_t>(), 16);
  }
  EXPECT_EQ(tokens_sent(out.stats.back()).max().item<int64_t>(), 18);  // METHOD §3.6: + cls + budget
}

TEST(Vit, MasksAreMonotoneAndClsBudgetKept) {
  Vit model = dropping_model();
  torch::NoGradGuard no_grad;
  const torch::Tensor budget = torch::tensor({0.2f, 0.4f, 0.6f, 0.8f});
  TokenState state = model->embed(images_of(4), budget);
  std::vector<BlockStats> stats;
  state = model->forward_blocks(state, 0, 4, SelectionMode::kSoft, &stats);
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_TRUE((stats[1].patch_mask <= stats[0].patch_mask).all().item<bool>());
  EXPECT_TRUE(((stats[0].patch_mask == 0) <= (stats[1].patch_mask == 0)).all().item<bool>());
  EXPECT_LT(stats[1].kept.sum().item<int64_t>(), stats[0].kept.sum().item<int64_t>());  // drops
  EXPECT_EQ(state.mask.select(1, 0).min().item<double>(), 1.0);   // cls
  EXPECT_EQ(state.mask.select(1, 17).min().item<double>(), 1.0);  // budget
  // Hard path: cls first and the budget token last in every sample's surviving sequence.
  TokenState hard = model->forward_blocks(model->embed(images_of(4), budget), 0, 4, SelectionMode::kHard);
  EXPECT_EQ(hard.positions.select(1, 0).max().item<int64_t>(), 0);
  EXPECT_EQ(hard.positions.select(1, -1).min().item<int64_t>(), 17);
}

class HardPath : public ::testing::TestWithParam<bool> {};  // param: reference mode

// P3: a packed batch (key padding) gives the same logits and stats as one image at a time
// (plain gather, no padding), to 1e-5.
TEST_P(HardPath, BatchEqualsSingleImages) {
  Vit model = dropping_model(/*reference=*/GetParam());
  torch::NoGradGuard no_grad;
  const torch::Tensor images = images_of(5);
  const torch::Tensor budget = torch::tensor({0.1f, 0.3f, 0.5f, 0.7f, 0.9f});
  VitOutput batch = model->forward(images, budget, SelectionMode::kHard);
  // The comparison is only meaningful if the batch really was packed with padding.
  const torch::Tensor kept = batch.stats[1].kept;
  ASSERT_GT(kept.max().item<int64_t>(), kept.min().item<int64_t>()) << kept;
  ASSERT_LT(kept.min().item<int64_t>(), 16);
  for (int64_t b = 0; b < 5; ++b) {
    VitOutput one = model->forward(images.slice(0, b, b + 1), budget.slice(0, b, b + 1), SelectionMode::kHard);
    EXPECT_LT(max_abs(one.logits, batch.logits.slice(0, b, b + 1)), 1e-5) << "image " << b;
    for (size_t l = 0; l < 2; ++l) {
      EXPECT_EQ(one.stats[l].kept.item<int64_t>(), batch.stats[l].kept[b].item<int64_t>());
      EXPECT_LT(max_abs(one.stats[l].patch_mask, batch.stats[l].patch_mask.slice(0, b, b + 1)), 1e-6);
    }
  }
}
INSTANTIATE_TEST_SUITE_P(Model, HardPath, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "reference" : "default"; });

// With no token dropped, the hard path with P4 scaling computes exactly the soft path (same masks,
// same scaling, no ghost keys exist): logits and patch masks agree. Reference mode (no scaling)
// instead equals running the plain blocks on [cls, patches, budget] without any mask.
TEST(Vit, HardEqualsSoftWhenNothingIsDropped) {
  torch::manual_seed(4);
  Vit model(tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor images = images_of(3), budget = torch::tensor({0.2f, 0.5f, 0.8f});
  VitOutput soft = model->forward(images, budget, SelectionMode::kSoft);
  VitOutput hard = model->forward(images, budget, SelectionMode::kHard);
  ASSERT_EQ(hard.stats[1].kept.min().item<int64_t>(), 16);
  EXPECT_LT(max_abs(soft.logits, hard.logits), 1e-5);
  EXPECT_LT(max_abs(soft.stats[1].patch_mask, hard.stats[1].patch_mask), 1e-6);
  // The masks (≈ 0.987 per block) do change the tokens: the comparison is not vacuous.
  TokenState unmasked = model->embed(images, budget);
  unmasked.has_budget = false;  // budget token present, selection off
  TokenState plain_state = model->forward_blocks(unmasked, 0, 4, SelectionMode::kSoft);
  torch::Tensor plain = model->forward_head(plain_state);
  TokenState soft_state = model->forward_blocks(model->embed(images, budget), 0, 4, SelectionMode::kSoft);
  EXPECT_GT(max_abs(plain_state.x, soft_state.x), 1e-2);

  model->options.reference(true);
  VitOutput reference = model->forward(images, budget, SelectionMode::kHard);
  EXPECT_LT(max_abs(reference.logits, plain), 1e-5);
}

TEST(Vit, SplitForwardEqualsWholeForward) {  // device blocks [0, 3) + server blocks [3, 4)
  Vit model = dropping_model();
  torch::NoGradGuard no_grad;
  const torch::Tensor images = images_of(4), budget = torch::tensor({0.2f, 0.4f, 0.6f, 0.8f});
  for (SelectionMode mode : {SelectionMode::kSoft, SelectionMode::kHard}) {
    TokenState device = model->forward_blocks(model->embed(images, budget), 0, 3, mode);
    torch::Tensor split = model->forward_head(model->forward_blocks(device, 3, 4, mode));
    EXPECT_LT(max_abs(split, model->forward(images, budget, mode).logits), 1e-6);
  }
}

// Inference's last block runs for the class token alone (Vit::classify): its output equals the
// whole block's row 0, padded keys included; forward() goes that way, and SplitForward above and
// ParityWithIndependentPyTorch below compare it with the whole blocks and with PyTorch.
TEST(Vit, LastBlockOnTheClassTokenEqualsTheWholeBlock) {
  torch::manual_seed(8);
  Block block(48, 3, 4.0, /*adaptive=*/false);
  block->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 19, 48});
  torch::Tensor key_bias = torch::zeros({2, 1, 1, 19});
  key_bias.index_put_({1, 0, 0, torch::indexing::Slice(15, 19)}, -std::numeric_limits<float>::infinity());
  for (const torch::Tensor& bias : {torch::Tensor(), key_bias}) {
    const torch::Tensor whole = block(x, bias).narrow(1, 0, 1);
    const torch::Tensor cls = block->forward_cls(x, bias);
    ASSERT_EQ(cls.sizes(), whole.sizes());
    EXPECT_LT(max_abs(cls, whole), 1e-6);
  }
  // The padding changes token 0's output (the comparison above is not vacuous).
  EXPECT_GT(max_abs(block->forward_cls(x, key_bias), block->forward_cls(x)), 1e-3);
  // The classifier in eval mode (its last block, not a selecting one, on the class token): the logits
  // of the whole blocks + head.
  Vit model = dropping_model();
  const torch::Tensor images = images_of(3), budget = torch::tensor({0.3f, 0.6f, 0.9f});
  const torch::Tensor eval_logits = model->classify(model->embed(images, budget), 0, SelectionMode::kHard);
  const torch::Tensor whole_logits =
      model->forward_head(model->forward_blocks(model->embed(images, budget), 0, 4, SelectionMode::kHard));
  EXPECT_LT(max_abs(eval_logits, whole_logits), 1e-6);
}

TEST(Vit, KeepFractionHookKeepsExactly) {
  torch::manual_seed(6);
  Vit model(tiny());
  model->eval();
  model->keep_fraction_hook = 0.25;
  torch::NoGradGuard no_grad;
  std::vector<BlockStats> stats;
  TokenState state = model->forward_blocks(model->embed(images_of(2), torch::full({2}, 0.25f)), 0, 4,
                                           SelectionMode::kHard, &stats);
  EXPECT_EQ(state.x.size(1), 4 + 2);  // round(0.25 · 16) patches + cls + budget
  EXPECT_FALSE(state.padding.defined());
  // The survivors mapped back to the 4 × 4 grid: 4 non-zero cells per image, = the block stats.
  torch::Tensor grid = to_patch_grid(state.mask, state, 16);
  EXPECT_EQ((grid > 0).sum(1).min().item<int64_t>(), 4);
  EXPECT_EQ((grid > 0).sum(1).max().item<int64_t>(), 4);
  EXPECT_LT(max_abs(grid, stats[1].patch_mask), 1e-7);
  VitOutput soft = model->forward(images_of(2), torch::full({2}, 0.25f), SelectionMode::kSoft);
  EXPECT_EQ(soft.stats[0].kept.max().item<int64_t>(), 4);
  EXPECT_EQ(soft.stats[0].kept.min().item<int64_t>(), 4);
}

TEST(Vit, BudgetTokenFormula) {  // METHOD §3.1: b(α) = α·t_A + (1 − α)·t_B, appended last, no pos-embed
  torch::manual_seed(7);
  Vit model(tiny());
  torch::NoGradGuard no_grad;
  const torch::Tensor images = images_of(2), budget = torch::tensor({0.25f, 0.75f});
  TokenState with = model->embed(images, budget);
  TokenState without = model->embed(images);
  ASSERT_EQ(with.x.size(1), 18);
  EXPECT_TRUE(with.has_budget);
  EXPECT_LT(max_abs(with.x.slice(1, 0, 17), without.x), 1e-7);
  for (int64_t b = 0; b < 2; ++b) {
    const double a = budget[b].item<double>();
    torch::Tensor expected = a * model->budget_token_a[0][0] + (1 - a) * model->budget_token_b[0][0];
    EXPECT_LT(max_abs(with.x[b][17], expected), 1e-7);
  }
}

TEST(Vit, BudgetOneIsTheStaticModel) {  // METHOD §3.1 / P23
  Vit model = dropping_model();
  torch::NoGradGuard no_grad;
  const torch::Tensor images = images_of(3);
  VitOutput ones = model->forward(images, torch::ones({3}), SelectionMode::kHard);
  VitOutput none = model->forward(images);
  EXPECT_TRUE(ones.stats.empty());
  EXPECT_EQ(max_abs(ones.logits, none.logits), 0.0);
  EXPECT_FALSE(model->embed(images, torch::ones({3})).has_budget);
}

TEST(Vit, TrainingModeHasGradientsAndNoCutoff) {
  Vit model = dropping_model();
  model->train();
  const torch::Tensor budget = torch::tensor({0.3f, 0.6f});
  VitOutput out = model->forward(images_of(2), budget, SelectionMode::kSoft);
  BudgetLoss loss = budget_loss(out.stats, budget, InnerLoss::kL1);
  (out.logits.sum() + loss.out + loss.inner).backward();
  auto& block = *model->blocks[1]->as<BlockImpl>();
  EXPECT_GT(block.gate->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(model->budget_token_a.grad().abs().sum().item<double>(), 0.0);
}

// METHOD §10 P26: the soft path reports the pre-ReLU margin g − τ per patch; ReLU of it is the
// block's selection value (block 1: the cumulative mask itself), and a gradient flows from the
// margin of a dropped patch into the gate (the mask's gradient there is 0). Hard path: none.
TEST(Vit, SoftPathReportsThePreReluMargin) {
  Vit model = dropping_model();
  model->train();
  const torch::Tensor budget = torch::tensor({0.3f, 0.6f});
  VitOutput out = model->forward(images_of(2), budget, SelectionMode::kSoft);
  ASSERT_EQ(out.stats.size(), 2u);
  const torch::Tensor z = out.stats[0].patch_margin;
  ASSERT_TRUE(z.defined());
  EXPECT_EQ(z.sizes(), out.stats[0].patch_mask.sizes());
  EXPECT_LT(max_abs(torch::relu(z), out.stats[0].patch_mask), 1e-6);
  EXPECT_LT(max_abs(torch::relu(out.stats[1].patch_margin) * out.stats[0].patch_mask, out.stats[1].patch_mask), 1e-6);
  const torch::Tensor dropped = z < 0;
  ASSERT_GT(dropped.sum().item<int64_t>(), 0);
  ASSERT_LT(dropped.sum().item<int64_t>(), z.numel());
  z.masked_select(dropped).sum().backward();
  auto& block = *model->blocks[1]->as<BlockImpl>();
  EXPECT_GT(block.gate->weight.grad().abs().sum().item<double>(), 0.0);
  model->eval();
  torch::NoGradGuard no_grad;
  VitOutput hard = model->forward(images_of(2), budget, SelectionMode::kHard);
  EXPECT_FALSE(hard.stats[0].patch_margin.defined());
}

TEST(Vit, ParityWithIndependentPyTorch) {  // scripts/make_vit_fixture.py
  const Safetensors f = read_safetensors(std::string(TOKCOM_TEST_DATA) + "/vit_fixture.safetensors");
  Vit model(tiny());
  TensorMap weights;
  for (const auto& [name, t] : f.tensors) {
    if (name != "input" && name != "budget" && name.rfind("logits", 0) != 0 &&
        name.rfind("kept", 0) != 0 && name.rfind("hidden", 0) != 0) {
      weights[name] = t;
    }
  }
  load_tensors(*model, weights, "vit_fixture.safetensors", /*strict=*/true);
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor& images = f.tensors.at("input");
  const torch::Tensor& budget = f.tensors.at("budget");
  const double static_diff = max_abs(model->forward(images).logits, f.tensors.at("logits"));
  VitOutput soft = model->forward(images, budget, SelectionMode::kSoft);
  VitOutput hard = model->forward(images, budget, SelectionMode::kHard);  // packed batch of 4
  const double soft_diff = max_abs(soft.logits, f.tensors.at("logits.soft"));
  const double hard_diff = max_abs(hard.logits, f.tensors.at("logits.hard"));
  EXPECT_LT(static_diff, 1e-4);
  EXPECT_LT(soft_diff, 1e-4);
  EXPECT_LT(hard_diff, 1e-4);
  std::cout << "[parity] max abs logits diff: static " << static_diff << ", soft " << soft_diff
            << ", hard " << hard_diff << "\n";
  for (int64_t l = 0; l < 2; ++l) {
    EXPECT_TRUE(soft.stats[l].kept.equal(f.tensors.at("kept.soft").select(1, l))) << soft.stats[l].kept;
    EXPECT_TRUE(hard.stats[l].kept.equal(f.tensors.at("kept.hard").select(1, l))) << hard.stats[l].kept;
  }
  for (const auto& [prefix, b] : {std::pair<std::string, torch::Tensor>{"hidden.", budget},
                                  {"hidden_static.", torch::Tensor()}}) {
    for (const auto& [name, h] : model->forward_hidden(images, b)) {
      EXPECT_LT(max_abs(h, f.tensors.at(prefix + name)), 1e-4) << prefix << name;
    }
  }
}

TEST(Vit, BadInputsNameTheTensor) {
  Vit model(tiny());
  std::string msg = error_of([&] { model->forward(torch::zeros({2, 3, 31, 32})); });
  EXPECT_NE(msg.find("ShapeError"), std::string::npos) << msg;
  EXPECT_NE(msg.find("images has shape [2, 3, 31, 32], expected [*, 3, 32, 32]"), std::string::npos) << msg;
  msg = error_of([&] { model->forward(torch::zeros({2, 32, 32})); });
  EXPECT_NE(msg.find("images has shape [2, 32, 32]"), std::string::npos) << msg;
  msg = error_of([&] { model->forward(torch::zeros({2, 3, 32, 32}), torch::full({3}, 0.5)); });
  EXPECT_NE(msg.find("budget has shape [3], expected [2]"), std::string::npos) << msg;
  msg = error_of([&] { model->forward(torch::zeros({2, 3, 32, 32}), torch::tensor({0.5f, 0.0f})); });
  EXPECT_NE(msg.find("budget values must be in (0, 1]"), std::string::npos) << msg;
  msg = error_of([&] { model->forward(torch::zeros({1, 3, 32, 32}), torch::tensor({1.5f})); });
  EXPECT_NE(msg.find("(0, 1]"), std::string::npos) << msg;
}

TEST(Vit, BadAdaptiveBlocksAreConfigErrors) {
  for (const std::vector<int64_t>& blocks : {std::vector<int64_t>{2, 1}, {1, 1}, {4}, {-1}}) {
    const std::string msg = error_of([&] { Vit(tiny().adaptive_blocks(blocks)); });
    EXPECT_NE(msg.find("ConfigError: Vit: adaptive_blocks"), std::string::npos) << msg;
    EXPECT_NE(msg.find("depth = 4"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([] { Vit(tiny().dim(50)); }).find("multiple of heads"), std::string::npos);
  // A model no machine of ours can hold is refused before any tensor is made (it allocated GBs).
  const std::string big = error_of([] { Vit(tiny().dim(192).heads(3).depth(100000)); });
  EXPECT_NE(big.find("parameters"), std::string::npos) << big;
  EXPECT_NE(big.find("depth 100000, dim 192"), std::string::npos) << big;
  EXPECT_NE(big.find("do not fit in this machine's"), std::string::npos) << big;
  EXPECT_NE(error_of([] { Vit(tiny().mlp_ratio(std::nan(""))); }).find("mlp_ratio nan"), std::string::npos);
}

TEST(Vit, MakeVitReadsTheModelSection) {
  Config c = Config::load("", {"model.image_size=32", "model.patch_size=8", "model.dim=48",
                               "model.depth=3", "model.adaptive_blocks=[2]", "model.reference=true"});
  Vit model = make_vit(c);
  EXPECT_EQ(model->options.depth(), 3);
  EXPECT_EQ(model->options.adaptive_blocks(), std::vector<int64_t>{2});
  EXPECT_TRUE(model->options.reference());
  EXPECT_TRUE(model->is_adaptive(2));
  EXPECT_FALSE(model->is_adaptive(1));
  EXPECT_EQ(model->pos_embed.size(1), 17);
  EXPECT_NE(error_of([] { make_vit(Config::load("", {"model.adaptive_blocks=[12]"})); }).find("adaptive_blocks"),
            std::string::npos);
}

// Budget calibration (docs/model.md): the inverse of a measured kept curve, by hand.
TEST(BudgetCalibration, CalibratedBudgetKnownAnswers) {
  const VitOptions o = tiny().calibration_kept({0.2, 0.5, 0.8}).calibration_budget({0.1, 0.5, 0.9});
  EXPECT_DOUBLE_EQ(calibrated_budget(o, 0.35), 0.3);    // halfway between (0.2, 0.1) and (0.5, 0.5)
  EXPECT_DOUBLE_EQ(calibrated_budget(o, 0.5), 0.5);
  EXPECT_DOUBLE_EQ(calibrated_budget(o, 0.1), 0.1);     // below the least kept fraction: the least budget
  EXPECT_DOUBLE_EQ(calibrated_budget(o, 0.9), 0.95);    // towards the implied (1, 1)
  EXPECT_DOUBLE_EQ(calibrated_budget(o, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(calibrated_budget(tiny(), 0.37), 0.37);  // uncalibrated: α itself
  // Curve → lists: sorted by budget, running maximum, only strict rises inside (0, 1) kept.
  const auto [kept, fed] = calibration_from_curve({{0.5, 0.6}, {0.1, 0.0}, {0.3, 0.4}, {0.2, 0.4}, {0.4, 0.35},
                                                   {0.7, 1.0}, {0.6, 0.9}});
  EXPECT_EQ(kept, (std::vector<double>{0.4, 0.6, 0.9}));
  EXPECT_EQ(fed, (std::vector<double>{0.2, 0.5, 0.6}));
  EXPECT_NE(error_of([] { calibration_from_curve({{0.2, 0.5}, {0.4, 0.5}}); }).find("fewer than two"),
            std::string::npos);
  const std::string msg = error_of([] { Vit(tiny().calibration_kept({0.5, 0.4}).calibration_budget({0.1, 0.2})); });
  EXPECT_NE(msg.find("calibration point 1"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { Vit(tiny().calibration_kept({0.5}).calibration_budget({})); }).find("equal lengths"),
            std::string::npos);
}

// A model whose kept fraction is a known non-linear function of the budget: block 0 is adaptive,
// so its threshold reads b(u) itself; τ(u) = σ(5 − 6u) against gates spread over (0, 1); block 1
// keeps everything. Uncalibrated, α = 0.25 keeps far more or less than 0.25; calibrated on the same
// images, every α keeps α to within the curve's resolution — through the public forward path.
TEST(BudgetCalibration, CalibratedModelKeepsAlpha) {
  torch::manual_seed(3);
  Vit model(VitOptions().image_size(16).patch_size(4).dim(12).depth(2).heads(2).adaptive_blocks({0, 1}));
  {
    torch::NoGradGuard no_grad;
    auto* b0 = model->blocks[0]->as<BlockImpl>();
    auto* b1 = model->blocks[1]->as<BlockImpl>();
    b0->gate->weight.normal_(0.0, 1.0);
    b0->gate->bias.zero_();
    b0->threshold->weight.zero_();
    b0->threshold->weight[0][0] = 1.0;
    b0->threshold->bias.zero_();
    model->budget_token_a.zero_();
    model->budget_token_b.zero_();
    model->budget_token_a[0][0][0] = -1.0;
    model->budget_token_b[0][0][0] = 5.0;
    b1->gate->weight.zero_();
    b1->gate->bias.fill_(10.0);
    b1->threshold->weight.zero_();
    b1->threshold->bias.fill_(-10.0);
  }
  model->eval();
  const torch::Tensor images = torch::randn({128, 3, 16, 16});
  auto kept_at = [&](double alpha) {
    torch::NoGradGuard no_grad;
    VitOutput out = model->forward(images, torch::full({128}, alpha), SelectionMode::kHard);
    return out.stats.back().kept.to(torch::kDouble).mean().item<double>() / 16.0;
  };
  const std::vector<double> alphas = {0.25, 0.5, 0.75};
  double worst_raw = 0;
  for (double a : alphas) worst_raw = std::max(worst_raw, std::abs(kept_at(a) - a));
  EXPECT_GT(worst_raw, 0.15) << "the raw curve must differ from the identity, or the test proves nothing";

  std::vector<double> grid;
  for (int i = 1; i < 200; ++i) grid.push_back(i / 200.0);
  const std::vector<KeptPoint> curve = measure_kept_curve(model, images, grid, 50);
  ASSERT_EQ(curve.size(), grid.size());
  for (size_t i = 1; i < curve.size(); ++i) EXPECT_GE(curve[i].kept, curve[i - 1].kept - 1e-12);
  EXPECT_NEAR(curve[49].kept, kept_at(0.25), 1e-12);  // the measurement is the forward path's count
  const auto [kept, fed] = calibration_from_curve(curve);
  model->options.calibration_kept(kept).calibration_budget(fed);
  for (double a : alphas) EXPECT_NEAR(kept_at(a), a, 0.02) << "alpha " << a;
}

// budget_cap: in eval mode each sample keeps exactly the ⌊α·N⌋ patches with the highest mask of
// the uncapped model (one adaptive block, so the uncapped masks are the ranking), fewer only when
// fewer survive the threshold; soft and hard keep the same patches, a batch equals its single images, and training
// mode ignores the cap.
namespace {

// A ViT with one adaptive block whose gates spread the masks and whose threshold lets most patches
// survive (so a cap of ⌊α·N⌋ has something to cut), and a copy of it with `with` set on its options.
std::pair<Vit, Vit> gated_pair(uint64_t seed, const std::function<VitOptions(VitOptions)>& with) {
  torch::manual_seed(seed);
  const VitOptions opts = VitOptions().image_size(16).patch_size(4).dim(12).depth(2).heads(2).adaptive_blocks({0});
  Vit plain(opts), other(with(opts));
  torch::NoGradGuard no_grad;
  plain->blocks[0]->as<BlockImpl>()->gate->weight.normal_(0.0, 2.0);
  plain->blocks[0]->as<BlockImpl>()->gate->bias.zero_();
  plain->blocks[0]->as<BlockImpl>()->threshold->bias.fill_(-3.0);
  load_tensors(*other, named_tensors(*plain), "plain");
  return {plain, other};
}

}  // namespace

TEST(BudgetCap, KeepsTheHighestFloorAlphaNPatches) {
  auto [plain, capped] = gated_pair(5, [](VitOptions o) { return o.budget_cap(true); });
  plain->eval();
  capped->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor images = torch::randn({24, 3, 16, 16});
  int64_t cut_samples = 0;
  for (double alpha : {0.1, 0.25, 0.3, 0.5, 0.75}) {
    const torch::Tensor budget = torch::full({24}, alpha);
    const auto cap = static_cast<int64_t>(std::floor(alpha * 16 + 1e-9));
    const torch::Tensor ref = plain->forward(images, budget, SelectionMode::kSoft).stats[0].patch_mask;
    const VitOutput soft = capped->forward(images, budget, SelectionMode::kSoft);
    const VitOutput hard = capped->forward(images, budget, SelectionMode::kHard);
    const torch::Tensor kept = soft.stats[0].patch_mask > 0;
    EXPECT_TRUE(torch::equal(kept, hard.stats[0].patch_mask > 0)) << alpha;
    for (int64_t b = 0; b < 24; ++b) {
      const torch::Tensor m = ref[b];
      const int64_t survive = (m > 0).sum().item<int64_t>();
      const int64_t want = std::min(survive, cap);
      cut_samples += survive > cap;
      ASSERT_EQ(kept[b].sum().item<int64_t>(), want) << "alpha " << alpha << " sample " << b;
      // The kept patches are the top `want` of the uncapped masks.
      const torch::Tensor top = std::get<1>(m.topk(want));
      EXPECT_TRUE(kept[b].index_select(0, top).all().item<bool>()) << "alpha " << alpha << " sample " << b;
      const VitOutput one = capped->forward(images.slice(0, b, b + 1), budget.slice(0, b, b + 1), SelectionMode::kHard);
      EXPECT_TRUE(torch::allclose(one.logits, hard.logits.slice(0, b, b + 1), 1e-4, 1e-5)) << alpha << " " << b;
    }
  }
  EXPECT_GT(cut_samples, 20) << "the threshold alone must keep more than the cap often, or the test proves nothing";
  capped->train();
  plain->train();
  const torch::Tensor budget = torch::full({24}, 0.25);
  EXPECT_TRUE(torch::equal(capped->forward(images, budget).stats[0].patch_mask,
                           plain->forward(images, budget).stats[0].patch_mask));
}

// budget_cap_train: the same cap in training mode (soft path), on the training-mode masks: each
// sample keeps min(survivors, ⌊α·N⌋) patches, the top ones of the uncapped masks, and the gates still
// get gradients; in eval mode it changes nothing (budget_cap decides there).
TEST(BudgetCap, TrainingModeCapsOnlyWhenAsked) {
  auto [plain, trained_capped] = gated_pair(6, [](VitOptions o) { return o.budget_cap_train(true); });
  const torch::Tensor images = torch::randn({16, 3, 16, 16});
  const double alpha = 0.25;
  const int64_t cap = 4;  // ⌊0.25 · 16⌋
  const torch::Tensor budget = torch::full({16}, alpha);
  plain->train();
  trained_capped->train();
  torch::Tensor ref;
  {
    torch::NoGradGuard no_grad;
    ref = plain->forward(images, budget).stats[0].patch_mask;
  }
  const VitOutput out = trained_capped->forward(images, budget);
  const torch::Tensor mask = out.stats[0].patch_mask;
  int64_t cut = 0;
  for (int64_t b = 0; b < 16; ++b) {
    const int64_t survive = (ref[b] > 0).sum().item<int64_t>();
    const int64_t want = std::min(survive, cap);
    cut += survive > cap;
    ASSERT_EQ((mask[b] > 0).sum().item<int64_t>(), want) << "sample " << b;
    const torch::Tensor top = std::get<1>(ref[b].topk(want));
    EXPECT_TRUE(torch::allclose(mask[b].index_select(0, top), ref[b].index_select(0, top))) << "sample " << b;
  }
  EXPECT_GT(cut, 8) << "the threshold alone must keep more than the cap, or the test proves nothing";
  out.logits.sum().backward();
  const torch::Tensor grad = trained_capped->blocks[0]->as<BlockImpl>()->gate->weight.grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_TRUE(torch::isfinite(grad).all().item<bool>());
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
  // Eval mode: budget_cap_train alone is the plain model.
  plain->eval();
  trained_capped->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(trained_capped->forward(images, budget).stats[0].patch_mask,
                           plain->forward(images, budget).stats[0].patch_mask));
}

// A subset of a split stored class by class (Imagenette folders) must be a random sample: a model
// that always answers class 0 scores 1.0 on the first 64 images of a sorted split but about the
// class-0 share (1/2) on a random 64 — and the same 64 every time.
TEST(Evaluate, MaxBatchesTakesARandomSampleOfTheSplit) {
  const Config config = Config::load("", test::tiny_vit_overrides(test::temp_dir("eval-subset")));
  ImageDataset data;
  data.name = "fashion-mnist";
  data.split = "test";
  data.images = torch::randint(0, 256, {512, 1, 28, 28}).to(torch::kUInt8);
  data.labels = torch::cat({torch::zeros({256}, torch::kInt64), torch::ones({256}, torch::kInt64)});
  Vit model = make_vit(config);
  {
    torch::NoGradGuard no_grad;
    model->head->weight.zero_();
    model->head->bias.zero_();
    model->head->bias[0] = 10.0;  // always class 0
  }
  EvalOptions o;
  o.batch_size = 64;
  o.max_batches = 1;
  const double first = evaluate(model, data, config, o).front().accuracy;
  EXPECT_GT(first, 0.25);
  EXPECT_LT(first, 0.75) << "the subset is the first (all class-0) images of the sorted split";
  EXPECT_EQ(evaluate(model, data, config, o).front().accuracy, first);
  o.max_batches = 0;
  EXPECT_DOUBLE_EQ(evaluate(model, data, config, o).front().accuracy, 0.5);
}

// METHOD §4 by hand, ε = 0.02. Block 1 means m̄ = (0.5, 0.26), block 2 (last) m̄ = (0.3, 0.1),
// α = (0.25, 0.25). P(block 1) = (0.23, 0), P(block 2) = (0.03, 0.13).
TEST(BudgetLoss, KnownAnswers) {
  auto stats_of = [](float a, float b) {
    BlockStats s;
    s.patch_mask = torch::tensor({a, a, b, b}).view({2, 2});  // rows: (a, a), (b, b)
    return s;
  };
  std::vector<BlockStats> stats = {stats_of(0.5f, 0.26f), stats_of(0.3f, 0.1f)};
  const torch::Tensor alpha = torch::tensor({0.25f, 0.25f});
  EXPECT_NEAR(budget_penalty(torch::tensor({0.26f}), torch::tensor({0.25f}), 0.02).item<double>(), 0.0, 1e-7);
  EXPECT_NEAR(budget_penalty(torch::tensor({0.5f}), torch::tensor({0.25f}), 0.02).item<double>(), 0.23, 1e-6);
  auto loss = [&](InnerLoss inner) { return budget_loss(stats, alpha, inner, 0.02); };
  EXPECT_NEAR(loss(InnerLoss::kMargin).out.item<double>(), (0.03 + 0.13) / 2, 1e-6);
  EXPECT_NEAR(loss(InnerLoss::kMargin).inner.item<double>(), 0.23 / 2, 1e-6);
  EXPECT_NEAR(loss(InnerLoss::kL1).inner.item<double>(), (0.5 + 0.26) / 2, 1e-6);
  EXPECT_NEAR(loss(InnerLoss::kMl1).inner.item<double>(), (0.23 * 0.5 + 0.0) / 2, 1e-6);
  EXPECT_NEAR(loss(InnerLoss::kBml1).inner.item<double>(), (1.0 * 0.5 + 0.0) / 2, 1e-6);
  // A single adaptive block: no inner term.
  EXPECT_EQ(budget_loss({stats[1]}, alpha).inner.item<double>(), 0.0);
  EXPECT_EQ(parse_inner_loss("bml1"), InnerLoss::kBml1);
  EXPECT_NE(error_of([] { parse_inner_loss("l2"); }).find("margin|l1|ml1|bml1"), std::string::npos);
}

TEST(BudgetLoss, Ml1GradientIsTheSignedViolation) {
  torch::Tensor mask = torch::full({1, 4}, 0.1f, torch::requires_grad());
  BlockStats inner, last;
  inner.patch_mask = mask;
  last.patch_mask = torch::full({1, 4}, 0.5f);
  budget_loss({inner, last}, torch::tensor({0.5f}), InnerLoss::kMl1, 0.02).inner.backward();
  // d/dm̄ = v = sign(0.1 − 0.5)·(0.4 − 0.02) = −0.38, spread over 4 patches.
  EXPECT_NEAR(mask.grad()[0][0].item<double>(), -0.38 / 4, 1e-6);
}

// P26 helper: value = hard fraction (2 of 4 > 0), gradient = T / (m + T)² / N per entry.
TEST(BudgetLoss, HardKeptFractionIsStraightThrough) {
  torch::Tensor mask = torch::tensor({0.0f, 0.0f, 0.5f, 0.02f}).view({1, 4}).requires_grad_();
  torch::Tensor f = hard_kept_fraction(mask, /*temperature=*/0.02);
  EXPECT_NEAR(f.item<double>(), 0.5, 1e-7);
  f.sum().backward();
  EXPECT_NEAR(mask.grad()[0][0].item<double>(), 0.02 / (0.02 * 0.02) / 4, 1e-3);  // 12.5
  EXPECT_NEAR(mask.grad()[0][3].item<double>(), 0.02 / (0.04 * 0.04) / 4, 1e-4);  // 3.125
  EXPECT_NEAR(hard_kept_fraction(mask.detach(), 0.02, /*threshold=*/0.1).item<double>(), 0.25, 1e-7);
  EXPECT_NE(error_of([&] { hard_kept_fraction(mask, 0.0); }).find("temperature"), std::string::npos);
}

TEST(BudgetSampling, StratifiedCoversTheRangeAndIsSeeded) {
  auto gen = at::detail::createCPUGenerator(/*seed_in=*/9);
  torch::Tensor a = sample_budgets(64, gen);
  auto gen2 = at::detail::createCPUGenerator(9);
  EXPECT_TRUE(a.equal(sample_budgets(64, gen2)));
  EXPECT_GE(a.min().item<double>(), 0.001);
  EXPECT_LE(a.max().item<double>(), 0.999);
  // Each α_b stays near its stratum linspace(0.001, 0.999, 64)[b]: σ = 0.998/64, bound 6σ.
  torch::Tensor strata = torch::linspace(0.001, 0.999, 64);
  EXPECT_LT((a - strata).abs().max().item<double>(), 6 * 0.998 / 64);
  torch::Tensor u = sample_budgets(4096, gen, BudgetSampling::kUniform, 0.2, 0.4);
  EXPECT_GE(u.min().item<double>(), 0.2);
  EXPECT_LE(u.max().item<double>(), 0.4);
  EXPECT_NEAR(u.mean().item<double>(), 0.3, 0.006);  // σ_mean = 0.2/√12/64 ≈ 0.0009
  EXPECT_NE(error_of([&] { sample_budgets(0, gen); }).find("batch > 0"), std::string::npos);
}

// `weights import`: a timm checkpoint (static ViT, 1000-class head) into an adaptive 10-class ViT.
TEST(Weights, ImportTimmCheckpointKeepsFreshMethodTensors) {
  torch::manual_seed(8);
  Vit source(tiny().adaptive_blocks({}).num_classes(1000));
  const TensorMap timm = export_timm_weights(source, /*timm_only=*/true);
  Vit target(tiny());
  const torch::Tensor gate_before = target->blocks[1]->as<BlockImpl>()->gate->weight.clone();
  WeightsImport report = import_timm_weights(target, timm, "deit.safetensors");
  EXPECT_TRUE(report.head_reinitialised);
  EXPECT_EQ(report.fresh.size(), 10u);  // 2 budget tokens + blocks 1, 2 × gate/threshold × weight/bias
  EXPECT_EQ(report.loaded.size(), timm.size() - 2);  // all but head.weight / head.bias
  EXPECT_TRUE(target->blocks[1]->as<BlockImpl>()->gate->weight.equal(gate_before));
  torch::NoGradGuard no_grad;
  const torch::Tensor images = images_of(2);
  auto a = source->forward_hidden(images), b = target->forward_hidden(images);
  EXPECT_LT(max_abs(a.back().second, b.back().second), 1e-6);  // same backbone, static path

  TensorMap bad = timm;
  bad["dist_token"] = torch::zeros({1, 1, 48});
  EXPECT_NE(error_of([&] { import_timm_weights(target, bad, "d.safetensors"); }).find("dist_token"),
            std::string::npos);
  bad = timm;
  bad["pos_embed"] = torch::zeros({1, 196, 48});  // 195 patch rows: no square grid to resample
  const std::string msg = error_of([&] { import_timm_weights(target, bad, "d.safetensors"); });
  EXPECT_NE(msg.find("ShapeError: d.safetensors: tensor 'pos_embed' has shape [1, 196, 48]"), std::string::npos)
      << msg;
  bad = timm;
  bad["patch_embed.proj.weight"] = torch::zeros({48, 3, 16, 16});  // another patch size is not resampled
  EXPECT_NE(error_of([&] { import_timm_weights(target, bad, "d.safetensors"); }).find("patch_embed.proj.weight"),
            std::string::npos);
  bad = timm;
  bad.erase("norm.weight");
  EXPECT_NE(error_of([&] { import_timm_weights(target, bad, "d.safetensors"); }).find("missing tensors: norm.weight"),
            std::string::npos);
}

// timm's resample_abs_pos_embed, against the fixture its restatement wrote
// (scripts/make_pos_embed_fixture.py): 14 × 14 → 8 × 8 (DeiT-Tiny at 224 px → 128 px) and → 20 × 20.
TEST(Weights, PosEmbedResampleMatchesTimm) {
  const Safetensors f = read_safetensors(std::string(TOKCOM_TEST_DATA) + "/pos_embed_fixture.safetensors");
  const torch::Tensor input = f.tensors.at("input");
  for (int64_t g : {8, 20}) {
    const torch::Tensor want = f.tensors.at(fmt::format("resampled.{}", g));
    const torch::Tensor got = resample_pos_embed(input, g);
    ASSERT_TRUE(got.sizes().equals(want.sizes())) << g;
    EXPECT_LT(max_abs(got, want), 1e-5) << g;
  }
  EXPECT_TRUE(resample_pos_embed(input, 14).equal(input));  // its own grid: unchanged
  // The grid is row-major (row, column): a field that varies along rows only still does after
  // resampling, and the class token's row is untouched. A transposed grid fails here.
  torch::Tensor field = torch::zeros({1, 1 + 6 * 6, 2});
  for (int64_t r = 0; r < 6; ++r) {
    for (int64_t c = 0; c < 6; ++c) field[0][1 + r * 6 + c][0] = static_cast<double>(r * r);  // rows only
  }
  field[0][0][1] = 3.0;
  field.slice(1, 1).select(2, 1).fill_(0.25);  // a constant stays constant (normalised weights)
  const torch::Tensor out = resample_pos_embed(field, 4);
  EXPECT_EQ(out[0][0][1].item<double>(), 3.0);
  const torch::Tensor grid = out.slice(1, 1).select(2, 0).reshape({4, 4});
  EXPECT_LT(max_abs(grid, grid.select(1, 0).unsqueeze(1).expand({4, 4})), 1e-5);  // constant along a row
  EXPECT_GT(grid[3][0].item<double>(), grid[0][0].item<double>() + 10.0);          // and grows down the rows
  EXPECT_LT((out.slice(1, 1).select(2, 1) - 0.25).abs().max().item<double>(), 1e-6);
  EXPECT_NE(error_of([&] { resample_pos_embed(torch::zeros({1, 1 + 15, 2}), 4); }).find("not a square grid"),
            std::string::npos);
}

// `weights import` of a checkpoint at another image size (same patch size): pos_embed resampled to the
// model's grid, everything else copied as it is.
TEST(Weights, ImportAtAnotherImageSizeResamplesPosEmbed) {
  torch::manual_seed(5);
  Vit source(tiny().image_size(56).adaptive_blocks({}));  // 7 × 7 patches of 8 px
  const TensorMap timm = export_timm_weights(source, /*timm_only=*/true);
  Vit target(tiny());  // 32 px: 4 × 4
  const WeightsImport report = import_timm_weights(target, timm, "deit56.safetensors");
  EXPECT_EQ(report.pos_embed_resampled_from, 7);
  EXPECT_FALSE(report.head_reinitialised);
  EXPECT_LT(max_abs(target->pos_embed, resample_pos_embed(source->pos_embed, 4)), 1e-7);
  EXPECT_TRUE(target->blocks[0]->as<BlockImpl>()->attn->qkv->weight.equal(
      source->blocks[0]->as<BlockImpl>()->attn->qkv->weight));
  TensorMap same = export_timm_weights(target, true);
  EXPECT_EQ(fit_pos_embed(same, target, "same.safetensors"), 0);  // its own grid: nothing to do
}

TEST(Weights, ExportTimmOnlyDropsMethodTensors) {
  Vit model(tiny());
  const TensorMap all = export_timm_weights(model, false), timm = export_timm_weights(model, true);
  EXPECT_EQ(all.size(), timm.size() + 10);  // 2 budget tokens + 2 blocks × 4 gate/threshold tensors
  EXPECT_TRUE(is_method_tensor("blocks.2.threshold.bias"));
  EXPECT_TRUE(is_method_tensor("budget_token_b"));
  EXPECT_FALSE(is_method_tensor("blocks.2.attn.qkv.bias"));
  EXPECT_FALSE(is_method_tensor("blocks.2.gate.weight.extra"));
  for (const auto& [name, t] : timm) EXPECT_FALSE(is_method_tensor(name)) << name;
}

TEST(Weights, CliImportThenExportRoundTrips) {
  const std::string dir = tokcom::test::temp_dir("weights_io");
  torch::manual_seed(9);
  Vit source(tiny().adaptive_blocks({}).num_classes(1000));
  write_safetensors(dir + "/deit.safetensors", export_timm_weights(source, true));
  const std::string geometry = " model.image_size=32 model.patch_size=8 model.dim=48 model.depth=4";
  std::string out;
  ASSERT_EQ(tokcom::test::run_cli("weights import " + dir + "/deit.safetensors --out " + dir +
                                      "/ours.safetensors" + geometry, &out), 0) << out;
  EXPECT_NE(out.find("head re-initialised"), std::string::npos) << out;
  EXPECT_NE(out.find("initialised fresh"), std::string::npos) << out;
  ASSERT_EQ(tokcom::test::run_cli("weights export " + dir + "/ours.safetensors --timm-only --out " + dir +
                                      "/timm.safetensors" + geometry, &out), 0) << out;
  const TensorMap back = read_safetensors(dir + "/timm.safetensors").tensors;
  EXPECT_EQ(back.size(), export_timm_weights(source, true).size());
  EXPECT_TRUE(back.at("blocks.3.mlp.fc2.weight").equal(source->blocks[3]->as<BlockImpl>()->mlp->fc2->weight));
  EXPECT_EQ(back.at("head.weight").size(0), 10);
  // A checkpoint that does not fit the config is refused with the tensor's name.
  EXPECT_NE(tokcom::test::run_cli("weights export " + dir + "/ours.safetensors --out " + dir +
                                      "/x.safetensors model.image_size=32 model.patch_size=8 model.dim=48 "
                                      "model.depth=3", &out), 0);
  EXPECT_NE(out.find("blocks.3"), std::string::npos) << out;
}

TEST(VitFlops, KnownAnswerForATinyModel) {
  // 8 px, patch 4 → N = 4 patches of 3·16 = 48 values; D = 8, hidden 32, depth 2, 10 classes.
  const VitOptions o = VitOptions().image_size(8).patch_size(4).dim(8).heads(2).depth(2).adaptive_blocks({1});
  // Static: embed 2·4·48·8 = 3072; a block on T = 5 tokens: qkv 2·5·8·24 = 1920, q·kᵀ + attn·v
  // 4·25·8 = 800, proj 2·5·64 = 640, MLP 4·5·8·32 = 5120 → 8480; two blocks; head 2·8·10 = 160.
  EXPECT_DOUBLE_EQ(vit_forward_flops(o), 3072 + 2 * 8480 + 160);
  // Budget token, hard path keeping round(0.5·4) = 2 patches from block 1 (adaptive) on:
  // block 0 on T = 6: 2304 + 1152 + 768 + 6144 = 10368; block 1 on T = 1 + 2 + 1 = 4:
  // 1536 + 512 + 512 + 4096 = 6656, + gate and threshold 2·4·8·2 = 128.
  EXPECT_DOUBLE_EQ(vit_forward_flops(o, true, 0.5), 3072 + 10368 + 6656 + 128 + 160);
  // Keeping everything = the soft path's token count in every block.
  EXPECT_DOUBLE_EQ(vit_forward_flops(o, true, 1.0), 3072 + 10368 + 10368 + 2 * 6 * 8 * 2 + 160);
  // Inference's last block on the class token (static, T = 5): k, v 2·5·8·16 = 1280 and q 2·8·8 = 128,
  // q·kᵀ + attn·v 4·1·5·8 = 160, proj 2·64 = 128, MLP 4·8·32 = 1024 → 2720.
  EXPECT_DOUBLE_EQ(vit_forward_flops(o, false, 1.0, true), 3072 + 8480 + 2720 + 160);
  // A selecting last block runs whole.
  EXPECT_DOUBLE_EQ(vit_forward_flops(o, true, 0.5, true), vit_forward_flops(o, true, 0.5));
}

TEST(Precision, Bf16ForwardIsCloseToFp32AndLeavesTheModelInFp32) {
  torch::manual_seed(0);
  Vit model(VitOptions().image_size(32).patch_size(8).depth(3).dim(64).heads(2));
  model->eval();
  const torch::Tensor images = torch::randn({4, 3, 32, 32});
  const torch::Tensor budget = torch::full({4}, 0.5);
  torch::NoGradGuard no_grad;
  const VitOutput fp32 = model->forward(images, budget, SelectionMode::kSoft);
  set_inference_precision(Precision::kBf16);
  const VitOutput bf16 = model->forward(images, budget, SelectionMode::kSoft);
  const TokenState state = model->forward_blocks(model->embed(images, budget), 0, 2, SelectionMode::kHard);
  model->train();
  const VitOutput training = model->forward(images, budget, SelectionMode::kSoft);  // training ignores it
  model->eval();
  set_inference_precision(Precision::kFp32);
  EXPECT_EQ(bf16.logits.scalar_type(), torch::kFloat);
  EXPECT_EQ(state.x.scalar_type(), torch::kFloat);  // what the channel gets
  EXPECT_EQ(bf16.stats.at(0).patch_mask.scalar_type(), torch::kFloat);
  const double diff = (bf16.logits - fp32.logits).abs().max().item<double>();
  const double scale = fp32.logits.abs().max().item<double>();
  EXPECT_GT(diff, 0.0) << "bf16 changed nothing: autocast did not run";
  EXPECT_LT(diff, 0.05 * scale + 0.02);
  torch::manual_seed(0);
  Vit twin(VitOptions().image_size(32).patch_size(8).depth(3).dim(64).heads(2));
  twin->train();
  EXPECT_TRUE(torch::equal(training.logits, twin->forward(images, budget, SelectionMode::kSoft).logits));
  EXPECT_NE(error_of([] { parse_precision("fp16", "--precision"); }).find("--precision: 'fp16', expected fp32 or bf16"),
            std::string::npos);
}

// Several models in one folder (a study's weights/) each find their own config; a training run's
// model.safetensors finds the folder's config.yaml.
TEST(Weights, CheckpointConfigPrefersTheModelsOwnConfig) {
  const std::string dir = test::temp_dir("ckcfg");
  Config::load("", {"model.depth=2"}).save(dir + "/config.yaml");
  Config::load("", {"model.depth=3"}).save(dir + "/adaptive.config.yaml");
  EXPECT_EQ(checkpoint_config(dir + "/adaptive.safetensors", "", {}).get_int("model.depth"), 3);
  EXPECT_EQ(checkpoint_config(dir + "/model.safetensors", "", {}).get_int("model.depth"), 2);
  EXPECT_EQ(checkpoint_config(dir + "/adaptive.safetensors", "", {"model.depth=4"}).get_int("model.depth"), 4);
  std::filesystem::remove(dir + "/config.yaml");
  const std::string msg = error_of([&] { checkpoint_config(dir + "/backbone.safetensors", "", {}); });
  EXPECT_NE(msg.find("backbone.config.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir + "/config.yaml"), std::string::npos) << msg;
}

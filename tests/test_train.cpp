// Training: lr schedule, the hard-count budget term (P26), resume == uninterrupted, a tiny model
// learns and its kept fraction moves toward α.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/model/vit.h"
#include "tokcom/model/weights_io.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/transforms.h"
#include "tokcom/train/distill.h"
#include "tokcom/train/hard_count.h"
#include "tokcom/train/loop.h"
#include "tokcom/train/mixup.h"
#include "tokcom/train/schedule.h"
#include "tokcom/train/train_data.h"
#include "tokcom/train/trainer.h"

using namespace tokcom;

TEST(Schedule, KnownAnswers) {
  ScheduleOptions o;
  o.kind = "cosine";
  o.lr = 1.0;
  o.min_lr = 0.0;
  o.warmup_steps = 10;
  o.total_steps = 110;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0), 0.1);      // linear warmup: (step + 1) / warmup
  EXPECT_DOUBLE_EQ(learning_rate(o, 9), 1.0);
  EXPECT_NEAR(learning_rate(o, 10), 1.0, 1e-12);   // cosine starts at the peak
  EXPECT_NEAR(learning_rate(o, 60), 0.5, 1e-12);   // half way: (1 + cos(π/2)) / 2
  EXPECT_NEAR(learning_rate(o, 110), 0.0, 1e-12);
  o.kind = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(o, 57), 1.0);
  o.kind = "linear";
  EXPECT_THROW(learning_rate(o, 0), ConfigError);
}

TEST(HardCount, ForwardIsTheExactKeptFraction) {
  const auto m = torch::tensor({{0.9f, 0.0f, 5e-4f, 0.3f}, {0.0f, 0.0f, 0.0f, 0.002f}});
  const auto k = hard_kept_fraction(m, /*temperature=*/0.02, /*threshold=*/1e-3);
  EXPECT_FLOAT_EQ(k[0].item<float>(), 0.5f);   // 0.9 and 0.3 survive the 1e-3 cutoff
  EXPECT_FLOAT_EQ(k[1].item<float>(), 0.25f);
}

TEST(HardCount, MaskSurrogatePushesSmallestMasksDownWhenOverBudget) {
  auto m = torch::tensor({{0.9f, 0.05f, 0.5f, 0.01f}}, torch::requires_grad());
  // Kept 4/4 = 1.0 against α = 0.25: penalty 0.75 − 0.02 > 0.
  const auto p = hard_budget_penalty(m, {}, torch::tensor({0.25f}), 0.02, 1e-3, 0.02, HardSurrogate::kMask);
  EXPECT_NEAR(p.item<float>(), 0.73f, 1e-6);
  p.sum().backward();
  const auto g = m.grad()[0];
  for (int i = 0; i < 4; ++i) EXPECT_GT(g[i].item<float>(), 0.0f);  // descent lowers every mask
  EXPECT_GT(g[3].item<float>(), g[1].item<float>());                // the smallest most
  EXPECT_GT(g[1].item<float>(), g[0].item<float>());
  // Inside the margin: no penalty, no gradient.
  auto m2 = torch::tensor({{0.9f, 0.0f, 0.0f, 0.0f}}, torch::requires_grad());
  const auto p2 = hard_budget_penalty(m2, {}, torch::tensor({0.26f}), 0.02, 1e-3, 0.02, HardSurrogate::kMask);
  EXPECT_FLOAT_EQ(p2.item<float>(), 0.0f);
}

// METHOD §10 P26 fix: the margin surrogate reaches dropped tokens. Under budget, the gradient on a
// dropped token's margin is negative (descent raises it, bringing it back), largest for the dropped
// token closest to the threshold; over budget it is positive on kept tokens, largest for the kept
// token closest to the threshold. The mask surrogate gives a dropped token exactly 0.
TEST(HardCount, MarginSurrogateBringsBackTheBestDroppedTokenWhenUnderBudget) {
  const double t = 0.05;
  // Patch margins z = g − τ; masks ReLU(z). Kept 1/4 against α = 0.75: under budget.
  auto z = torch::tensor({{0.4f, -0.02f, -0.3f, -0.1f}}, torch::requires_grad());
  const auto m = torch::relu(z);
  const auto p = hard_budget_penalty(m, z, torch::tensor({0.75f}), 0.02, 1e-3, t);
  EXPECT_NEAR(p.item<float>(), 0.75f - 0.25f - 0.02f, 1e-6);  // forward = exact count
  p.sum().backward();
  const auto g = z.grad()[0];
  for (int i = 1; i < 4; ++i) EXPECT_LT(g[i].item<float>(), 0.0f) << "dropped token " << i;
  EXPECT_LT(g[1].item<float>(), g[3].item<float>());  // −0.02 is brought back first…
  EXPECT_LT(g[3].item<float>(), g[2].item<float>());  // …then −0.1, then −0.3
  // Known answer: dP/dz_i = −σ'(z_i / T) / (T · N).
  const double s = 1.0 / (1.0 + std::exp(0.02 / t));
  EXPECT_NEAR(g[1].item<double>(), -s * (1 - s) / (t * 4), 1e-5);

  auto z_mask = torch::tensor({{0.4f, -0.02f, -0.3f, -0.1f}}, torch::requires_grad());
  hard_budget_penalty(torch::relu(z_mask), {}, torch::tensor({0.75f}), 0.02, 1e-3, 0.02, HardSurrogate::kMask)
      .sum()
      .backward();
  EXPECT_EQ(z_mask.grad()[0][1].item<float>(), 0.0f);  // the mask surrogate cannot see it (ReLU)

  // Over budget (4/4 kept against α = 0.25): positive everywhere, largest at the smallest margin.
  auto z2 = torch::tensor({{0.4f, 0.03f, 0.2f, 0.6f}}, torch::requires_grad());
  hard_budget_penalty(torch::relu(z2), z2, torch::tensor({0.25f}), 0.02, 1e-3, t).sum().backward();
  const auto g2 = z2.grad()[0];
  for (int i = 0; i < 4; ++i) EXPECT_GT(g2[i].item<float>(), 0.0f);
  EXPECT_GT(g2[1].item<float>(), g2[2].item<float>());
  EXPECT_GT(g2[2].item<float>(), g2[0].item<float>());
}

TEST(HardCount, CumulativeMarginIsTheRunningMinimumAndNeedsTheSoftPath) {
  std::vector<BlockStats> stats(2);
  stats[0].patch_margin = torch::tensor({{0.3f, -0.2f, 0.1f}});
  stats[1].patch_margin = torch::tensor({{0.1f, 0.5f, 0.2f}});
  const auto c = cumulative_margins(stats);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_TRUE(torch::equal(c[0], stats[0].patch_margin));
  EXPECT_TRUE(torch::equal(c[1], torch::tensor({{0.1f, -0.2f, 0.1f}})));  // dropped at block 1 stays dropped
  stats[1].patch_margin = torch::Tensor();
  stats[1].block = 2;
  EXPECT_NE(tokcom::test::error_of([&] { cumulative_margins(stats); }).find("block 2 has no patch_margin"), std::string::npos);
  EXPECT_THROW(parse_hard_surrogate("sigmoid"), ConfigError);
  EXPECT_DOUBLE_EQ(lambda_hard_at(2.0, 0, 10), 0.0);
  EXPECT_DOUBLE_EQ(lambda_hard_at(2.0, 5, 10), 1.0);
  EXPECT_DOUBLE_EQ(lambda_hard_at(2.0, 12, 10), 2.0);
  EXPECT_DOUBLE_EQ(lambda_hard_at(2.0, 0, 0), 2.0);
}

// Mixup and CutMix (train/mixup.h) against what they must be, sample by sample.
TEST(Mix, MixupBlendsEachSampleWithItsReverseAndWeighsTheLabelsAlike) {
  const auto x = torch::rand({5, 2, 4, 6});
  const auto y = torch::tensor({0, 3, 1, 3, 2}, torch::kLong);
  MixOptions o;
  o.mixup = 0.8;
  const MixedBatch m = mix_batch(x, y, 4, /*smoothing=*/0.0, o, 7);
  ASSERT_GT(m.lambda, 0.0);
  ASSERT_LT(m.lambda, 1.0);
  EXPECT_FALSE(m.cutmix);
  EXPECT_TRUE(torch::allclose(m.images, m.lambda * x + (1 - m.lambda) * x.flip(0), 1e-6, 1e-6));
  for (int64_t i = 0; i < 5; ++i) {
    const int64_t own = y[i].item<int64_t>(), other = y[4 - i].item<int64_t>();
    const double expect_own = own == other ? 1.0 : m.lambda;
    EXPECT_NEAR(m.targets[i][own].item<double>(), expect_own, 1e-6) << i;
    EXPECT_NEAR(m.targets[i].sum().item<double>(), 1.0, 1e-6);
  }
  // The same seed draws the same λ; another seed another; the input is left as it was.
  EXPECT_EQ(mix_batch(x, y, 4, 0.0, o, 7).lambda, m.lambda);
  EXPECT_NE(mix_batch(x, y, 4, 0.0, o, 8).lambda, m.lambda);
  // Smoothing folds in as timm's mixup_target: on = 1 − ε + ε/C, off = ε/C, then the blend.
  // Sample 0 (label 0) is mixed with sample 4 (label 2); class 1 is neither.
  const MixedBatch s = mix_batch(x, y, 4, 0.1, o, 7);
  EXPECT_NEAR(s.targets[0][1].item<double>(), 0.025, 1e-6);
  EXPECT_NEAR(s.targets[0][0].item<double>(), m.lambda * 0.925 + (1 - m.lambda) * 0.025, 1e-6);
  EXPECT_NEAR(s.targets[0][2].item<double>(), m.lambda * 0.025 + (1 - m.lambda) * 0.925, 1e-6);
}

TEST(Mix, CutMixPastesTheReversedSamplesBoxAndLambdaIsTheAreaLeft) {
  const auto x = torch::rand({4, 3, 16, 12});
  const auto y = torch::tensor({0, 1, 2, 3}, torch::kLong);
  MixOptions o;
  o.cutmix = 1.0;
  int boxes = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const MixedBatch m = mix_batch(x, y, 4, 0.0, o, seed);
    ASSERT_TRUE(m.cutmix);
    const int64_t y0 = m.box[0], y1 = m.box[1], x0 = m.box[2], x1 = m.box[3];
    auto inside = torch::zeros({16, 12}, torch::kBool);
    inside.index_put_({torch::indexing::Slice(y0, y1), torch::indexing::Slice(x0, x1)}, true);
    const auto expect = torch::where(inside, x.flip(0), x);
    EXPECT_TRUE(torch::equal(m.images, expect)) << "seed " << seed;
    EXPECT_DOUBLE_EQ(m.lambda, 1.0 - double((y1 - y0) * (x1 - x0)) / (16.0 * 12.0));
    EXPECT_NEAR(m.targets[1][1].item<double>(), m.lambda, 1e-6);
    EXPECT_NEAR(m.targets[1][2].item<double>(), 1 - m.lambda, 1e-6);
    boxes += (y1 > y0 && x1 > x0);
  }
  EXPECT_GT(boxes, 10);  // most draws paste a box
  // Both on: switch_prob 1 always CutMix, 0 always mixup; prob 0 never mixes (smoothed one-hot).
  o.mixup = 0.8;
  o.switch_prob = 1.0;
  EXPECT_TRUE(mix_batch(x, y, 4, 0.0, o, 3).cutmix);
  o.switch_prob = 0.0;
  EXPECT_FALSE(mix_batch(x, y, 4, 0.0, o, 3).cutmix);
  o.prob = 0.0;
  const MixedBatch none = mix_batch(x, y, 4, 0.2, o, 3);
  EXPECT_EQ(none.lambda, 1.0);
  EXPECT_TRUE(torch::equal(none.images, x));
  EXPECT_NEAR(none.targets[2][2].item<double>(), 0.85, 1e-6);
}

TEST(Mix, SoftCrossEntropyIsCrossEntropyWithLabelSmoothing) {
  const auto logits = torch::randn({6, 5}, torch::kDouble);
  const auto y = torch::tensor({4, 0, 1, 1, 3, 2}, torch::kLong);
  MixOptions off;
  const MixedBatch m = mix_batch(torch::zeros({6, 1, 2, 2}), y, 5, 0.1, off, 0);
  const auto expected = torch::nn::functional::cross_entropy(
      logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(0.1));
  EXPECT_NEAR(soft_cross_entropy(logits, m.targets.to(torch::kDouble)).item<double>(), expected.item<double>(), 1e-6);
  const Config bad = Config::load("", {"train.mixup=-1"});
  EXPECT_NE(test::error_of([&] { mix_options_from_config(bad); }).find("train.mixup: -1 is not a Beta parameter"),
            std::string::npos);
  const Config bad_prob = Config::load("", {"train.mix_prob=1.5"});
  EXPECT_NE(test::error_of([&] { mix_options_from_config(bad_prob); }).find("train.mix_prob: 1.5 is not a probability"),
            std::string::npos);
}

// Stochastic depth: whole samples' branches dropped with probability p and the rest scaled by
// 1/(1 − p); nothing in eval mode; the rate grows linearly over the blocks as timm's.
TEST(DropPath, DropsWholeSamplesScalesTheRestAndOnlyInTraining) {
  torch::manual_seed(0);
  const auto branch = torch::ones({4000, 3, 2});
  const auto out = drop_path(branch, 0.25, /*training=*/true);
  const auto per_sample = out.flatten(1);
  const auto dropped = (per_sample == 0).all(1), kept = (per_sample == 1.0 / 0.75).all(1);
  EXPECT_TRUE((dropped | kept).all().item<bool>());  // never a partial sample
  EXPECT_NEAR(dropped.to(torch::kDouble).mean().item<double>(), 0.25, 0.03);
  EXPECT_TRUE(torch::equal(drop_path(branch, 0.25, false), branch));
  Vit with(VitOptions().image_size(16).patch_size(4).dim(16).depth(5).heads(2).drop_path(0.4));
  EXPECT_DOUBLE_EQ(with->blocks->ptr<BlockImpl>(0)->drop_path, 0.0);
  EXPECT_DOUBLE_EQ(with->blocks->ptr<BlockImpl>(2)->drop_path, 0.2);
  EXPECT_DOUBLE_EQ(with->blocks->ptr<BlockImpl>(4)->drop_path, 0.4);
  // Eval mode is the model without it (same weights); training mode draws from the global generator.
  Vit without(VitOptions().image_size(16).patch_size(4).dim(16).depth(5).heads(2));
  torch::NoGradGuard no_grad;
  const auto source = with->named_parameters();
  for (auto& p : without->named_parameters()) p.value().copy_(source[p.key()]);
  const auto images = torch::randn({3, 3, 16, 16});
  with->eval();
  without->eval();
  EXPECT_TRUE(torch::equal(with->forward(images).logits, without->forward(images).logits));
  with->train();
  torch::manual_seed(5);
  const auto a = with->forward(images).logits;
  torch::manual_seed(5);
  EXPECT_TRUE(torch::equal(with->forward(images).logits, a));
  torch::manual_seed(6);
  EXPECT_FALSE(torch::equal(with->forward(images).logits, a));
  EXPECT_THROW(Vit(VitOptions().drop_path(1.0)), ConfigError);
}

// The distillation terms against their formulas.
TEST(Distill, KlAndTokenTermsKnownAnswers) {
  const auto s = torch::tensor({{1.0, 2.0, 0.5}, {0.0, -1.0, 3.0}}, torch::kDouble);
  const auto t = torch::tensor({{2.0, 0.0, 1.0}, {1.0, 1.0, 1.0}}, torch::kDouble);
  for (double temperature : {1.0, 2.5}) {
    double expected = 0;
    for (int64_t b = 0; b < 2; ++b) {
      const auto pt = torch::softmax(t[b] / temperature, 0), ps = torch::softmax(s[b] / temperature, 0);
      expected += (pt * (pt.log() - ps.log())).sum().item<double>();
    }
    expected = expected / 2 * temperature * temperature;
    EXPECT_NEAR(distillation_kl(s, t, temperature).item<double>(), expected, 1e-6) << temperature;
  }
  EXPECT_NEAR(distillation_kl(t, t, 1.0).item<double>(), 0.0, 1e-7);
  EXPECT_THROW(distillation_kl(s, t.slice(1, 0, 2), 1.0), ShapeError);

  // Tokens: [cls, 4 patches, budget]; the student's mask keeps patches 0 and 2 (1.0 and 0.5).
  Vit student(VitOptions().image_size(8).patch_size(4).dim(8).depth(1).heads(2).adaptive_blocks({}));
  Vit teacher(VitOptions().image_size(8).patch_size(4).dim(8).depth(1).heads(2).adaptive_blocks({}));
  TokenState a, b;
  a.x = torch::randn({1, 6, 8});
  b.x = torch::randn({1, 5, 8});
  a.mask = torch::tensor({{1.0f, 1.0f, 0.0f, 0.5f, 0.0f, 1.0f}});
  torch::NoGradGuard no_grad;
  const auto d = (student->norm(a.x.slice(1, 1, 5)) - teacher->norm(b.x.slice(1, 1, 5))).pow(2).mean(-1)[0];
  const double expected = (d[0].item<double>() + 0.5 * d[2].item<double>()) / 1.5;
  EXPECT_NEAR(token_distillation(student, a, teacher, b).item<double>(), expected, 1e-5);
  a.mask = torch::Tensor();
  EXPECT_NEAR(token_distillation(student, a, teacher, b).item<double>(), d.mean().item<double>(), 1e-5);
}

namespace {
// A tiny adaptive ViT on a slice of Fashion-MNIST (installed by setup.sh).
Config tiny_config(
const std::string& out, const std::string& stage, int epochs, int max_batches,
                   const std::vector<std::string>& extra = {}) {
  std::vector<std::string> o = {"data.dataset=fashion-mnist", "data.image_size=28", "data.augment=crop-flip",
                                "model.image_size=28",       "model.patch_size=7",  "model.in_chans=1",
                                "model.dim=32",              "model.depth=3",       "model.heads=2",
                                "model.adaptive_blocks=[1, 2]", "train.stage=" + stage,
                                "train.epochs=" + std::to_string(epochs),
                                "train.max_batches=" + std::to_string(max_batches), "train.batch_size=64",
                                "train.eval_batch_size=256",  "train.warmup_epochs=0", "train.out=" + out,
                                "train.eval_alphas=[0.25, 1.0]"};
  o.insert(o.end(), extra.begin(), extra.end());
  return Config::load("", o);
}
}  // namespace

// A resumed run equals an uninterrupted one, and it starts from the checkpoint, not from scratch:
// training is deterministic, so the only way to tell is to change the checkpoint. Two runs stop
// after epoch 1 (as if killed after its checkpoint); one weight of the second one's saved model is
// moved; resumed, the first equals the uninterrupted run and the second differs from it. A run that
// ignored the checkpoint (retrained, or started from the initial weights) would give the two
// resumed runs the same second epoch.
TEST(Trainer, ResumeEqualsUninterrupted) {
  const std::string dir = test::temp_dir("resume");
  TrainRunOptions run;
  run.seed = 3;
  // With stochastic depth and mixup/CutMix on: their draws after a resume must be the uninterrupted
  // run's (the loop seeds every step; without it the resumed epoch differs).
  const auto tiny_config = [](const std::string& out, const std::string& stage, int epochs, int max_batches) {
    return ::tiny_config(out, stage, epochs, max_batches, {"model.drop_path=0.3", "train.mixup=0.8", "train.cutmix=1.0"});
  };
  const auto straight = train(tiny_config(dir + "/a", "backbone", 2, 4), run);
  TrainRunOptions first = run;
  first.stop_after_epochs = 1;
  for (const char* d : {"/b", "/c"}) ASSERT_EQ(train(tiny_config(dir + d, "backbone", 2, 4), first).size(), 1u);
  const std::string moved_file = dir + "/c/checkpoint/model.safetensors";
  Safetensors weights = read_safetensors(moved_file);
  // One class's row only: a shift of every row alike moves every logit alike, which softmax does not see
  // (the moved run then trained exactly as the resumed one).
  torch::Tensor& head = weights.tensors.at("head.weight");
  head = head.clone();
  head[0] += 0.5;
  write_safetensors(moved_file, weights.tensors, weights.metadata);
  TrainRunOptions resume = run;
  resume.resume = true;
  const auto resumed = train(tiny_config(dir + "/b", "backbone", 2, 4), resume);
  const auto moved = train(tiny_config(dir + "/c", "backbone", 2, 4), resume);
  ASSERT_EQ(straight.size(), 2u);
  ASSERT_EQ(resumed.size(), 2u);
  ASSERT_EQ(moved.size(), 2u);
  EXPECT_DOUBLE_EQ(straight[1].loss, resumed[1].loss);
  EXPECT_DOUBLE_EQ(straight[1].val_accuracy, resumed[1].val_accuracy);
  const auto wa = read_safetensors(dir + "/a/model.safetensors").tensors;
  const auto wb = read_safetensors(dir + "/b/model.safetensors").tensors;
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << name;
  // The CSV has one row per epoch after the header.
  const std::string csv = read_file(dir + "/b/epochs.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  // The moved checkpoint: epoch 1's record comes from it, epoch 2 trains from the moved weights.
  EXPECT_DOUBLE_EQ(moved[0].loss, straight[0].loss);
  EXPECT_NE(moved[1].loss, resumed[1].loss);
  const auto wc = read_safetensors(dir + "/c/model.safetensors").tensors;
  EXPECT_FALSE(torch::equal(wb.at("head.weight"), wc.at("head.weight")));
}

// A checkpoint whose optimiser state, state or weights were cut short or lost (a disk filled, a copy
// interrupted) is an error naming the file and what to do, not LibTorch's zip-reader message nor a
// silent restart.
TEST(Trainer, ADamagedCheckpointIsNamed) {
  const std::string dir = test::temp_dir("resume_cut");
  TrainRunOptions first;
  first.stop_after_epochs = 1;
  train(tiny_config(dir, "backbone", 2, 2), first);
  TrainRunOptions resume;
  resume.resume = true;
  const std::string ck = dir + "/checkpoint";
  // Each file of the checkpoint damaged in turn (and restored): the error names it, nothing trains.
  struct Damage {
    std::string file, cut, expect;
  };
  const std::vector<Damage> damages = {
      {"optimizer.pt", "half", "FormatError: " + ck + "/optimizer.pt: not a readable optimiser state"},
      {"optimizer.pt", "gone", "FormatError: " + ck + "/optimizer.pt: not a readable optimiser state"},
      {"state.json", "half", "FormatError: " + ck + "/state.json: malformed checkpoint state"},
      {"state.json", "{\"epoch\": \"one\", \"records\": []}", "FormatError: " + ck + "/state.json: malformed"},
      {"model.safetensors", "half", ck + "/model.safetensors"},
      {"model.safetensors", "gone", ck + "/model.safetensors"}};
  for (const Damage& d : damages) {
    const std::string path = ck + "/" + d.file;
    const std::string bytes = read_file(path);
    if (d.cut == "half") write_file_atomic(path, bytes.substr(0, bytes.size() / 2));
    else if (d.cut == "gone") std::filesystem::remove(path);
    else write_file_atomic(path, d.cut);
    const std::string msg = test::error_of([&] { train(tiny_config(dir, "backbone", 2, 2), resume); });
    EXPECT_NE(msg.find(d.expect), std::string::npos) << d.file << " " << d.cut << ": " << msg;
    if (d.file == "optimizer.pt") {
      EXPECT_NE(msg.find("delete " + ck), std::string::npos) << msg;
    }
    write_file_atomic(path, bytes);
  }
  // Restored, it resumes.
  EXPECT_EQ(train(tiny_config(dir, "backbone", 2, 2), resume).size(), 2u);
}

TEST(Trainer, ResumeRefusesADifferentConfig) {
  const std::string dir = test::temp_dir("resume_cfg");
  TrainRunOptions run;
  run.stop_after_epochs = 1;
  train(tiny_config(dir, "backbone", 2, 2), run);
  TrainRunOptions resume;
  resume.resume = true;
  EXPECT_THROW(train(tiny_config(dir, "backbone", 2, 2, {"train.lr=0.5"}), resume), ConfigError);
}

// The ranges are the schema's: every preset in configs/ is inside them.
TEST(Trainer, EveryPresetIsInsideTheTrainingRanges) {
  int presets = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(TOKCOM_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(check_training_ranges(Config::load(e.path().string()))) << e.path();
    ++presets;
  }
  EXPECT_GE(presets, 6);
}

TEST(Trainer, NumbersNoRunCanMeanAreRefusedBeforeAnyWork) {
  const std::string dir = test::temp_dir("ranges");
  const std::pair<std::string, std::string> cases[] = {
      {"train.epochs=0", "train.epochs: 0, expected an integer ≥ 1"},
      {"train.epochs=-1", "train.epochs: -1, expected an integer ≥ 1"},
      {"train.batch_size=0", "train.batch_size: 0"},
      {"train.max_batches=-2", "train.max_batches: -2"},
      {"train.lr=1e308", "train.lr: 1e+308, expected a finite number in [0, 10]"},
      {"train.lr=-1", "train.lr: -1"},
      {"train.selection_lr=-0.1", "train.selection_lr: -0.1"},
      {"train.label_smoothing=1", "train.label_smoothing: 1, expected a finite number in [0, 1)"},
      {"train.grad_clip=-1", "train.grad_clip: -1"},
      {"train.warmup_epochs=-1", "train.warmup_epochs: -1"},
      {"train.weight_decay=-1", "train.weight_decay: -1, expected a finite number in [0, 10]"},
      {"train.mix_prob=2", "train.mix_prob: 2 is not a probability; expected a value in [0, 1]"},
      {"train.cutmix=2000", "train.cutmix: 2000 is not a Beta parameter; expected a finite value in [0, 1000]"},
      {"train.hard_temperature=0", "train.hard_temperature: 0, expected a finite number in (0, 1000]"},
      {"train.alpha_max=0.0005", "train.alpha_max: 0.0005, expected at least train.alpha_min (0.001)"}};
  for (const auto& [override, expected] : cases) {
    for (const std::string stage : {"backbone", "jscc"}) {
      const std::string msg = test::error_of([&] { train(tiny_config(dir + "/" + stage, stage, 1, 1, {override}), {}); });
      EXPECT_NE(msg.find(expected), std::string::npos) << override << " (" << stage << "): " << msg;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/backbone/epochs.csv"));  // nothing ran
}

TEST(Trainer, AdaptiveStageLowersLossAndKeptFractionMovesTowardAlpha) {
  const std::string dir = test::temp_dir("adaptive");
  TrainRunOptions run;
  run.seed = 1;
  const auto records = train(tiny_config(dir, "adaptive", 4, 25, {"train.lr=3e-3", "train.selection_lr=1e-2"}), run);
  ASSERT_EQ(records.size(), 4u);
  EXPECT_LT(records.back().loss, records.front().loss);
  // eval_alphas = [0.25, 1.0]: at α = 0.25 the hard kept fraction falls from ~1 (nothing dropped at
  // init, METHOD §3.3) toward 0.25.
  const double kept_first = records.front().kept_fraction.at(0), kept_last = records.back().kept_fraction.at(0);
  EXPECT_LT(kept_last, 0.6) << "first epoch kept " << kept_first;
  EXPECT_LT(kept_last, kept_first + 1e-9);
  EXPECT_DOUBLE_EQ(records.back().kept_fraction.at(1), 1.0);  // α = 1: static path, nothing dropped
}

// Progressive resizing: a backbone trained at 14 px (2 × 2 patches of 7) starts the 28-px model
// (4 × 4) through train.init, its pos_embed resampled and every other weight taken over. After one
// Adam step of lr 1e-3 every weight is within ~1e-3 of where it started; a fresh pos_embed or fresh
// blocks (init ignored, or the pos_embed refused) would be ~0.02 away.
TEST(Trainer, InitFromAnotherImageSizeResamplesPosEmbed) {
  const std::string dir = test::temp_dir("resize");
  TrainRunOptions run;
  run.seed = 2;
  const std::vector<std::string> small = {"data.image_size=14", "model.image_size=14"};
  train(tiny_config(dir + "/small", "backbone", 1, 2, small), run);
  const std::string init = dir + "/small/model.safetensors";
  train(tiny_config(dir + "/large", "backbone", 1, 1, {"train.init=" + init}), run);
  const TensorMap before = read_safetensors(init).tensors, after = read_safetensors(dir + "/large/model.safetensors").tensors;
  ASSERT_EQ(before.at("pos_embed").size(1), 1 + 4);
  ASSERT_EQ(after.at("pos_embed").size(1), 1 + 16);
  const auto gap = [](const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); };
  EXPECT_LT(gap(after.at("pos_embed"), resample_pos_embed(before.at("pos_embed"), 4)), 3e-3);
  EXPECT_LT(gap(after.at("blocks.0.attn.qkv.weight"), before.at("blocks.0.attn.qkv.weight")), 3e-3);
}

// Distillation from a teacher pulls the student's predictions towards the teacher's: the same
// student trained with and without the KL term, the KL to the teacher measured on 512 validation
// images is lower with it. A teacher that was not loaded (random weights) would pull it elsewhere.
// Token distillation runs in the adaptive stage from train.init; the config mistakes are named.
TEST(Trainer, DistillationPullsTheStudentTowardsItsTeacher) {
  const std::string dir = test::temp_dir("distill");
  TrainRunOptions run;
  run.seed = 4;
  train(tiny_config(dir + "/teacher", "backbone", 2, 30, {"train.lr=3e-3"}), run);
  const std::string teacher_file = dir + "/teacher/model.safetensors";
  run.seed = 9;
  const auto with = train(tiny_config(dir + "/with", "backbone", 1, 25,
                                      {"train.lr=3e-3", "train.teacher=" + teacher_file, "train.distill_kl=10"}),
                          run);
  const auto without = train(tiny_config(dir + "/without", "backbone", 1, 25, {"train.lr=3e-3"}), run);
  ASSERT_EQ(with.size(), 1u);
  EXPECT_GT(with[0].distill, 0.0);
  EXPECT_EQ(without[0].distill, 0.0);
  const std::string header = read_file(dir + "/with/epochs.csv");
  EXPECT_NE(header.substr(0, header.find('\n')).find(",distill_loss"), std::string::npos) << header;
  EXPECT_EQ(read_file(dir + "/without/epochs.csv").find("distill_loss"), std::string::npos);

  const Config config = tiny_config(dir + "/x", "backbone", 1, 1);
  const ImageDataset val = load_dataset(config, "val");
  const torch::Tensor images = eval_transform(val.images.slice(0, 0, 512), transform_options(config, val));
  const auto logits = [&](const std::string& file) {
    Vit m = make_vit(config);
    load_module(file, *m, /*strict=*/false);
    m->eval();
    torch::NoGradGuard no_grad;
    return m->forward(images).logits;
  };
  const torch::Tensor t = logits(teacher_file);
  const double kl_with = distillation_kl(logits(dir + "/with/model.safetensors"), t, 1.0).item<double>();
  const double kl_without = distillation_kl(logits(dir + "/without/model.safetensors"), t, 1.0).item<double>();
  EXPECT_LT(kl_with, 0.6 * kl_without) << "with " << kl_with << ", without " << kl_without;
  // DeiT's hard-label distillation alone (w = 1: the teacher's argmax is the only label) makes the
  // student agree with the teacher more often than the labels do.
  const auto hard = train(tiny_config(dir + "/hard", "backbone", 1, 25,
                                      {"train.lr=3e-3", "train.teacher=" + teacher_file, "train.distill_hard=1"}),
                          run);
  EXPECT_GT(hard.at(0).distill, 0.0);
  const auto agreement = [&](const std::string& file) {
    return logits(file).argmax(1).eq(t.argmax(1)).to(torch::kDouble).mean().item<double>();
  };
  const double agree_hard = agreement(dir + "/hard/model.safetensors");
  const double agree_without = agreement(dir + "/without/model.safetensors");
  EXPECT_GT(agree_hard, agree_without + 0.05) << "hard " << agree_hard << ", without " << agree_without;

  // The adaptive stage distils logits and kept tokens from the backbone it starts from.
  const auto adaptive = train(tiny_config(dir + "/adaptive", "adaptive", 1, 3,
                                          {"train.init=" + teacher_file, "train.distill_kl=1", "train.distill_tokens=1"}),
                              run);
  EXPECT_GT(adaptive.at(0).distill, 0.0);

  const std::pair<std::vector<std::string>, std::string> mistakes[] = {
      {{"train.distill_kl=1"}, "need a teacher: set train.teacher"},
      {{"train.distill_hard=0.5"}, "need a teacher: set train.teacher"},
      {{"train.distill_hard=1.5", "train.teacher=" + teacher_file}, "train.distill_hard: 1.5"},
      {{"train.distill_kl=1", "train.teacher=" + teacher_file, "train.teacher_model=resnet"},
       "train.teacher_model: 'resnet', expected same, vit"},
      {{"train.distill_kl=1", "train.teacher=" + teacher_file, "train.teacher_model=mobilenet-v3-small"}, "lacks"},
      {{"train.distill_tokens=1", "train.teacher=" + teacher_file}, "train.distill_tokens: token distillation weighs"},
      {{"train.distill_kl=1", "train.teacher=" + dir + "/with/epochs.csv"}, dir + "/with/epochs.csv"},
      {{"train.distill_kl=-1"}, "train.distill_kl: -1"},
      {{"train.distill_temperature=0"}, "train.distill_temperature: 0"}};
  write_safetensors(dir + "/partial.safetensors", {{"head.bias", torch::zeros({10})}});
  for (const auto& [overrides, expected] : mistakes) {
    const std::string msg = test::error_of([&] { train(tiny_config(dir + "/bad", "backbone", 1, 1, overrides), run); });
    EXPECT_NE(msg.find(expected), std::string::npos) << overrides.front() << ": " << msg;
  }
  const std::string partial = test::error_of([&] {
    train(tiny_config(dir + "/bad", "backbone", 1, 1, {"train.distill_kl=1", "train.teacher=" + dir + "/partial.safetensors"}),
          run);
  });
  EXPECT_NE(partial.find("lacks"), std::string::npos) << partial;
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad/epochs.csv"));

  // A convnet teacher for the ViT, as DeiT's: MobileNetV3-Small trained here (32 px, its smallest input).
  const std::vector<std::string> at32 = {"data.image_size=32", "model.image_size=32", "model.patch_size=8",
                                         "mobilenet.in_chans=1"};
  std::vector<std::string> cnn = at32;
  cnn.push_back("train.model=mobilenet");
  train(tiny_config(dir + "/cnn", "backbone", 1, 3, cnn), run);
  std::vector<std::string> student = at32;
  for (const std::string o : {"train.teacher_model=mobilenet-v3-small", "train.distill_hard=0.5"}) student.push_back(o);
  student.push_back("train.teacher=" + dir + "/cnn/model.safetensors");
  EXPECT_GT(train(tiny_config(dir + "/vit-from-cnn", "backbone", 1, 3, student), run).at(0).distill, 0.0);
}

TEST(Trainer, BadStageAndOptimizerAreConfigErrors) {
  const std::string dir = test::temp_dir("bad");
  EXPECT_THROW(train(tiny_config(dir, "jscc-ish", 1, 1), {}), ConfigError);
  EXPECT_THROW(train(tiny_config(dir, "backbone", 1, 1, {"train.optimizer=sgdx"}), {}), ConfigError);
}

// The verbs over a trained checkpoint: eval writes its CSV with the pinned header, predict's
// tensor mode returns the same logits as the library forward, bad inputs are clear errors.
TEST(Cli, TrainEvalPredictOnATinyCheckpoint) {
  const std::string dir = test::temp_dir("cli");
  const std::string model_overrides =
      "data.dataset=fashion-mnist data.image_size=28 model.image_size=28 model.patch_size=7 model.in_chans=1 "
      "model.dim=32 model.depth=3 model.heads=2 'model.adaptive_blocks=[1, 2]' ";
  std::string out;
  ASSERT_EQ(test::run_cli("--log-level warn train " + model_overrides +
                              "train.stage=adaptive train.epochs=1 train.max_batches=2 train.batch_size=32 "
                              "'train.eval_alphas=[0.5]' train.out=" + dir,
                          &out),
            0)
      << out;
  const std::string ckpt = dir + "/model.safetensors";
  ASSERT_EQ(test::run_cli("eval --checkpoint " + ckpt + " --alphas 0.5,1 --mode hard --batch-size 512 -o " + dir +
                              "/eval.csv",
                          &out),
            0)
      << out;
  const std::string csv = read_file(dir + "/eval.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "alpha,mode,accuracy,kept_fraction,kept_mean_block1,kept_std_block1,kept_mean_block2,kept_std_block2,"
            "images_per_s,n_images");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);

  // predict --input: logits equal the in-process forward of the same weights.
  Config config = Config::load(dir + "/config.yaml");
  Vit model = make_vit(config);
  load_module(ckpt, *model);
  model->eval();
  const auto x = torch::randn({3, 1, 28, 28});
  write_safetensors(dir + "/in.safetensors", {{"input", x}});
  ASSERT_EQ(test::run_cli("predict --checkpoint " + ckpt + " --alpha 0.5 --mode hard --input " + dir +
                              "/in.safetensors --out " + dir + "/out.safetensors --hidden",
                          &out),
            0)
      << out;
  const auto got = read_safetensors(dir + "/out.safetensors").tensors;
  torch::NoGradGuard no_grad;
  const auto expected = model->forward(x, torch::full({3}, 0.5), SelectionMode::kHard).logits;
  EXPECT_TRUE(torch::allclose(got.at("logits"), expected, 1e-5, 1e-5));
  EXPECT_EQ(got.count("hidden.embed"), 1u);
  EXPECT_EQ(got.count("hidden.block.2"), 1u);

  // Bad input: wrong input shape names the tensor and both shapes; a missing tensor names the file.
  write_safetensors(dir + "/bad.safetensors", {{"input", torch::randn({3, 3, 28, 28})}});
  EXPECT_EQ(test::run_cli("predict --checkpoint " + ckpt + " --input " + dir + "/bad.safetensors --out " + dir +
                              "/o2.safetensors",
                          &out),
            5);
  EXPECT_NE(out.find("input has shape [3, 3, 28, 28], expected [*, 1, 28, 28]"), std::string::npos) << out;
  write_safetensors(dir + "/none.safetensors", {{"x", torch::randn({1})}});
  EXPECT_EQ(test::run_cli("predict --checkpoint " + ckpt + " --input " + dir + "/none.safetensors --out " + dir +
                              "/o3.safetensors",
                          &out),
            4);
  EXPECT_NE(out.find("no tensor named 'input'"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/o2.safetensors"));
}

// A loss that turns NaN stops the run with the epoch and step named, before the bad gradient
// reaches the weights (the loop's check, with a step that goes bad on purpose).
TEST(EpochLoop, ANonFiniteLossStopsTheRunNamingEpochAndStep) {
  ImageDataset ds;
  torch::manual_seed(0);
  ds.images = torch::randint(0, 255, {64, 1, 28, 28}).to(torch::kUInt8);
  ds.labels = torch::randint(0, 10, {64}, torch::kInt64);
  ds.class_names = ds.class_ids = fashion_mnist_names();
  const Config cfg = Config::load("", {"data.dataset=fashion-mnist", "data.augment=none"});
  LoaderOptions lo;
  lo.batch_size = 8;
  lo.workers = 0;
  lo.augment = false;
  Loader loader(ds, transform_options(cfg, ds), lo);
  torch::nn::Linear linear(784, 10);
  torch::optim::SGD sgd(linear->parameters(), 0.1);
  Distributed world;
  EpochLoop loop;
  loop.label = "toy";
  loop.optimizer = &sgd;
  loop.base_lr = {0.1};
  loop.multiplier = [](int64_t) { return 1.0; };
  loop.trained = linear->parameters();
  loop.loader = &loader;
  loop.batches = 8;
  loop.epochs = 2;
  loop.dist = &world;
  torch::Tensor before_bad;
  const TrainStep step = [&](const StepInput& in) {
    const torch::Tensor logits = linear(in.images.flatten(1));
    torch::Tensor loss = torch::cross_entropy_loss(logits, in.labels);
    if (in.epoch == 1 && in.step_in_epoch == 2) {
      before_bad = linear->weight.detach().clone();
      loss = loss * std::nan("");
    }
    return StepOutput{loss, logits, {}};
  };
  EXPECT_TRUE(std::isfinite(loop.run(0, step).loss));
  const std::string error = test::error_of([&] { loop.run(1, step); });
  EXPECT_NE(error.find("UsageError: toy: training diverged: the loss is nan at epoch 2 step 3 (step 11 of the run"), std::string::npos)
      << error;
  ASSERT_TRUE(before_bad.defined());
  EXPECT_TRUE(torch::equal(linear->weight, before_bad));  // the bad step changed nothing
  EXPECT_TRUE(linear->weight.isfinite().all().item<bool>());
}


// The split model (device half → payload → channel → server half), ζ counting, the jscc training
// stage (frozen device, resumable bank) and the sweep's shards / merge / determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
#include <sstream>

#include <torch/torch.h>

#include "common/helpers.h"
#include "common/tiny_vit.h"
#include "tokcom/comm/channel.h"
#include "tokcom/comm/digital/codec.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/link_eval.h"
#include "tokcom/core/csv.h"
#include "tokcom/eval/sweep.h"
#include "tokcom/split/digital_server.h"
#include "tokcom/split/method.h"
#include "tokcom/split/mobilenet_split.h"
#include "tokcom/split/proposal.h"
#include "tokcom/train/jscc_stage.h"
#include "tokcom/train/trainer.h"

using namespace tokcom;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> tiny_overrides(const std::string& out) { return test::tiny_vit_overrides(out); }
Vit random_vit(const Config& config, uint64_t seed) { return test::random_tiny_vit(config, seed); }
// A random tiny adaptive ViT saved as `dir`/adaptive.safetensors: the train.init of a jscc stage.
std::string saved_random_vit(const std::string& dir) {
  const std::string init = dir + "/adaptive.safetensors";
  save_module(init, *random_vit(Config::load("", tiny_overrides(dir)), 9));
  return init;
}

struct TinyLink {
  Vit vit{nullptr};
  JsccCodec codec{nullptr};
  SplitModel model;
};

TinyLink tiny_link(const Config& config, double ratio, SelectionMode mode, TokenScale scale = TokenScale::kNone) {
  TinyLink t;
  t.vit = random_vit(config, 7);
  torch::manual_seed(11);
  t.codec = JsccCodec(JsccOptions().dim(32).ratio(ratio));
  t.codec->eval();
  ProposalOptions o;
  o.split = 3;
  o.mode = mode;
  o.token_scale = scale;
  t.model.device = std::make_shared<ProposalDevice>(t.vit, std::vector<JsccEncoder>{t.codec->encoder},
                                                    std::vector<double>{ratio}, o);
  t.model.server = std::make_shared<ProposalServer>(std::vector<Vit>{t.vit}, std::vector<JsccDecoder>{t.codec->decoder}, o);
  t.model.input_values = input_values(config);
  return t;
}

}  // namespace

TEST(Methods, RegistryAnswersWhatEachMethodIs) {
  EXPECT_EQ(method_names(), "proposal, vit-ae, mobilenet-flat, mobilenet-cnn, resize, jpeg, webp, avif");
  EXPECT_EQ(method_names([](const Method& m) { return m.has_bank(); }), "proposal, vit-ae, mobilenet-flat, mobilenet-cnn");
  EXPECT_TRUE(method_has_budget("proposal"));
  for (const char* name : {"vit-ae", "mobilenet-flat", "mobilenet-cnn", "jpeg", "nonsense"}) EXPECT_FALSE(method_has_budget(name));
  EXPECT_TRUE(is_digital_method("jpeg/practical"));
  EXPECT_FALSE(is_digital_method("jpeg/other"));
  EXPECT_EQ(find_method("proposal/practical"), nullptr);  // only codecs take a link model
  EXPECT_TRUE(is_mobilenet_method("mobilenet-cnn"));
  EXPECT_FALSE(is_mobilenet_method("proposal"));
  EXPECT_EQ(std::string(method_named("vit-ae", "--methods").paper_label), "ViT AE");
  const std::string msg = test::error_of([] { method_named("vit", "--methods"); });
  EXPECT_NE(msg.find("--methods: unknown method 'vit' (expected proposal, vit-ae, mobilenet-flat, mobilenet-cnn, resize"),
            std::string::npos) << msg;
  std::set<std::string> stages, flags;
  for (const Method& m : methods()) {
    EXPECT_EQ(m.has_bank(), !m.digital()) << m.name;
    if (!m.has_bank()) continue;
    EXPECT_TRUE(stages.insert(m.stage).second) << m.name << ": its stage folder is another method's";
    EXPECT_TRUE(flags.insert(m.bank_flag).second) << m.name << ": its bank flag is another method's";
    EXPECT_EQ(std::string(m.bank_flag).rfind("--", 0), 0u) << m.name;
  }
}

TEST(Split, InputValuesAreTheModelsOwnInputUnlessSet) {
  EXPECT_EQ(input_values(Config::load("", tiny_overrides("x"))), 28 * 28);  // 1 channel
  EXPECT_EQ(input_values(Config::load("")), 150528);                       // 3·224·224 (METHOD §5.5)
  EXPECT_EQ(input_values(Config::load("", {"comm.input_values=1000"})), 1000);
}

TEST(Split, SplitMustKeepSelectionOnTheDevice) {
  const Config config = Config::load("", tiny_overrides("x"));
  const VitOptions o = vit_options_from_config(config);
  EXPECT_NO_THROW(validate_split(o, 3));
  EXPECT_NO_THROW(validate_split(o, 4));
  EXPECT_NE(test::error_of([&] { validate_split(o, 2); }).find("comm.split is 2, expected in [3, 4]"), std::string::npos);
  EXPECT_THROW(validate_split(o, 5), ConfigError);
}

// Hard mode over the split: a packed batch gives the logits of one-image runs (padding never
// reaches the server as content), and ζ counts exactly (kept + cls + budget)·d_r per image.
TEST(Split, HardBatchEqualsSingleImagesAndZetaIsHandCounted) {
  const Config config = Config::load("", tiny_overrides("x"));
  TinyLink link = tiny_link(config, 0.1, SelectionMode::kHard);
  torch::manual_seed(3);
  const auto images = torch::randn({6, 1, 28, 28});
  const auto noiseless = make_channel("noiseless");
  torch::Generator rng = make_generator(0);
  DeviceStats stats;
  const Payload sent = link.model.device->encode(images, Decision{0.5, 0}, &stats);
  const torch::Tensor logits = link.model.server->decode(noiseless->apply(sent, {}, rng).payload);
  const auto kept = stats.kept_patches;
  std::set<int64_t> distinct;
  for (int64_t b = 0; b < 6; ++b) distinct.insert(kept[b].item<int64_t>());
  ASSERT_GE(distinct.size(), 2u) << "the test needs images that keep different numbers of tokens";
  const int64_t d_r = 3;  // max(⌊32·0.1⌋, 1)
  const auto k = symbols_per_image(sent);
  for (int64_t b = 0; b < 6; ++b) {
    EXPECT_EQ(k[b].item<int64_t>(), (kept[b].item<int64_t>() + 2) * d_r) << b;
    DeviceStats one_stats;
    const Payload one = link.model.device->encode(images.slice(0, b, b + 1), Decision{0.5, 0}, &one_stats);
    EXPECT_EQ(one_stats.kept_patches[0].item<int64_t>(), kept[b].item<int64_t>());
    const auto one_logits = link.model.server->decode(noiseless->apply(one, {}, rng).payload);
    EXPECT_TRUE(torch::allclose(one_logits[0], logits[b], 1e-5, 1e-5)) << b;
  }
}

// The sweep's --max-batches subset is a seeded random sample, not the first images of a split stored
// class by class: a server that always answers class 0 scores 1.0 on the first 64 of a sorted split.
TEST(Split, SweepSubsetIsARandomSampleOfTheSplit) {
  const Config config = Config::load("", tiny_overrides(test::temp_dir("link-subset")));
  TinyLink t = tiny_link(config, 0.5, SelectionMode::kHard);
  {
    torch::NoGradGuard no_grad;
    t.vit->head->weight.zero_();
    t.vit->head->bias.zero_();
    t.vit->head->bias[0] = 10.0;
  }
  ImageDataset data;
  data.name = "fashion-mnist";
  data.split = "test";
  data.images = torch::randint(0, 256, {512, 1, 28, 28}).to(torch::kUInt8);
  data.labels = torch::cat({torch::zeros({256}, torch::kInt64), torch::ones({256}, torch::kInt64)});
  const auto noiseless = make_channel("noiseless");
  const std::vector<LinkPoint> points = {{Decision{0.5, 0}, noiseless.get(), 20.0, 0}};
  LinkEvalOptions o;
  o.batch_size = 64;
  o.max_batches = 1;
  const LinkResult r = evaluate_link(t.model, points, data, config, o).front();
  ASSERT_EQ(r.n_images, 64);
  EXPECT_GT(r.accuracy(), 0.25);
  EXPECT_LT(r.accuracy(), 0.75) << "the subset is the first (all class-0) images of the sorted split";
  EXPECT_EQ(evaluate_link(t.model, points, data, config, o).front().correct, r.correct);
}

TEST(Split, SoftModeSendsEveryPosition) {
  const Config config = Config::load("", tiny_overrides("x"));
  TinyLink link = tiny_link(config, 0.5, SelectionMode::kSoft);
  DeviceStats stats;
  const Payload sent = link.model.device->encode(torch::randn({4, 1, 28, 28}), Decision{0.25, 0}, &stats);
  const auto k = symbols_per_image(sent);
  for (int64_t b = 0; b < 4; ++b) EXPECT_EQ(k[b].item<int64_t>(), 18 * 16);  // (16 + 2)·⌊32·0.5⌋
  EXPECT_DOUBLE_EQ(18.0 * 16 / link.model.input_values, 288.0 / 784.0);
  EXPECT_LT(stats.kept_patches.sum().item<int64_t>(), 4 * 16);  // something was dropped, still sent
  ASSERT_TRUE(sent.token_scale.defined());
  EXPECT_EQ(sent.token_scale.sizes(), (std::vector<int64_t>{4, 18}));
}

TEST(Split, BadDecisionsAndPayloadsAreRejectedByName) {
  const Config config = Config::load("", tiny_overrides("x"));
  TinyLink link = tiny_link(config, 0.1, SelectionMode::kHard);
  const auto images = torch::randn({2, 1, 28, 28});
  EXPECT_NE(test::error_of([&] { link.model.device->encode(images, Decision{0.0, 0}); }).find("budget α is 0"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { link.model.device->encode(images, Decision{0.5, 1}); }).find("ratio index is 1"),
            std::string::npos);
  EXPECT_THROW(link.model.device->encode(torch::randn({2, 3, 28, 28}), Decision{0.5, 0}), ShapeError);
  Payload p = link.model.device->encode(images, Decision{0.5, 0});
  Payload wide = p;
  wide.symbols = torch::zeros({2, p.symbols.size(1), 5}, torch::kComplexFloat);
  EXPECT_NE(test::error_of([&] { link.model.server->decode(wide); }).find("expected width 3"), std::string::npos);
  Payload other = p;
  other.method = "jpeg";
  EXPECT_THROW(link.model.server->decode(other), FormatError);
  Payload index = p;
  index.ratio_index = 4;
  EXPECT_NE(test::error_of([&] { link.model.server->decode(index); }).find("ratio_index is 4"), std::string::npos);
  Payload nan = p;
  nan.token_scale = torch::ones({p.symbols.size(0), p.symbols.size(1)});
  nan.token_scale[0][0] = std::nanf("");
  EXPECT_NE(test::error_of([&] { validate(nan, "test"); }).find("token_scale"), std::string::npos);
}

// Nothing reaches the server outside ζ (METHOD §10 P27). In hard mode with comm.token_scale none or
// channel, a payload after the channel holds symbols (every one counted in ζ) and the padding mask
// only; the server's logits from exactly that equal its logits from everything the device made. The
// channel mode's mask travels as one more counted symbol per token: through a noiseless channel the
// server reads it exactly (the logits of the free mask), and it is used (changing it changes them).
TEST(Split, NoValueReachesTheServerOutsideZeta) {
  const Config config = Config::load("", tiny_overrides("x"));
  const auto images = torch::randn({4, 1, 28, 28});
  torch::Generator rng = make_generator(3);
  const auto noiseless = make_channel("noiseless"), awgn = make_channel("awgn");
  const torch::Tensor snr = torch::full({4}, 10.0);
  std::map<std::string, torch::Tensor> logits;
  std::map<std::string, torch::Tensor> symbols;
  for (TokenScale scale : {TokenScale::kNone, TokenScale::kChannel, TokenScale::kFree}) {
    TinyLink link = tiny_link(config, 0.1, SelectionMode::kHard, scale);
    const Payload sent = link.model.device->encode(images, Decision{0.4, 0});
    ASSERT_TRUE(sent.token_mask.defined());  // something was dropped: lengths differ
    const int64_t d_r = 3;                   // max(⌊0.1·32/2⌋, 1)... of the tiny codec
    ASSERT_EQ(sent.symbols.size(2), d_r + (scale == TokenScale::kChannel ? 1 : 0)) << token_scale_name(scale);
    EXPECT_EQ(sent.token_scale.defined(), scale == TokenScale::kFree) << token_scale_name(scale);
    for (const auto* channel : {noiseless.get(), awgn.get()}) {
      const Payload rx = channel->apply(sent, snr, rng).payload;
      Payload bare;  // what a receiver has: the method, the code used, the symbols and which slots came
      bare.method = rx.method;
      bare.ratio_index = rx.ratio_index;
      bare.symbols = rx.symbols;
      bare.token_mask = rx.token_mask;
      const torch::Tensor full = link.model.server->decode(rx), minimal = link.model.server->decode(bare);
      EXPECT_EQ(torch::equal(full, minimal), scale != TokenScale::kFree) << token_scale_name(scale);
      if (channel == noiseless.get()) logits[token_scale_name(scale)] = full;
    }
    symbols[token_scale_name(scale)] = symbols_per_image(sent);
  }
  // ζ: channel = none + one symbol per sent token (the mask), free = none (its mask is not counted).
  const torch::Tensor tokens = symbols["none"] / 3;
  EXPECT_TRUE(torch::equal(symbols["channel"], symbols["none"] + tokens));
  EXPECT_TRUE(torch::equal(symbols["free"], symbols["none"]));
  // Through a noiseless channel the channel mode's server reads the mask exactly: the free logits.
  EXPECT_TRUE(torch::allclose(logits["channel"], logits["free"], 1e-4, 1e-5));
  EXPECT_FALSE(torch::allclose(logits["none"], logits["free"], 1e-3, 1e-3));  // the mask matters here
  // And the mask symbol is what the server uses: set it to 1 everywhere and the logits are none's.
  TinyLink link = tiny_link(config, 0.1, SelectionMode::kHard, TokenScale::kChannel);
  Payload sent = link.model.device->encode(images, Decision{0.4, 0});
  const double one = 1.0 / std::sqrt(2.0 * 3);
  sent.symbols.select(2, 3).copy_(torch::complex(torch::full({}, one), torch::full({}, one)).expand({4, sent.symbols.size(1)}));
  EXPECT_TRUE(torch::allclose(link.model.server->decode(sent), logits["none"], 1e-4, 1e-5));
  // α = 1 takes the static path (no selection runs): the mask symbol is still sent, as 1.
  const Payload all = link.model.device->encode(images, Decision{1.0, 0});
  ASSERT_EQ(all.symbols.size(2), 4);
  EXPECT_TRUE(torch::allclose(torch::real(all.symbols.select(2, 3)), torch::full({}, one)));
  EXPECT_EQ(link.model.server->decode(all).size(0), 4);
}

// Gradients reach the codec and the server blocks only; the device half has none (METHOD §10 P10).
TEST(Split, GradientsReachOnlyJsccAndServer) {
  const Config config = Config::load("", tiny_overrides("x"));
  Vit vit = random_vit(config, 5);
  JsccCodec codec(JsccOptions().dim(32).ratio(0.1));
  for (auto& item : vit->named_parameters()) {
    item.value().set_requires_grad(item.key().rfind("blocks.3.", 0) == 0);
  }
  TokenState state;
  {
    torch::NoGradGuard no_grad;
    state = device_tokens(vit, torch::randn({4, 1, 28, 28}), torch::full({4}, 0.5), 3, SelectionMode::kSoft);
  }
  const Payload sent = encode_tokens(codec->encoder, state, 0, "proposal", TokenScale::kFree, true);
  torch::Generator rng = make_generator(1);
  const Payload rx = make_channel("awgn")->apply(sent, torch::full({4}, 5.0), rng).payload;
  server_logits(vit, codec->decoder, rx, 3, SelectionMode::kSoft, TokenScale::kFree).logsumexp(1).sum().backward();
  for (auto& item : vit->named_parameters()) {
    const bool server = item.key().rfind("blocks.3.", 0) == 0;
    EXPECT_EQ(item.value().grad().defined(), server) << item.key();
    if (server) {
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
    }
  }
  for (auto& item : codec->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
  }
}

// The jscc stage end to end: frozen parts stay bit-identical to train.init, server blocks and
// codec change, an interrupted run resumes to the uninterrupted result, finished pairs are
// skipped; the bank then drives the sweep, whose shards merge to the unsharded CSV byte for byte.
TEST(JsccStage, TrainsFrozenDeviceResumesAndSweepShardsMerge) {
  const std::string dir = test::temp_dir("jscc");
  const std::string init = saved_random_vit(dir);
  auto config_for = [&](const std::string& out, int epochs) {
    auto o = tiny_overrides(out);
    o.insert(o.end(), {"train.stage=jscc", "train.init=" + init, "train.ratios=all", "comm.train_regime=robust",
                       "train.epochs=" + std::to_string(epochs), "train.max_batches=3", "train.optimizer=adam",
                       "train.schedule=constant"});
    return Config::load("", o);
  };
  TrainRunOptions run;
  run.seed = 4;
  int64_t reused = 0;
  TrainRunOptions counted = run;
  counted.frozen_batches_reused = &reused;
  const auto straight = train_jscc(config_for(dir + "/a", 2), counted);
  ASSERT_EQ(straight.size(), 4u);  // 2 ratios × 2 epochs
  EXPECT_EQ(reused, 6);  // r = 0.5 took its 2 epochs × 3 batches from r = 0.1's frozen device outputs
  // Exact: the same bank with the cache off, every pair computing its own device half, is bit-identical.
  TrainRunOptions uncached = counted;
  uncached.frozen_cache_mb = 0;
  train_jscc(config_for(dir + "/off", 2), uncached);
  EXPECT_EQ(reused, 0);
  for (double r : {0.1, 0.5}) {
    const auto a = read_safetensors(jscc_file(dir + "/a", "robust", r)).tensors;
    const auto off = read_safetensors(jscc_file(dir + "/off", "robust", r)).tensors;
    ASSERT_EQ(a.size(), off.size());
    for (const auto& [name, value] : a) EXPECT_TRUE(torch::equal(value, off.at(name))) << name << " r " << r;
  }
  TrainRunOptions first = run;
  first.stop_after_epochs = 1;
  for (const char* d : {"/b", "/c"}) {
    EXPECT_EQ(train_jscc(config_for(dir + d, 2), first).size(), 1u);  // stopped inside r = 0.1
  }
  // Training is deterministic: a resume that ignored the checkpoint would equal the straight run too.
  // So one decoder weight of /c's checkpoint is negated: resumed, /c must differ from /b from epoch 2 on.
  // (The decoder: an encoder's change is mostly undone by the power normalization after it.)
  const std::string moved_file = dir + "/c/checkpoint-robust-r0.1/model.safetensors";
  Safetensors moved_weights = read_safetensors(moved_file);
  int64_t moved_count = 0;
  for (auto& [name, t] : moved_weights.tensors) {
    if (name.rfind("jscc.decoder", 0) != 0 || t.dim() != 2 || moved_count > 0) continue;
    t = -t;
    ++moved_count;
  }
  ASSERT_EQ(moved_count, 1) << "no jscc.decoder matrix in " << moved_file;
  write_safetensors(moved_file, moved_weights.tensors, moved_weights.metadata);
  TrainRunOptions resume = run;
  resume.resume = true;
  const auto resumed = train_jscc(config_for(dir + "/b", 2), resume);
  ASSERT_EQ(resumed.size(), 4u);  // r = 0.1 (epoch 1 from its checkpoint, then 2), then r = 0.5
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(resumed[i].ratio, straight[i].ratio);
    EXPECT_NEAR(resumed[i].loss, straight[i].loss, 1e-4) << i;
    EXPECT_EQ(resumed[i].val_accuracy, straight[i].val_accuracy) << i;
  }
  const auto moved = train_jscc(config_for(dir + "/c", 2), resume);
  ASSERT_EQ(moved.size(), 4u);
  EXPECT_NEAR(moved[0].loss, straight[0].loss, 1e-4);  // epoch 1's record is the checkpoint's
  EXPECT_NE(moved[1].loss, resumed[1].loss);
  EXPECT_NEAR(moved[2].loss, straight[2].loss, 1e-4);  // r = 0.5 had no checkpoint: trained as in the straight run
  // Its model carries the negated matrix on (a loss near ln 10 for a tiny random ViT hardly shows it).
  for (double r : {0.1, 0.5}) {
    const auto b = read_safetensors(jscc_file(dir + "/b", "robust", r)).tensors;
    const auto c = read_safetensors(jscc_file(dir + "/c", "robust", r)).tensors;
    for (const auto& [name, value] : moved_weights.tensors) {
      if (name.rfind("jscc.decoder", 0) != 0 || value.dim() != 2) continue;
      EXPECT_EQ(torch::allclose(b.at(name), c.at(name), 1e-4, 1e-5), r == 0.5) << name << " r " << r;
      if (r == 0.1) {
        EXPECT_TRUE(torch::allclose(c.at(name), -b.at(name), 0.1, 0.05)) << name;
      }
      break;
    }
  }
  EXPECT_TRUE(train_jscc(config_for(dir + "/b", 2), resume).empty());  // everything up to date

  const auto before = read_safetensors(init).tensors;
  for (double r : {0.1, 0.5}) {
    const auto a = read_safetensors(jscc_file(dir + "/a", "robust", r)).tensors;
    const auto b = read_safetensors(jscc_file(dir + "/b", "robust", r)).tensors;
    int64_t trained = 0;
    for (const auto& [name, value] : a) {
      EXPECT_TRUE(torch::allclose(value, b.at(name), 1e-4, 1e-5)) << name << " resume differs";
      const bool server = name.rfind("blocks.3.", 0) == 0 || name.rfind("jscc.", 0) == 0;
      if (!server) {
        EXPECT_TRUE(torch::equal(value, before.at(name))) << name << " is frozen but changed";
      } else if (before.count(name) && !torch::equal(value, before.at(name))) {
        ++trained;
      }
    }
    EXPECT_GT(trained, 4) << "server blocks did not train";
    EXPECT_EQ(a.count("jscc.encoder.re.0.weight"), 1u);
  }

  // A loaded bank's device half selects exactly as the plain model in eval mode (the eval-only
  // cutoff of METHOD §3.3 applies), and its payload has (kept + 2)·d_r symbols per image.
  {
    // A large cutoff makes the eval-only rule visible: in training mode these tokens would stay.
    const Config bank_cfg = Config::load(dir + "/a/config.yaml", {"model.eval_cutoff=0.5"});
    SplitModel loaded = load_proposal(bank_cfg, dir + "/a", "robust", {0.1, 0.5}, SelectionMode::kHard, torch::kCPU);
    Vit plain = make_vit(bank_cfg);
    load_module(init, *plain);
    plain->eval();
    torch::manual_seed(8);
    const auto images = torch::randn({16, 1, 28, 28});
    DeviceStats stats;
    const Payload sent = loaded.device->encode(images, Decision{0.5, 1}, &stats);
    torch::NoGradGuard no_grad;
    const VitOutput ref = plain->forward(images, torch::full({16}, 0.5), SelectionMode::kHard);
    EXPECT_TRUE(torch::equal(stats.kept_patches, ref.stats.back().kept));
    EXPECT_LT(ref.stats.back().kept.sum().item<int64_t>(), 16 * 16 * 3 / 4);  // the cutoff dropped tokens
    EXPECT_TRUE(torch::equal(symbols_per_image(sent), (ref.stats.back().kept + 2) * 16));
  }

  // Sweep through the CLI: same seed → same bytes; shards merge to the whole; gaps and overlaps refused.
  const std::string bank = dir + "/a", sweep = "sweep --bank " + bank +
                                                " --channels awgn,rayleigh --snr=-5,10 --alphas 0.5,1 --max-batches 1 "
                                                "--batch-size 64 ";
  std::string out;
  ASSERT_EQ(test::run_cli("--seed 3 " + sweep + "-o " + dir + "/full.csv", &out), 0) << out;
  ASSERT_EQ(test::run_cli("--seed 3 " + sweep + "-o " + dir + "/full2.csv", &out), 0) << out;
  const std::string full = read_file(dir + "/full.csv");
  EXPECT_EQ(full, read_file(dir + "/full2.csv"));
  EXPECT_EQ(full.substr(0, full.find('\n')),
            "method,regime,channel,snr_db,ratio,alpha,zeta,kept_tokens,symbols,accuracy,n_images,seed,mode,kept_fraction");
  {
    // The measured kept fraction beside α: kept patch tokens over the 16 patches.
    const csv::Table t = csv::read(dir + "/full.csv", "sweep", sweep_schema());
    for (size_t i = 0; i < t.rows.size(); ++i) {
      EXPECT_NEAR(t.number(i, "kept_fraction"), t.number(i, "kept_tokens") / 16.0, 1e-4) << t.where(i);
      EXPECT_GT(t.number(i, "kept_fraction"), 0.0) << t.where(i);
      EXPECT_LE(t.number(i, "kept_fraction"), 1.0) << t.where(i);
    }
  }
  {
    // With the selection mask on the channel (comm.token_scale channel) every sent token carries one
    // symbol more, and ζ counts it: in the symbols sent and in the reference-mode proxy ζ
    // (comm.proxy_zeta_reference: E[tokens sent]·dim·r with the fractional dim·r). Tiny model: dim 32,
    // d_r = 3 and 16 for r = 0.1 and 0.5, 28·28 input values; cls and budget are sent too.
    const std::string one = "--seed 3 sweep --bank " + bank +
                            " --channels awgn --snr 10 --alphas 0.5 --max-batches 1 --batch-size 64 -o " + dir;
    const std::map<std::string, std::string> runs = {
        {"none", "/scale-none.csv comm.token_scale=none"},
        {"channel", "/scale-channel.csv comm.token_scale=channel"},
        {"none-ref", "/scale-none-ref.csv comm.token_scale=none comm.proxy_zeta_reference=true"},
        {"channel-ref", "/scale-channel-ref.csv comm.token_scale=channel comm.proxy_zeta_reference=true"}};
    std::map<std::string, csv::Table> t;
    for (const auto& [name, args] : runs) {
      ASSERT_EQ(test::run_cli(one + args, &out), 0) << out;
      t.emplace(name, csv::read(dir + args.substr(0, args.find(' ')), "sweep", sweep_schema()));
      ASSERT_EQ(t.at(name).rows.size(), 2u) << name;
    }
    for (size_t i = 0; i < 2; ++i) {
      const double r = t.at("none").number(i, "ratio"), d_r = r == 0.1 ? 3 : 16;
      const double sent = t.at("none").number(i, "kept_tokens") + 2;
      for (const auto& [name, table] : t) EXPECT_EQ(table.number(i, "kept_tokens") + 2, sent) << name;
      // The CSV holds kept_tokens to 6 significant digits and symbols to 2 decimals.
      const auto near = [](double actual, double expected) { return std::abs(actual - expected) <= 1e-5 * expected; };
      const auto near_symbols = [](double actual, double expected) { return std::abs(actual - expected) <= 5e-3; };
      EXPECT_PRED2(near_symbols, t.at("none").number(i, "symbols"), sent * d_r);
      EXPECT_PRED2(near, t.at("none").number(i, "zeta"), sent * d_r / 784);
      EXPECT_PRED2(near_symbols, t.at("channel").number(i, "symbols"), sent * (d_r + 1));
      EXPECT_PRED2(near, t.at("channel").number(i, "zeta"), sent * (d_r + 1) / 784);
      EXPECT_PRED2(near, t.at("none-ref").number(i, "zeta"), sent * 32 * r / 784);
      EXPECT_PRED2(near, t.at("channel-ref").number(i, "zeta"), sent * (32 * r + 1) / 784);
    }
  }
  EXPECT_EQ(std::count(full.begin(), full.end(), '\n'), 1 + 2 * 2 * 2 * 2);  // ratios × α × channels × SNRs
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(test::run_cli(fmt::format("--seed 3 {}--shard {}/3 -o {}/part{}.csv", sweep, k, dir, k), &out), 0) << out;
  }
  ASSERT_EQ(test::run_cli(fmt::format("merge {0}/part0.csv {0}/part1.csv {0}/part2.csv -o {0}/merged.csv", dir), &out),
            0)
      << out;
  EXPECT_EQ(read_file(dir + "/merged.csv"), full);
  EXPECT_EQ(test::run_cli(fmt::format("merge {0}/part0.csv {0}/part2.csv -o {0}/gap.csv", dir), &out), 4);
  EXPECT_NE(out.find("cells missing"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli(fmt::format("merge {0}/part0.csv {0}/part0.csv {0}/part1.csv {0}/part2.csv -o {0}/dup.csv", dir),
                          &out),
            4);
  EXPECT_NE(out.find("appears in both"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/gap.csv"));
  EXPECT_FALSE(fs::exists(dir + "/dup.csv"));
  {
    // A shard from before kept_fraction reads, alone, but does not merge with a newer one.
    std::stringstream in(read_file(dir + "/part0.csv")), old_format;
    for (std::string l; std::getline(in, l);) old_format << l.substr(0, l.rfind(',')) << "\n";
    write_file_atomic(dir + "/old0.csv", old_format.str());
    fs::copy_file(dir + "/part0.csv.json", dir + "/old0.csv.json");
    EXPECT_NO_THROW(csv::read(dir + "/old0.csv", "old sweep", sweep_schema()));
    EXPECT_EQ(test::run_cli(fmt::format("merge {0}/old0.csv {0}/part1.csv {0}/part2.csv -o {0}/mixed.csv", dir), &out), 4);
    EXPECT_NE(out.find("shards of different tokcom versions"), std::string::npos) << out;
  }
  // Proxy table straight from a sweep on the training split, then the controller on the real model
  // (deployment, METHOD §8.5): every slot's ζ is a whole number of tokens × d_r of the chosen r.
  ASSERT_EQ(test::run_cli("--seed 3 sweep --bank " + bank + " --split train --snr 0,10,20 --alphas 0.25,0.5,1 "
                              "--max-batches 1 --batch-size 64 -o " + dir + "/proxy.csv",
                          &out),
            0)
      << out;
  ASSERT_EQ(test::run_cli("--seed 3 optimize --table " + dir + "/proxy.csv --method proposal --regime robust "
                              "--channel awgn --scenarios fixed:10 --zeta-max 0.2 --T 200 --window 100 --no-plots "
                              "--bank " + bank + " --deploy-images 24 -o " + dir + "/opt",
                          &out),
            0)
      << out;
  const std::string summary = read_file(dir + "/opt/deploy_summary.csv");
  EXPECT_EQ(summary.substr(0, summary.find('\n')),
            "scenario,zeta_max,repeat,V,mu,accuracy,constrained_accuracy,zeta,slots,queue_final");
  EXPECT_EQ(std::count(summary.begin(), summary.end(), '\n'), 2);  // fixed SNR: one repeat
  std::stringstream trace(read_file(dir + "/opt/deploy/trace_fixed_10_zmax0.2_rep0.csv"));
  std::string line;
  std::getline(trace, line);
  EXPECT_EQ(line, "slot,snr_db,ratio,budget,zeta,z_before,correct");
  int slots = 0;
  while (std::getline(trace, line)) {
    double slot, snr, ratio, budget, zeta, z, correct;
    ASSERT_EQ(std::sscanf(line.c_str(), "%lf,%lf,%lf,%lf,%lf,%lf,%lf", &slot, &snr, &ratio, &budget, &zeta, &z, &correct), 7);
    const double d_r = ratio == 0.1 ? 3 : 16, tokens = zeta * 784 / d_r;
    EXPECT_NEAR(tokens, std::round(tokens), 1e-6) << line;
    EXPECT_GE(tokens, 2) << line;   // cls + budget at least
    EXPECT_LE(tokens, 18) << line;  // N + 2
    ++slots;
  }
  EXPECT_EQ(slots, 24);

  // Digital baselines in the same sweep CSV, classified by a clean model; --per-image says why.
  ASSERT_EQ(test::run_cli("sweep --methods jpeg,resize --backbone " + init + " -c " + bank +
                              "/config.yaml --channels awgn,rayleigh --zetas 0.05,0.2 --snr 0,20 --max-batches 1 "
                              "--batch-size 8 --per-image " + dir + "/pi.csv -o " + dir + "/digital.csv",
                          &out),
            0)
      << out;
  const std::string digital = read_file(dir + "/digital.csv");
  EXPECT_EQ(std::count(digital.begin(), digital.end(), '\n'), 1 + 2 * 2 * 2) << digital;  // AWGN only
  EXPECT_NE(digital.find("\njpeg,none,awgn,0,0,1,0.05,"), std::string::npos) << digital;
  std::stringstream pi(read_file(dir + "/pi.csv"));
  std::getline(pi, line);
  EXPECT_EQ(line, "method,image,zeta,snr_db,budget_bits,choice,bytes,fits");
  int pi_rows = 0;
  while (std::getline(pi, line)) {
    ++pi_rows;
    char method[16];
    int image = 0, fits = 0;
    double zeta = 0, snr = 0;
    long long bits = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%15[^,],%d,%lf,%lf,%lld,", method, &image, &zeta, &snr, &bits), 5) << line;
    EXPECT_EQ(bits, static_cast<long long>(std::floor(zeta * 784 * std::log2(1 + std::pow(10.0, snr / 10))))) << line;
    fits = line.back() - '0';
    if (!fits) {
      EXPECT_NE(line.find(",,"), std::string::npos) << line;  // lost: choice empty
    }
  }
  EXPECT_EQ(pi_rows, 2 * 2 * 2 * 8);

  // A regime that was never trained names the missing file.
  EXPECT_EQ(test::run_cli(sweep + "--regimes noiseless -o " + dir + "/x.csv", &out), 3);
  EXPECT_NE(out.find("jscc-noiseless-r0.1.safetensors"), std::string::npos) << out;
}

// train.jscc_distill_kl: the clean model's KL joins the CE with its weight. With lr 0 nothing moves,
// so every run sees the same batches, budgets and noise: the loss exceeds the CE-only run's by w times
// one and the same mean KL (w = 2 adds exactly twice what w = 1 adds), and a bad weight is named.
TEST(JsccStage, CleanModelKlAddsItsWeightedTerm) {
  const std::string dir = test::temp_dir("jscc-kl");
  const std::string init = saved_random_vit(dir);
  auto config_for = [&](const std::string& out, const std::string& weight) {
    auto o = tiny_overrides(out);
    o.insert(o.end(), {"train.stage=jscc", "train.init=" + init, "train.ratios=0.5", "comm.train_regime=robust",
                       "train.epochs=1", "train.max_batches=2", "train.lr=0", "train.jscc_warm_start_steps=0",
                       "train.jscc_distill_kl=" + weight});
    return Config::load("", o);
  };
  TrainRunOptions run;
  run.seed = 5;
  const double ce = train_jscc(config_for(dir + "/ce", "0"), run).at(0).loss;
  const double one = train_jscc(config_for(dir + "/one", "1"), run).at(0).loss;
  const double two = train_jscc(config_for(dir + "/two", "2"), run).at(0).loss;
  EXPECT_GT(one - ce, 1e-4) << ce << " " << one;
  EXPECT_NEAR(two - ce, 2 * (one - ce), 1e-5 + 1e-3 * (one - ce));
  EXPECT_NE(test::error_of([&] { train_jscc(config_for(dir + "/bad", "-1"), run); }).find("train.jscc_distill_kl: -1"),
            std::string::npos);
}

// A bank trained again under another config (a preset whose JSCC scale changed), with --resume: each
// finished model of the old config and its checkpoint are outdated, so the pair starts over instead of
// refusing the old checkpoint; the model it writes carries the new config and is then up to date.
TEST(JsccStage, OutdatedModelAndItsCheckpointTrainAgainUnderResume) {
  const std::string dir = test::temp_dir("jscc-outdated");
  const std::string init = saved_random_vit(dir);
  auto config_for = [&](const std::string& out, const std::string& batches) {
    auto o = tiny_overrides(out);
    o.insert(o.end(), {"train.stage=jscc", "train.init=" + init, "train.ratios=0.5", "comm.train_regime=robust",
                       "train.epochs=1", "train.max_batches=" + batches, "train.jscc_warm_start_steps=0"});
    return Config::load("", o);
  };
  TrainRunOptions run;
  run.seed = 5;
  run.resume = true;
  train_jscc(config_for(dir + "/bank", "1"), run);
  const std::string file = jscc_file(dir + "/bank", "robust", 0.5);
  ASSERT_TRUE(fs::exists(dir + "/bank/checkpoint-robust-r0.5/state.json"));
  const std::string old_digest = read_safetensors(file).metadata.at("config_digest");
  const auto records = train_jscc(config_for(dir + "/bank", "2"), run);  // used to refuse the old checkpoint
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].epoch, 1) << "started over, not resumed after the old config's epoch";
  EXPECT_NE(read_safetensors(file).metadata.at("config_digest"), old_digest);
  EXPECT_TRUE(train_jscc(config_for(dir + "/bank", "2"), run).empty()) << "now up to date: skipped";
}

// The warm start (train.jscc_warm_start_steps): before any CE step the codec learns to carry the
// device's tokens. Checked outside the stage's own log: on validation images the saved codec
// reconstructs the device output far better than the same pair trained cold with the same seed.
TEST(JsccStage, WarmStartTeachesTheCodecTheDeviceOutput) {
  const std::string dir = test::temp_dir("jscc-warm");
  const std::string init = saved_random_vit(dir);
  auto config_for = [&](const std::string& out, int steps) {
    auto o = tiny_overrides(out);
    o.insert(o.end(), {"train.stage=jscc", "train.init=" + init, "train.ratios=0.5", "comm.train_regime=noiseless",
                       "train.epochs=1", "train.max_batches=1", "train.optimizer=adam", "train.schedule=constant",
                       "train.jscc_warm_start_steps=" + std::to_string(steps), "train.jscc_warm_start_batches=2"});
    return Config::load("", o);
  };
  TrainRunOptions run;
  run.seed = 3;
  train_jscc(config_for(dir + "/warm", 300), run);
  train_jscc(config_for(dir + "/cold", 0), run);
  EXPECT_FALSE(fs::exists(dir + "/cold/warm-start-noiseless-r0.5.csv"));
  const std::string log = read_file(dir + "/warm/warm-start-noiseless-r0.5.csv");
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 301) << "header + one row per step";

  // Relative error Σ‖x̂ − x‖² / Σ‖x‖² over the tokens the server keeps, on 64 validation images.
  const Config config = config_for(dir + "/x", 0);
  const ImageDataset val = load_dataset(config, "val");
  Loader loader(val, transform_options(config, val), loader_options(config, /*train=*/false, 0));
  loader.start_epoch(0);
  Batch batch;
  ASSERT_TRUE(loader.next(batch));
  const torch::Tensor images = batch.images.slice(0, 0, 64), budget = torch::full({64}, 0.5);
  auto error_of = [&](const std::string& bank) {
    Vit vit = make_vit(config);
    JsccCodec codec(JsccOptions().dim(32).ratio(0.5));
    JsccStageNet net(vit, codec);
    load_module(jscc_file(bank, "noiseless", 0.5), *net);
    net->eval();
    torch::NoGradGuard no_grad;
    const TokenState state = device_tokens(vit, images, budget, 3, SelectionMode::kHard);
    const torch::Tensor x_hat = codec->decoder(codec->encoder(state.x));
    const torch::Tensor real = state.padding.logical_not().unsqueeze(-1).to(torch::kFloat);
    return ((x_hat - state.x).pow(2) * real).sum().item<double>() / (state.x.pow(2) * real).sum().item<double>();
  };
  const double warm = error_of(dir + "/warm"), cold = error_of(dir + "/cold");
  EXPECT_LT(warm, 0.25) << "cold " << cold;  // 0.11 here after 300 steps
  EXPECT_GT(cold, 0.5) << "warm " << warm;
  EXPECT_THROW(train_jscc(config_for(dir + "/bad", -1), run), ConfigError);
}

TEST(SweepGrid, ShardsPartitionTheGridAndRangesParse) {
  SweepGrid g;
  g.methods = {"proposal", "vit-ae"};
  g.regimes = {"robust"};
  g.channels = {"awgn"};
  g.snrs = parse_range("-20:20:2.5", "--snr");
  g.ratios = {0.1, 0.5};
  g.alphas = {0.5, 1.0};
  EXPECT_EQ(g.snrs.size(), 17u);
  EXPECT_DOUBLE_EQ(g.snrs.back(), 20.0);
  const auto cells = sweep_cells(g);
  EXPECT_EQ(cells.size(), 17u * 2 * 2 + 17u * 2);  // vit-ae is static: α = 1 only
  int64_t covered = 0;
  for (int k = 0; k < 5; ++k) {
    const auto [b, e] = shard_range(static_cast<int64_t>(cells.size()), Shard{k, 5});
    EXPECT_EQ(b, covered);
    covered = e;
  }
  EXPECT_EQ(covered, static_cast<int64_t>(cells.size()));
  EXPECT_THROW(parse_shard("5/5"), UsageError);
  EXPECT_THROW(parse_shard("1-4"), UsageError);
  EXPECT_THROW(parse_range("0:10", "--snr"), UsageError);
  EXPECT_THROW(parse_range("0,x", "--snr"), UsageError);
}

// `tokcom channel`: at 100 dB with ZF the equalised output is the input; h is returned.
TEST(ChannelCli, AppliesAChannelToUserSymbols) {
  const std::string dir = test::temp_dir("channel");
  torch::manual_seed(2);
  write_safetensors(dir + "/z.safetensors", {{"z", torch::randn({3, 5, 4, 2})}});
  std::string out;
  ASSERT_EQ(test::run_cli("channel --channel rayleigh-csi --snr-db 100 --input " + dir + "/z.safetensors --out " + dir +
                              "/y.safetensors",
                          &out),
            0)
      << out;
  const auto t = read_safetensors(dir + "/y.safetensors").tensors;
  for (const char* name : {"z", "y", "h", "y_eq", "snr_db", "noise_var"}) EXPECT_EQ(t.count(name), 1u) << name;
  EXPECT_TRUE(torch::allclose(t.at("y_eq"), t.at("z"), 1e-4, 1e-4));
  EXPECT_FALSE(torch::allclose(t.at("y"), t.at("z"), 1e-2, 1e-2));  // y = h·z + n is not z
  EXPECT_EQ(t.at("h").sizes(), (std::vector<int64_t>{3, 2}));      // one complex gain per image
  write_safetensors(dir + "/bad.safetensors", {{"x", torch::randn({3, 2})}});
  EXPECT_EQ(test::run_cli("channel --input " + dir + "/bad.safetensors --out " + dir + "/o.safetensors", &out), 4);
  EXPECT_NE(out.find("no tensor named 'z'"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/o.safetensors"));
}

// ---- MobileNetV3 baselines behind the split interface (METHOD §6.2) ----

namespace {

std::vector<std::string> tiny_mobilenet_overrides(const std::string& out) {
  // 32 px Fashion-MNIST, one input channel, width 0.25: the device map is 8×4×4.
  auto o = tiny_overrides(out);
  o.insert(o.end(), {"data.image_size=32", "model.image_size=32", "model.patch_size=8", "mobilenet.in_chans=1",
                     "mobilenet.width_mult=0.25", "comm.input_values=1024"});
  return o;
}

}  // namespace

TEST(MobileNetSplit, SymbolCountsFollowSpec62) {
  // The paper's shapes (Small at 224 px, 24×28×28 map, n = 150 528): METHOD §6.2's k and ζ columns.
  MobileNetV3 small(MobileNetV3Options().variant("small"));
  const std::vector<std::tuple<double, int64_t, int64_t>> table = {
      {0.5, 9408, 4704}, {0.25, 4704, 1176}, {0.15, 2808, 384}, {0.1, 1872, 96},
      {0.05, 936, 24},   {0.01, 168, 24},    {0.001, 24, 24}};
  for (const auto& [r, flat_k, cnn_k] : table) {
    EXPECT_EQ(MobileNetJsccNet(small, "mobilenet-flat", r, 224)->symbols_per_image(), flat_k) << r;
    EXPECT_EQ(MobileNetJsccNet(small, "mobilenet-cnn", r, 224)->symbols_per_image(), cnn_k) << r;
  }
  EXPECT_NEAR(MobileNetJsccNet(small, "mobilenet-cnn", 0.15, 224)->symbols_per_image() / 150528.0, 0.002551, 1e-6);
  // Ours at 64 px: an 8×8 map, flat d_r = ⌊64·r⌋, CNN s = ⌊8·r⌋ (both at least 1).
  EXPECT_EQ(MobileNetJsccNet(small, "mobilenet-flat", 0.1, 64)->symbols_per_image(), 24 * 6);
  EXPECT_EQ(MobileNetJsccNet(small, "mobilenet-cnn", 0.25, 64)->symbols_per_image(), 24 * 2 * 2);
  EXPECT_THROW(MobileNetJsccNet(small, "mobilenet", 0.1, 64), ConfigError);
}

TEST(MobileNetSplit, PayloadsAreUnitPowerAndBatchesEqualSingleImages) {
  const Config config = Config::load("", tiny_mobilenet_overrides("x"));
  torch::manual_seed(3);
  MobileNetV3 m = make_mobilenet(config);
  for (const std::string method : {"mobilenet-flat", "mobilenet-cnn"}) {
    torch::manual_seed(5);
    MobileNetJsccNet net(m, method, 0.5, 32);
    net->eval();
    auto device = std::make_shared<MobileNetDevice>(std::vector<MobileNetJsccNet>{net});
    MobileNetServer server({net});
    const torch::Tensor images = torch::randn({4, 1, 32, 32});
    DeviceStats stats;
    const Payload sent = device->encode(images, Decision{1.0, 0}, &stats);
    EXPECT_EQ(sent.method, method);
    EXPECT_TRUE(torch::equal(stats.kept_patches, torch::full({4}, 8, torch::kLong)));  // every channel sent
    // Every token (flat) / every row of the s×s map (CNN) has unit energy (METHOD §5.2, 6.2).
    const torch::Tensor energy = torch::abs(sent.symbols).square().sum(-1);
    EXPECT_TRUE(torch::allclose(energy, torch::ones_like(energy), 1e-5, 1e-5)) << method;
    EXPECT_EQ(symbols_per_image(sent)[0].item<int64_t>(), net->symbols_per_image());
    const torch::Tensor batch = server.decode(sent);
    for (int64_t b = 0; b < 4; ++b) {
      const torch::Tensor one = server.decode(device->encode(images.slice(0, b, b + 1), Decision{1.0, 0}));
      EXPECT_TRUE(torch::allclose(one, batch.slice(0, b, b + 1), 1e-5, 1e-5)) << method << " image " << b;
    }
    // The server refuses a payload of the other codec, naming the field.
    Payload wrong = sent;
    wrong.method = method == "mobilenet-flat" ? "mobilenet-cnn" : "mobilenet-flat";
    EXPECT_THROW(server.decode(wrong), FormatError);
    Payload narrow = sent;
    narrow.symbols = sent.symbols.narrow(2, 0, 1);
    try {
      server.decode(narrow);
      ADD_FAILURE() << "a payload of the wrong width was decoded";
    } catch (const ShapeError& e) {
      EXPECT_NE(std::string(e.what()).find("payload.symbols"), std::string::npos) << e.what();
    }
  }
}

TEST(MobileNetSplit, TrainsBackboneAndBothBanksWithAFrozenDeviceHalfAndSweeps) {
  const std::string dir = test::temp_dir("mnv3");
  auto config_for = [&](std::vector<std::string> extra) {
    auto o = tiny_mobilenet_overrides(dir + "/backbone");
    o.insert(o.end(), {"train.epochs=1", "train.max_batches=4", "train.eval_batch_size=64"});
    o.insert(o.end(), extra.begin(), extra.end());
    return Config::load("", o);
  };
  TrainRunOptions run;
  run.seed = 2;
  const auto records = train(config_for({"train.model=mobilenet"}), run);
  ASSERT_EQ(records.size(), 1u);
  const std::string init = dir + "/backbone/model.safetensors";
  const auto before = read_safetensors(init);
  EXPECT_EQ(before.metadata.at("model"), "mobilenet");
  EXPECT_EQ(before.tensors.count("features.0.0.weight"), 1u);   // torchvision names
  EXPECT_EQ(before.tensors.count("classifier.3.weight"), 1u);
  EXPECT_THROW(train(config_for({"train.model=mobilenet", "train.stage=adaptive"}), run), ConfigError);
  EXPECT_THROW(train(config_for({"train.model=cnn"}), run), ConfigError);

  for (const std::string method : {"mobilenet-flat", "mobilenet-cnn"}) {
    const std::string bank = dir + "/" + method;
    train(config_for({"train.stage=jscc", "train.method=" + method, "train.init=" + init, "train.ratios=all",
                      "comm.train_regime=robust", "train.out=" + bank, "train.optimizer=adam",
                      "train.jscc_warm_start_steps=5"}),  // the warm start on feature maps, device still frozen
          run);
    for (double r : {0.1, 0.5}) {
      EXPECT_TRUE(fs::exists(bank + "/warm-start-robust-r" + (r == 0.1 ? "0.1" : "0.5") + ".csv")) << method;
      const auto file = read_safetensors(jscc_file(bank, "robust", r));
      EXPECT_EQ(file.metadata.at("method"), method);
      int64_t changed = 0;
      for (const auto& [name, value] : before.tensors) {
        const bool server = name.rfind("features.", 0) == 0 && std::stoll(name.substr(9)) >= 3;
        if (!server) {
          // Frozen: the device half's weights *and* BatchNorm statistics (eval mode), the classifier.
          EXPECT_TRUE(torch::equal(file.tensors.at(name), value)) << method << " " << name << " is frozen but changed";
        } else if (!torch::equal(file.tensors.at(name), value)) {
          ++changed;
        }
      }
      EXPECT_GT(changed, 10) << method << ": features[3:] did not train";
      EXPECT_EQ(file.tensors.count("jscc.encoder.re.0.weight"), 1u) << method;
    }
  }
  std::string out;
  ASSERT_EQ(test::run_cli("--seed 1 sweep --methods mobilenet-flat,mobilenet-cnn --mobilenet-flat-bank " + dir +
                              "/mobilenet-flat --mobilenet-cnn-bank " + dir +
                              "/mobilenet-cnn --snr 0,20 --max-batches 1 --batch-size 32 -o " + dir + "/sweep.csv",
                          &out),
            0)
      << out;
  const std::string csv = read_file(dir + "/sweep.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 2 * 2 * 2) << csv;  // methods × ratios × SNRs
  // ζ = symbols / 1024: flat 8 channels × d_r (16·r), CNN 8 × s² (s = ⌊4·r⌋, at least 1).
  EXPECT_NE(csv.find("\nmobilenet-flat,robust,awgn,20,0.5,1,0.0625,8.0000,64.00,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nmobilenet-flat,robust,awgn,0,0.1,1,0.0078125,8.0000,8.00,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nmobilenet-cnn,robust,awgn,20,0.5,1,0.03125,8.0000,32.00,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nmobilenet-cnn,robust,awgn,0,0.1,1,0.0078125,8.0000,8.00,"), std::string::npos) << csv;
  // A bank whose files disagree on the frozen device half is refused, naming the tensor.
  {
    const std::string mixed = dir + "/mixed";
    fs::create_directories(mixed);
    fs::copy_file(jscc_file(dir + "/mobilenet-cnn", "robust", 0.1), jscc_file(mixed, "robust", 0.1));
    Safetensors other = read_safetensors(jscc_file(dir + "/mobilenet-cnn", "robust", 0.5));
    other.tensors["features.0.0.weight"] = other.tensors["features.0.0.weight"] + 1e-3;
    write_file_atomic(jscc_file(mixed, "robust", 0.5), serialize_safetensors(other.tensors, other.metadata));
    const Config bank_config = Config::load(dir + "/mobilenet-cnn/config.yaml");
    const std::string error = test::error_of(
        [&] { load_mobilenet_split(bank_config, mixed, "robust", {0.1, 0.5}, "mobilenet-cnn", torch::kCPU); });
    EXPECT_NE(error.find("frozen tensor 'features.0.0.weight' differs from"), std::string::npos) << error;
    EXPECT_NO_THROW(load_mobilenet_split(bank_config, mixed, "robust", {0.1}, "mobilenet-cnn", torch::kCPU));
  }
  // A bank of the other method is refused by name; so is a missing bank flag.
  EXPECT_EQ(test::run_cli("sweep --methods mobilenet-cnn --mobilenet-cnn-bank " + dir +
                              "/mobilenet-flat --max-batches 1 -o " + dir + "/x.csv",
                          &out),
            4)
      << out;
  EXPECT_NE(out.find("trained for method 'mobilenet-flat', expected 'mobilenet-cnn'"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli("sweep --methods mobilenet-cnn -o " + dir + "/x.csv", &out), 6) << out;
  EXPECT_NE(out.find("--mobilenet-cnn-bank"), std::string::npos) << out;
}

// Issue "fair study" item 2, for every method of the registry: a payload through the method's own
// link (the JSCC stage's pair, the sweep's and serve's pipeline) and a channel; the server's logits
// from what a receiver has — the method, the code index, the channel's output symbols and which
// slots came (digital: the bytes, sent at the capacity) — equal its logits from the whole received
// payload. A server that read a value the device set outside the channel would differ (with
// comm.token_scale=free the proposal's does: Split.NoValueReachesTheServerOutsideZeta).
TEST(Split, EachMethodsServerReadsOnlyWhatTheChannelDelivered) {
  const std::string dir = test::temp_dir("outside-zeta");
  const std::string vit_init = saved_random_vit(dir);
  const Config mobilenet_config = Config::load("", tiny_mobilenet_overrides(dir + "/mnv3"));
  const std::string mobilenet_init = dir + "/mobilenet.safetensors";
  torch::manual_seed(4);
  save_module(mobilenet_init, *make_mobilenet(mobilenet_config));
  const auto awgn = make_channel("awgn");
  torch::Generator rng = make_generator(6);
  int checked = 0;
  for (const Method& m : methods()) {
    const bool mobilenet = m.kind == MethodKind::kMobileNet;
    const Config config = mobilenet ? mobilenet_config : Config::load("", tiny_overrides(dir));
    const int64_t side = mobilenet ? 32 : 28;
    const torch::Tensor images = torch::rand({4, 1, side, side});
    std::shared_ptr<DeviceHalf> device;
    std::shared_ptr<ServerHalf> server;
    std::unique_ptr<TrainablePair> pair;
    Vit backbone{nullptr};
    if (m.digital()) {
      backbone = random_vit(config, 2);
      server = std::make_shared<DigitalServer>(backbone, m.name, config, torch::kCPU);
    } else {
      ASSERT_NE(m.make_pair, nullptr) << m.name;
      pair = m.make_pair(config, mobilenet ? mobilenet_init : vit_init, m.name, 0.1);
      pair->module().eval();  // as the stage validates it (dropout off)
      const SplitModel link = pair->link();
      device = link.device;
      server = link.server;
    }
    Payload sent;
    if (m.digital()) {
      const auto codec = digital::make_codec(m.name, digital::CodecOptions());
      sent.method = m.name;
      for (int64_t b = 0; b < 4; ++b) {
        const torch::Tensor image = (images[b] * 255).round().to(torch::kUInt8);
        sent.bytes.push_back(codec->encode_many(image, {int64_t{1} << 20}).at(0).bytes);
      }
    } else {
      sent = device->encode(images, Decision{m.has_budget ? 0.5 : 1.0, 0});
    }
    const Payload rx = awgn->apply(sent, torch::full({4}, 5.0), rng).payload;
    Payload bare;
    bare.method = rx.method;
    bare.ratio_index = rx.ratio_index;
    bare.symbols = rx.symbols;
    bare.token_mask = rx.token_mask;
    bare.bytes = rx.bytes;
    const torch::Tensor full = server->decode(rx), minimal = server->decode(bare);
    ASSERT_EQ(full.size(0), 4) << m.name;
    EXPECT_TRUE(torch::equal(full, minimal)) << m.name << ": its server used a value sent outside the channel";
    if (!m.digital()) {
      EXPECT_FALSE(torch::equal(rx.symbols, sent.symbols)) << m.name << ": the channel did nothing";
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(methods().size()));
}

// A sweep's device half runs once per budget and encodes every ratio index from the same tokens
// (DeviceHalf::encode_each_ratio): each payload must be exactly what encode() gives for its own
// decision, for the token methods (adaptive hard and soft, static) and both MobileNet codecs.
TEST(Split, EncodeEachRatioEqualsOneEncodePerDecision) {
  auto same = [](const Payload& a, const Payload& b, const std::string& what) {
    EXPECT_EQ(a.method, b.method) << what;
    EXPECT_EQ(a.ratio_index, b.ratio_index) << what;
    EXPECT_TRUE(torch::equal(a.symbols, b.symbols)) << what;
    EXPECT_EQ(a.token_mask.defined(), b.token_mask.defined()) << what;
    if (a.token_mask.defined() && b.token_mask.defined()) {
      EXPECT_TRUE(torch::equal(a.token_mask, b.token_mask)) << what;
    }
    EXPECT_EQ(a.token_scale.defined(), b.token_scale.defined()) << what;
  };
  std::vector<std::pair<std::string, std::shared_ptr<DeviceHalf>>> devices;
  const Config config = Config::load("", tiny_overrides("x"));
  const Vit vit = random_vit(config, 7);
  std::vector<JsccEncoder> encoders;
  for (double r : {0.1, 0.5}) {
    torch::manual_seed(static_cast<uint64_t>(100 * r));
    JsccCodec codec(JsccOptions().dim(32).ratio(r));
    codec->eval();
    encoders.push_back(codec->encoder);
  }
  for (SelectionMode mode : {SelectionMode::kHard, SelectionMode::kSoft}) {
    ProposalOptions o;
    o.split = 3;
    o.mode = mode;
    devices.push_back({mode == SelectionMode::kHard ? "proposal hard" : "proposal soft",
                       std::make_shared<ProposalDevice>(vit, encoders, std::vector<double>{0.1, 0.5}, o)});
  }
  const Config mobilenet_config = Config::load("", tiny_mobilenet_overrides("x"));
  torch::manual_seed(3);
  MobileNetV3 m = make_mobilenet(mobilenet_config);
  for (const std::string method : {"mobilenet-flat", "mobilenet-cnn"}) {
    std::vector<MobileNetJsccNet> nets;
    for (double r : {0.1, 0.5}) {
      nets.emplace_back(m, method, r, 32);
      nets.back()->eval();
    }
    devices.push_back({method, std::make_shared<MobileNetDevice>(nets)});
  }
  for (const auto& [name, device] : devices) {
    const bool mobilenet = name.rfind("mobilenet", 0) == 0;
    const torch::Tensor images = torch::randn({3, 1, mobilenet ? 32 : 28, mobilenet ? 32 : 28});
    for (double budget : {0.4, 1.0}) {
      DeviceStats together;
      const std::vector<Payload> payloads = device->encode_each_ratio(images, budget, {1, 0, 1}, &together);
      ASSERT_EQ(payloads.size(), 3u) << name;
      for (size_t j = 0; j < 3; ++j) {
        const int64_t r = j == 1 ? 0 : 1;
        DeviceStats alone;
        same(payloads[j], device->encode(images, Decision{budget, r}, &alone), name + " ratio index " + std::to_string(r));
        EXPECT_TRUE(torch::equal(together.kept_patches, alone.kept_patches)) << name;
      }
    }
    EXPECT_THROW(device->encode_each_ratio(images, 0.5, {0, 2}), UsageError) << name;
  }
}

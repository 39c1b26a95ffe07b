#include "tokcom/train/jscc_stage.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "tokcom/comm/channel.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/core/text.h"
#include "tokcom/core/version.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/link_eval.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/split/method.h"
#include "tokcom/split/proposal.h"
#include "tokcom/train/checkpoint.h"
#include "tokcom/train/distill.h"
#include "tokcom/train/distributed.h"
#include "tokcom/train/loop.h"
#include "tokcom/train/schedule.h"
#include "tokcom/train/train_data.h"

namespace tokcom {
namespace fs = std::filesystem;

// Checkpoint state records (keys = field names).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(JsccEpochRecord, regime, ratio, epoch, lr, loss, train_accuracy, images_per_s,
                                   val_accuracy)

namespace {

void write_epochs_csv(const std::string& path, const std::vector<JsccEpochRecord>& records) {
  std::vector<std::string> extra;
  for (double snr : jscc_eval_snrs()) extra.push_back(fmt::format("val_accuracy_snr{}", snr));
  csv::Writer out(jscc_epochs_schema(), extra);
  for (const auto& r : records) {
    out.text(r.regime).number(r.ratio).integer(r.epoch).number(r.lr, 6).fixed(r.loss, 6);
    out.fixed(r.train_accuracy, 6).fixed(r.images_per_s, 2);
    for (double a : r.val_accuracy) out.fixed(a, 6);
    out.end_row();
  }
  out.write(path);
}

// The config of one (regime, r): its digest addresses that pair's files, so training more ratios
// or the other regime into the same folder later reuses the finished ones.
Config pair_config(const Config& config, const std::string& regime, double ratio) {
  return Config::from_yaml(config.to_yaml(),
                           {fmt::format("train.ratios={}", ratio), "comm.train_regime=" + regime}, "train.stage=jscc");
}

struct WarmStart {
  int64_t steps = 0, batches = 0;
  double lr = 1e-3, clip = 0;
  const Channel* channel = nullptr;  // robust regime: its training channel; null = noiseless
  double snr_min = -20, snr_max = 20;
  BudgetSampling sampling = BudgetSampling::kStratified;
  double alpha_min = 0, alpha_max = 1;
  uint64_t seed = 0;
};

// train.jscc_warm_start_steps > 0: before the CE epochs, the codec alone learns to carry the
// device's output through the channel. Cold, the decoder hands the server blocks noise and CE must
// train codec and server from chance; at Imagenette-64 scale one epoch of 24 batches left every
// (regime, r) at chance (docs/comm.md "Warm start"). The rows of `batches` training batches (budgets
// drawn as in training) are computed once; each step fits a random draw of one batch's worth of them.
// Loss: the relative squared error Σ‖x̂ − x‖² / Σ‖x‖² of the step (scale-free: one lr serves tokens
// and feature maps). Returns (step, relative error) per step.
std::vector<std::pair<int64_t, double>> warm_start_codec(TrainablePair& pn, const ImageDataset& train_set,
                                                         const Loader& train_loader, torch::Device device,
                                                         const WarmStart& o, const std::string& tag) {
  pn.train_mode();
  LoaderOptions lopt = train_loader.options();
  lopt.seed ^= 0x5741524Dull;  // its own order; one process's batches on every rank (all ranks agree)
  lopt.shard_count = 1;
  lopt.shard_index = 0;
  Loader loader(train_set, train_loader.transform(), lopt);
  loader.start_epoch(0);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed ^ 0x5741524Dull);
  std::vector<torch::Tensor> parts;
  Batch batch;
  for (int64_t i = 0; i < o.batches && loader.next(batch); ++i) {
    torch::Tensor budget;
    if (pn.has_budget()) budget = sample_budgets(batch.images.size(0), gen, o.sampling, o.alpha_min, o.alpha_max).to(device);
    parts.push_back(pn.codec_rows(batch.images.to(device), budget));
  }
  if (parts.empty()) throw DataError(fmt::format("jscc {} warm start: the training split gave no batch", tag));
  const torch::Tensor rows = torch::cat(parts);
  const int64_t n = rows.size(0), per_step = std::max<int64_t>(n / static_cast<int64_t>(parts.size()), 1);
  torch::optim::Adam optimizer(pn.codec_parameters(), torch::optim::AdamOptions(o.lr));
  std::vector<std::pair<int64_t, double>> curve;
  Progress progress(fmt::format("jscc {} warm start ({} rows)", tag, n), o.steps, "step");
  for (int64_t step = 0; step < o.steps; ++step) {
    const torch::Tensor x = rows.index_select(0, torch::randint(n, {per_step}, gen, torch::kLong).to(device));
    Payload sent = pn.encode_rows(x);
    if (o.channel) {
      const torch::Tensor snr = (o.snr_max - (o.snr_max - o.snr_min) * torch::rand({per_step}, gen)).to(device);
      sent = o.channel->apply(sent, snr, gen).payload;
    }
    const torch::Tensor x_hat = pn.decode_rows(sent);
    const torch::Tensor loss = (x_hat - x).pow(2).sum() / x.pow(2).sum().clamp_min(1e-12);
    optimizer.zero_grad();
    loss.backward();
    if (o.clip > 0) torch::nn::utils::clip_grad_norm_(pn.codec_parameters(), o.clip);
    optimizer.step();
    curve.emplace_back(step + 1, loss.item<double>());
    progress.tick(1, fmt::format("relative error {:.4f}", curve.back().second));
  }
  progress.finish();
  if (!curve.empty()) {
    spdlog::info("jscc {} warm start: relative reconstruction error {:.4f} → {:.4f} over {} steps", tag,
                 curve.front().second, curve.back().second, curve.size());
  }
  return curve;
}

// The frozen device half's output per training batch (epoch, step in epoch), kept for the next pairs
// of the same train_jscc call. They all see the same batches (the loader's order and augmentations
// and the budget draws are seeded by run.seed, epoch and step, never by the pair) through the same
// frozen device half (train.init, eval mode), so a kept batch is bit for bit what the pair would
// compute: the bank's 2 × |ratios| pairs run the device half once per batch instead of once each.
// Bounded by TrainRunOptions::frozen_cache_mb (0 = off); past it, batches are computed as before. Kept
// where the step computed it (RAM, or the GPU's memory with train.device=cuda).
struct FrozenCache {
  int64_t limit_bytes = 0, bytes = 0, computed = 0, reused = 0;
  std::map<std::pair<int64_t, int64_t>, FrozenBatch> batches;
};

// Trains one (regime, r); *stopped = true when run.stop_after_epochs ended it early.
std::vector<JsccEpochRecord> train_pair(const Config& config, const TrainRunOptions& run, Distributed& dist,
                                        const std::string& regime, double ratio, FrozenCache& cache, bool* stopped) {
  const Config pair = pair_config(config, regime, ratio);
  const std::string out = config.get_string("train.out");
  const std::string file = jscc_file(out, regime, ratio);
  const std::string tag = fmt::format("{}-r{}", regime, ratio);
  const std::string digest = pair.digest();
  bool up_to_date = false, outdated = false;
  if (fs::exists(file)) {
    const Safetensors existing = read_safetensors(file);
    const auto it = existing.metadata.find("config_digest");
    up_to_date = it != existing.metadata.end() && it->second == digest;
    outdated = !up_to_date;
    if (outdated) spdlog::warn("jscc {}: {} was trained with another config; training it again", tag, file);
  }
  dist.expect_same(up_to_date ? 1.0 : 0.0, fmt::format("whether {} is up to date (train.out must be shared by the ranks)", file));
  if (up_to_date) {
    spdlog::info("jscc {}: {} is up to date (same config), skipped", tag, file);
    return {};
  }

  torch::Device device(config.get_string("train.device"));
  const std::string init = config.get_string("train.init");
  if (init.empty()) {
    throw ConfigError(
        "train.stage=jscc needs train.init: the adaptive model (proposal), the backbone (ViT-AE) or the MobileNet "
        "backbone (mobilenet-flat, mobilenet-cnn)");
  }
  // The codec's initial weights depend on (seed, regime, r) only, not on which pairs ran before.
  const uint64_t tag_hash = fnv1a(tag);
  torch::manual_seed(run.seed ^ tag_hash);
  // train.method names a MobileNet method; auto is the ViT's (proposal or ViT-AE by model.adaptive_blocks).
  const std::string train_method = config.get_string("train.method");
  const Method& kind = method_named(train_method == "auto" ? "proposal" : train_method, "train.method");
  if (!kind.make_pair) throw ConfigError("train.method: '" + train_method + "' has no bank to train");
  const std::unique_ptr<TrainablePair> trainable = kind.make_pair(config, init, train_method, ratio);
  TrainablePair& pn = *trainable;
  torch::nn::Module& net = pn.module();
  net.to(device);
  const std::string method = pn.method();
  const std::vector<torch::Tensor>& trained = pn.trained();

  const double lr = config.get_double("train.lr");
  const std::unique_ptr<torch::optim::Optimizer> optimizer =
      make_optimizer(config.get_string("train.optimizer"), {{trained, lr, config.get_double("train.weight_decay")}});

  TrainData data(config, run.seed, dist.world_size(), dist.rank());
  const ScheduleOptions sched = data.schedule(lr, 1.0);
  const ImageDataset& val_set = data.val_set;
  Loader& train_loader = *data.loader;
  const int64_t epochs = data.epochs, max_batches = data.max_batches;

  const bool robust = regime == "robust";
  const auto channel = make_channel(config.get_string("comm.channel"));
  const double snr_min = config.get_double("comm.train_snr_min"), snr_max = config.get_double("comm.train_snr_max");
  if (!(snr_min < snr_max)) {
    throw ConfigError(fmt::format("comm.train_snr_min ({}) must be below comm.train_snr_max ({})", snr_min, snr_max));
  }
  const BudgetSampling sampling = parse_budget_sampling(config.get_string("train.alpha_sampling"));
  const double alpha_min = config.get_double("train.alpha_min"), alpha_max = config.get_double("train.alpha_max");
  const double clip = config.get_double("train.grad_clip");
  const double smoothing = config.get_double("train.label_smoothing");

  SplitModel link = pn.link();  // validation through the real split pipeline
  // train.jscc_distill_kl: the clean model's logits as a second target (off = the paper's CE).
  const Teacher clean = make_clean_teacher(config, kind.kind == MethodKind::kMobileNet ? "mobilenet" : "vit", device);
  const auto awgn = make_channel("awgn");
  std::vector<LinkPoint> val_points;
  for (double snr : jscc_eval_snrs()) val_points.push_back({Decision{1.0, 0}, awgn.get(), snr, val_points.size()});

  EpochLoop loop = make_epoch_loop("jscc " + tag, *optimizer, trained, clip, data, device, dist, run.seed ^ tag_hash);
  loop.base_lr = {1.0};  // the schedule gives the lr itself
  loop.multiplier = [&sched](int64_t step) { return learning_rate(sched, step); };

  const std::string ck_dir = fmt::format("{}/checkpoint-{}", out, tag);
  // A model trained with another config left its checkpoint from that config: training it again starts
  // over (resuming it would mix the two configs; it is refused as such), and the new one replaces it.
  if (outdated && dist.is_main() && fs::exists(ck_dir)) {
    spdlog::info("jscc {}: {} is from that config too; starting over", tag, ck_dir);
    fs::remove_all(ck_dir);
  }
  dist.barrier();
  CheckpointState ck = resume_or_start(ck_dir, run.resume && !outdated, net, *optimizer, digest, "jscc " + tag);
  std::vector<JsccEpochRecord> records;
  for (const auto& r : ck.records) records.push_back(r.get<JsccEpochRecord>());
  const int64_t warm_steps = config.get_int("train.jscc_warm_start_steps");
  const int64_t warm_batches = config.get_int("train.jscc_warm_start_batches");
  if (warm_steps < 0 || warm_batches < 1) {
    throw ConfigError(fmt::format("train.jscc_warm_start_steps ({}) must be ≥ 0 and train.jscc_warm_start_batches ({}) "
                                  "≥ 1",
                                  warm_steps, warm_batches));
  }
  if (ck.epoch == 0 && warm_steps > 0) {  // a resumed pair has its warm start in its weights
    WarmStart ws;
    ws.steps = warm_steps;
    ws.batches = warm_batches;
    ws.lr = lr;
    ws.clip = clip;
    ws.channel = robust ? channel.get() : nullptr;
    ws.snr_min = snr_min;
    ws.snr_max = snr_max;
    ws.sampling = sampling;
    ws.alpha_min = alpha_min;
    ws.alpha_max = alpha_max;
    ws.seed = run.seed ^ tag_hash;
    const auto curve = warm_start_codec(pn, data.train_set, train_loader, device, ws, tag);
    if (dist.is_main()) {
      csv::Writer text(csv::schema("a warm-start curve (tokcom train, stage jscc)", "step,relative_error"));
      for (const auto& [step, err] : curve) text.integer(step).fixed(err, 6).end_row();
      text.write(fmt::format("{}/warm-start-{}.csv", out, tag));
    }
  }
  sync_ranks(dist, net, ck.epoch, run.seed ^ tag_hash);  // rank 0's weights everywhere; each rank its own dropout
  const std::string csv_path = fmt::format("{}/epochs-{}.csv", out, tag);
  // One step: budgets and SNRs drawn for the global batch (ranks together use the single-process
  // draws; the channel noise of rank k > 0 comes from its own generator), send, channel, receive, CE.
  const TrainStep step = [&](const StepInput& in) {
    const uint64_t step_seed = batch_seed(run.seed ^ 0x75CCull, in.epoch, in.step_in_epoch);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(step_seed);
    torch::Tensor budget;
    if (pn.has_budget()) {
      budget = sample_budgets(in.part.global, gen, sampling, alpha_min, alpha_max)
                   .slice(0, in.part.begin, in.part.end)
                   .to(device);
    }
    const auto key = std::make_pair(in.epoch, in.step_in_epoch);
    const auto kept = cache.batches.find(key);
    FrozenBatch frozen;
    if (kept != cache.batches.end()) {
      frozen = kept->second;
      ++cache.reused;
    } else {
      frozen = pn.frozen(in.images, budget);
      ++cache.computed;
      const int64_t bytes = frozen.bytes();
      if (cache.bytes + bytes <= cache.limit_bytes) {
        cache.batches.emplace(key, frozen);
        cache.bytes += bytes;
      }
    }
    Payload sent = pn.encode(frozen);
    Payload received = sent;
    if (robust) {  // SNR ~ U(min, max] dB per sample per step (METHOD §5.3)
      const torch::Tensor snr =
          (snr_max - (snr_max - snr_min) * torch::rand({in.part.global}, gen).slice(0, in.part.begin, in.part.end))
              .to(device);
      at::Generator noise =
          dist.rank() == 0 ? gen : at::make_generator<at::CPUGeneratorImpl>(rank_seed(step_seed, dist.rank()));
      received = channel->apply(sent, snr, noise).payload;
    }
    const torch::Tensor logits = pn.receive(received);
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, in.labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing));
    if (clean.active()) loss = loss + clean.kl * distillation_kl(logits, clean.forward(in.images).logits, clean.temperature);
    return StepOutput{loss, logits, {}};
  };

  for (int64_t epoch = ck.epoch; epoch < epochs; ++epoch) {
    pn.train_mode();
    const EpochMetrics m = loop.run(epoch, step);
    JsccEpochRecord rec;
    rec.regime = regime;
    rec.ratio = ratio;
    rec.epoch = epoch + 1;
    rec.lr = m.lr;
    rec.loss = m.loss;
    rec.train_accuracy = m.train_accuracy;
    rec.images_per_s = m.images_per_s;
    net.eval();
    LinkEvalOptions lo;
    lo.batch_size = config.get_int("train.eval_batch_size");
    lo.max_batches = max_batches;
    lo.seed = run.seed;
    lo.device = device;
    if (!dist.active()) {
      for (const auto& r : evaluate_link(link, val_points, val_set, config, lo)) rec.val_accuracy.push_back(r.accuracy());
    } else {  // each rank 1/N of the same images (its own noise draws); correct counts summed
      const ImageDataset part =
          shard_rows(val_set, max_batches > 0 ? max_batches * lo.batch_size : 0, dist.world_size(), dist.rank());
      lo.max_batches = 0;
      lo.seed = rank_seed(run.seed, dist.rank());
      std::vector<double> sums(2 * val_points.size(), 0.0);
      if (part.size() > 0) {
        const auto results = evaluate_link(link, val_points, part, config, lo);
        for (size_t i = 0; i < results.size(); ++i) {
          sums[2 * i] = static_cast<double>(results[i].correct);
          sums[2 * i + 1] = static_cast<double>(results[i].n_images);
        }
      }
      sums = dist.allreduce_sum(sums);
      for (size_t i = 0; i < val_points.size(); ++i) rec.val_accuracy.push_back(sums[2 * i] / std::max(sums[2 * i + 1], 1.0));
    }
    std::string summary = fmt::format("jscc {} epoch {}: loss {:.4f} train acc {:.4f} ({:.0f} img/s) | val acc", tag,
                                      rec.epoch, rec.loss, rec.train_accuracy, rec.images_per_s);
    for (size_t i = 0; i < rec.val_accuracy.size(); ++i)
      summary += fmt::format(" {:.3f}@{}dB", rec.val_accuracy[i], jscc_eval_snrs()[i]);
    if (dist.is_main()) spdlog::info("{}", summary);
    records.push_back(rec);
    if (finish_epoch(epoch, epochs, rec, ck, ck_dir, net, *optimizer, digest, dist, run,
                     [&] { write_epochs_csv(csv_path, records); })) {
      *stopped = true;
      return records;
    }
  }
  if (dist.is_main()) {
    write_epochs_csv(csv_path, records);
    save_module(file, net,
                {{"stage", "jscc"}, {"method", method}, {"regime", regime}, {"ratio", fmt::format("{}", ratio)},
                 {"config_digest", digest}, {"git", tokcom::git_hash()}});
    spdlog::info("jscc {}: wrote {}", tag, file);
  }
  dist.barrier();  // every rank sees the finished file before deciding on the next pair
  return records;
}

}  // namespace

const csv::Schema& jscc_epochs_schema() {
  static const csv::Schema s = csv::schema("an epochs-<tag>.csv written by `tokcom train` (stage jscc)",
                                           "regime,ratio,epoch,lr,loss,train_accuracy,images_per_s", {"regime"}, {},
                                           /*open=*/true);
  return s;
}

std::vector<double> jscc_eval_snrs() { return {0.0, 10.0, 20.0}; }

std::vector<double> jscc_ratios(const Config& config) {
  const std::vector<double> bank = config.get_doubles("comm.ratios");
  const std::string spec = config.get_string("train.ratios");
  if (spec == "all") return bank;
  std::vector<double> out;
  for (const std::string& item : split_list(spec)) {
    const std::optional<double> parsed = parse_double(item);
    if (!parsed) {
      throw ConfigError(fmt::format("train.ratios: '{}' is not a number (expected all or a list like 0.1,0.5)", item));
    }
    const double r = *parsed;
    bool found = false;
    for (double b : bank) found = found || std::abs(b - r) < 1e-12;
    if (!found) {
      throw ConfigError(fmt::format("train.ratios: {} is not in comm.ratios [{}]", r, fmt::join(bank, ", ")));
    }
    out.push_back(r);
  }
  if (out.empty()) throw ConfigError("train.ratios: empty (expected all or a list like 0.1,0.5)");
  return out;
}

std::vector<std::string> jscc_regimes(const Config& config) {
  const std::string r = config.get_string("comm.train_regime");
  if (r == "robust" || r == "noiseless") return {r};
  if (r == "both") return {"robust", "noiseless"};
  throw ConfigError("comm.train_regime: '" + r + "', expected robust, noiseless or both");
}

std::vector<JsccEpochRecord> train_jscc(const Config& config, const TrainRunOptions& run) {
  check_training_ranges(config);
  // train.method: auto (the ViT's token methods, proposal or vit-ae by model.adaptive_blocks) or another
  // registered method whose bank the JSCC stage trains.
  const std::string method = config.get_string("train.method");
  const Method* m = find_method(method);
  if (method != "auto" && (!m || !m->make_pair || m->kind == MethodKind::kTokens)) {
    throw ConfigError("train.method: '" + method + "', expected auto (proposal or vit-ae, by model.adaptive_blocks) or " +
                      method_names([](const Method& x) { return x.make_pair != nullptr && x.kind != MethodKind::kTokens; }));
  }
  const std::vector<double> ratios = jscc_ratios(config);
  const std::vector<std::string> regimes = jscc_regimes(config);
  const std::string out = config.get_string("train.out");
  Distributed one_process;
  Distributed& dist = run.distributed ? *run.distributed : one_process;
  if (dist.is_main()) {
    fs::create_directories(out);
    config.save(out + "/config.yaml");
  }
  dist.barrier();
  if (run.frozen_cache_mb < 0) {
    throw UsageError(fmt::format("--frozen-cache-mb: {}, expected ≥ 0 (0 = off)", run.frozen_cache_mb));
  }
  FrozenCache cache;
  cache.limit_bytes = std::min<int64_t>(run.frozen_cache_mb, std::numeric_limits<int64_t>::max() >> 20) << 20;
  std::vector<JsccEpochRecord> all;
  const auto report = [&] {
    if (run.frozen_batches_reused) *run.frozen_batches_reused = cache.reused;
    if (cache.reused > 0 || cache.computed > 0) {
      spdlog::info("jscc: the frozen device half ran on {} training batches and {} were reused ({:.0f} MB kept)",
                   cache.computed, cache.reused, static_cast<double>(cache.bytes) / (1 << 20));
    }
  };
  for (const auto& regime : regimes) {
    for (double r : ratios) {
      bool stopped = false;
      auto records = train_pair(config, run, dist, regime, r, cache, &stopped);
      all.insert(all.end(), records.begin(), records.end());
      if (stopped) {
        report();
        return all;
      }
    }
  }
  report();
  return all;
}

}  // namespace tokcom

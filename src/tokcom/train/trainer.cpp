#include "tokcom/train/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <torch/torch.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/precision.h"
#include "tokcom/core/progress.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/core/version.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/evaluate.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/model/vit.h"
#include "tokcom/train/checkpoint.h"
#include "tokcom/train/distributed.h"
#include "tokcom/train/hard_count.h"
#include "tokcom/train/jscc_stage.h"
#include "tokcom/train/schedule.h"
#include "tokcom/train/train_data.h"

namespace tokcom {
namespace fs = std::filesystem;

// Checkpoint state records (keys = field names, as written by earlier versions).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EpochRecord, epoch, lr, loss, ce, budget, train_accuracy, images_per_s, val_accuracy,
                                   kept_fraction, val_accuracy_alpha)
namespace {

// Selection parameters (METHOD §3): budget tokens and the gate/threshold heads. They get their own lr
// and no weight decay.
bool is_selection_param(const std::string& name) {
  return name.find("budget_token") != std::string::npos || name.find(".gate.") != std::string::npos ||
         name.find(".threshold.") != std::string::npos;
}
bool decays(const std::string& name, const torch::Tensor& p) {
  if (p.dim() <= 1) return false;  // biases, norms
  return name.find("pos_embed") == std::string::npos && name.find("cls_token") == std::string::npos &&
         !is_selection_param(name);
}


csv::Writer epochs_writer(const std::vector<double>& alphas) {
  std::vector<std::string> extra;
  for (double a : alphas) {
    extra.push_back(fmt::format("accuracy_hard_a{}", a));
    extra.push_back(fmt::format("kept_fraction_a{}", a));
  }
  return csv::Writer(epochs_schema(), extra);
}
void add_epoch_row(csv::Writer& out, const EpochRecord& r) {
  out.integer(r.epoch).number(r.lr, 6).fixed(r.loss, 6).fixed(r.ce, 6).fixed(r.budget, 6);
  out.fixed(r.train_accuracy, 6).fixed(r.val_accuracy, 6).fixed(r.images_per_s, 2);
  for (size_t i = 0; i < r.kept_fraction.size(); ++i) out.fixed(r.val_accuracy_alpha[i], 6).fixed(r.kept_fraction[i], 6);
  out.end_row();
}

// Per-epoch validation: one process evaluates the split (its first max_batches); N ranks evaluate
// 1/N of the same images each and sum accuracy and kept fraction weighted by their image counts.
using EvaluateFn = std::function<std::vector<EvalRow>(const ImageDataset&, const EvalOptions&)>;
std::vector<EvalRow> evaluate_distributed(const EvaluateFn& evaluate_split, const ImageDataset& data, EvalOptions options,
                                          Distributed& dist) {
  if (!dist.active()) return evaluate_split(data, options);
  const int64_t limit = options.max_batches > 0 ? options.max_batches * options.batch_size : 0;
  const ImageDataset part = shard_rows(data, limit, dist.world_size(), dist.rank());
  options.max_batches = 0;
  std::vector<EvalRow> rows;
  if (part.size() > 0) rows = evaluate_split(part, options);
  rows.resize(options.alphas.size());
  std::vector<double> sums;  // per α: Σ accuracy·n, Σ kept_fraction·n; then n
  for (const auto& r : rows) {
    sums.push_back(r.accuracy * static_cast<double>(part.size()));
    sums.push_back(r.kept_fraction * static_cast<double>(part.size()));
  }
  sums.push_back(static_cast<double>(part.size()));
  sums = dist.allreduce_sum(sums);
  const double n = std::max(sums.back(), 1.0);
  for (size_t i = 0; i < rows.size(); ++i) {
    rows[i].alpha = options.alphas[i];
    rows[i].accuracy = sums[2 * i] / n;
    rows[i].kept_fraction = sums[2 * i + 1] / n;
    rows[i].n_images = static_cast<int64_t>(sums.back());
  }
  return rows;
}

}  // namespace

const csv::Schema& epochs_schema() {
  static const csv::Schema s =
      csv::schema("an epochs.csv written by `tokcom train`",
                  "epoch,lr,loss,ce,budget_loss,train_accuracy,val_accuracy,images_per_s", {}, {}, /*open=*/true);
  return s;
}

std::vector<EpochRecord> train(const Config& config, const TrainRunOptions& run) {
  const std::string stage = config.get_string("train.stage");
  if (stage == "jscc") {
    train_jscc(config, run);  // checks the ranges itself; records in <train.out>/epochs-<regime>-r<r>.csv
    return {};
  }
  check_training_ranges(config);
  if (stage != "backbone" && stage != "adaptive") {
    throw ConfigError("train.stage: '" + stage + "' is not a stage this command trains (expected backbone, adaptive or jscc)");
  }
  const bool adaptive = stage == "adaptive";
  Distributed one_process;
  Distributed& dist = run.distributed ? *run.distributed : one_process;
  const std::string out = config.get_string("train.out");
  if (dist.is_main()) {  // only rank 0 writes files
    fs::create_directories(out);
    config.save(out + "/config.yaml");
  }

  torch::Device device(config.get_string("train.device"));
  torch::manual_seed(run.seed);  // the initial weights depend on the seed alone, not on earlier draws
  // train.model: the ViT (backbone and adaptive stages) or MobileNetV3 (backbone stage, METHOD §6.2).
  const std::string arch = config.get_string("train.model");
  if (arch != "vit" && arch != "mobilenet") throw ConfigError("train.model: '" + arch + "', expected vit or mobilenet");
  if (arch == "mobilenet" && adaptive) {
    throw ConfigError("train.stage=adaptive trains the ViT's token selection; train.model=mobilenet has none");
  }
  Vit model{nullptr};
  MobileNetV3 mobilenet{nullptr};
  if (arch == "mobilenet") mobilenet = make_mobilenet(config);
  else model = make_vit(config);
  torch::nn::Module& module = model ? static_cast<torch::nn::Module&>(*model) : *mobilenet;
  if (adaptive && model->options.adaptive_blocks().empty()) {
    throw ConfigError("train.stage=adaptive needs model.adaptive_blocks (e.g. [1, 2])");
  }
  const std::string init = config.get_string("train.init");
  if (!init.empty()) {
    const LoadReport report = load_module(init, module, /*strict=*/false);
    spdlog::info("init from {}: {} tensors missing (fresh), {} unexpected (ignored)", init, report.missing.size(),
                 report.unexpected.size());
    for (const auto& m : report.missing) spdlog::debug("  fresh: {}", m);
  }
  module.to(device);
  const auto forward = [&](const torch::Tensor& images, const torch::Tensor& budget) {
    return model ? model->forward(images, budget, SelectionMode::kSoft) : VitOutput{mobilenet->forward(images), {}};
  };
  const auto evaluate_split = [&](const ImageDataset& data, const EvalOptions& options) {
    return model ? evaluate(model, data, config, options) : evaluate(mobilenet, data, config, options);
  };

  // Parameter groups: decayed weights, non-decayed, selection parameters (own lr).
  const double lr = config.get_double("train.lr"), selection_lr = config.get_double("train.selection_lr");
  const double wd = config.get_double("train.weight_decay");
  std::vector<torch::Tensor> decay, no_decay, selection;
  for (const auto& item : module.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    if (is_selection_param(item.key())) selection.push_back(item.value());
    else if (decays(item.key(), item.value())) decay.push_back(item.value());
    else no_decay.push_back(item.value());
  }
  std::vector<double> base_lr;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  const std::string optimizer_name = config.get_string("train.optimizer");
  auto make_group = [&](std::vector<torch::Tensor> params, double group_lr, double group_wd) {
    if (params.empty()) return;
    base_lr.push_back(group_lr);
    if (optimizer_name == "adamw") {
      groups.emplace_back(std::move(params), std::make_unique<torch::optim::AdamWOptions>(
                                                 torch::optim::AdamWOptions(group_lr).weight_decay(group_wd)));
    } else {
      groups.emplace_back(std::move(params), std::make_unique<torch::optim::AdamOptions>(
                                                 torch::optim::AdamOptions(group_lr).weight_decay(0.0)));
    }
  };
  make_group(decay, lr, wd);
  make_group(no_decay, lr, 0.0);
  make_group(selection, selection_lr, 0.0);
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (optimizer_name == "adamw") {
    optimizer = std::make_unique<torch::optim::AdamW>(std::move(groups), torch::optim::AdamWOptions(lr));
  } else if (optimizer_name == "adam") {
    optimizer = std::make_unique<torch::optim::Adam>(std::move(groups), torch::optim::AdamOptions(lr));
  } else {
    throw ConfigError("train.optimizer: unknown optimizer '" + optimizer_name + "', expected adam or adamw");
  }
  std::vector<torch::Tensor> trained;  // clipping covers trained parameters only (METHOD §10 P10)
  for (auto* g : {&decay, &no_decay, &selection}) trained.insert(trained.end(), g->begin(), g->end());

  // Data and schedule (a multiplier on each group's base lr).
  TrainData data(config, run.seed, dist.world_size(), dist.rank());
  const ScheduleOptions sched = data.schedule(1.0, lr);
  const ImageDataset& val_set = data.val_set;
  Loader& train_loader = *data.loader;
  const LoaderOptions& train_opts = data.loader_options;
  const int64_t batches = data.batches, epochs = data.epochs, max_batches = data.max_batches;

  const InnerLoss inner_loss = parse_inner_loss(config.get_string("train.inner_loss"));
  const BudgetSampling sampling = parse_budget_sampling(config.get_string("train.alpha_sampling"));
  const double margin = config.get_double("train.margin");
  const double lambda_out = config.get_double("train.lambda_out"), lambda_in = config.get_double("train.lambda_in");
  const double alpha_min = config.get_double("train.alpha_min"), alpha_max = config.get_double("train.alpha_max");
  const std::string budget_loss_kind = config.get_string("train.budget_loss");
  if (budget_loss_kind != "hard" && budget_loss_kind != "reference") {
    throw ConfigError("train.budget_loss: '" + budget_loss_kind + "', expected hard or reference");
  }
  const double lambda_hard = config.get_double("train.lambda_hard");
  const double hard_temperature = config.get_double("train.hard_temperature");
  const HardSurrogate hard_surrogate = parse_hard_surrogate(config.get_string("train.hard_surrogate"));
  const int64_t hard_warmup_steps = config.get_int("train.lambda_hard_warmup_epochs") * batches;
  const double cutoff = model ? model->options.eval_cutoff() : 0.0;
  const double clip = config.get_double("train.grad_clip");
  const double smoothing = config.get_double("train.label_smoothing");
  const Precision precision = parse_precision(config.get_string("train.precision"), "train.precision");
  const std::vector<double> eval_alphas = adaptive ? config.get_doubles("train.eval_alphas") : std::vector<double>{};

  CheckpointState ck;
  std::vector<EpochRecord> records;
  const std::string ck_dir = out + "/checkpoint";
  if (run.resume && load_checkpoint(ck_dir, &ck, module, *optimizer, config.digest())) {
    for (const auto& r : ck.records) records.push_back(r.get<EpochRecord>());
    spdlog::info("resumed from {} after epoch {}", ck_dir, ck.epoch);
  } else if (!run.resume && fs::exists(ck_dir + "/state.json")) {
    spdlog::warn("{} holds a checkpoint; starting over (use --resume to continue it)", ck_dir);
  }
  if (dist.active()) {
    dist.expect_same(static_cast<double>(ck.epoch), "the epoch to resume from (train.out must be shared by the ranks)");
    // Every rank starts from rank 0's weights (the same seed gives the same ones; this makes it certain),
    // then draws its own dropout (rank 0 keeps the single-process stream).
    std::vector<torch::Tensor> state;
    for (const auto& p : module.parameters()) state.push_back(p);
    for (const auto& b : module.buffers()) state.push_back(b);
    dist.broadcast(state);
    torch::manual_seed(rank_seed(run.seed, dist.rank()));
  }

  csv::Writer csv = epochs_writer(eval_alphas);
  for (const auto& r : records) add_epoch_row(csv, r);
  for (int64_t epoch = ck.epoch; epoch < epochs; ++epoch) {
    module.train();  // every epoch (METHOD §10 P9: evaluation leaves the model in eval mode)
    EpochRecord rec;
    rec.epoch = epoch + 1;
    double loss_sum = 0, ce_sum = 0, budget_sum = 0;
    int64_t correct = 0, seen = 0;
    const std::string rank_tag = dist.active() ? fmt::format(" [rank {}/{}]", dist.rank(), dist.world_size()) : "";
    Progress progress(fmt::format("{} epoch {}/{}{}", stage, epoch + 1, epochs, rank_tag),
                      batches * train_opts.batch_size / dist.world_size(), "img");
    int64_t step_in_epoch = 0;
    Batch batch;
    train_loader.start_epoch(epoch);
    for (; step_in_epoch < batches && train_loader.next(batch); ++step_in_epoch) {
      const int64_t step = epoch * batches + step_in_epoch;
      const double mult = learning_rate(sched, step);
      for (size_t g = 0; g < optimizer->param_groups().size(); ++g) {
        auto& opts = optimizer->param_groups()[g].options();
        opts.set_lr(base_lr[g] * mult);
      }
      rec.lr = lr * mult;
      const torch::Tensor images = batch.images.to(device), labels = batch.labels.to(device);
      // This rank's rows of the global batch (all of it in one process); an empty shard (last batch
      // smaller than the world) only joins the gradient sum.
      const Loader::Shard part = train_loader.shard(step_in_epoch);
      const int64_t b = images.size(0);
      optimizer->zero_grad();
      if (b == 0) {
        dist.step(trained, 0.0, clip, *optimizer);
        continue;
      }
      torch::Tensor budget;
      if (adaptive) {  // drawn for the global batch, so ranks together use the single-process budgets
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(batch_seed(run.seed ^ 0xB0D9E7ull, epoch, step_in_epoch));
        budget = sample_budgets(part.global, gen, sampling, alpha_min, alpha_max)
                     .slice(0, part.begin, part.end)
                     .to(device);
      }
      VitOutput output;
      {
        const AutocastScope autocast(precision, device);  // the model's own scopes are fp32 in training
        output = forward(images, budget);
      }
      const torch::Tensor logits = output.logits.to(torch::kFloat);
      torch::Tensor ce = torch::nn::functional::cross_entropy(
          logits, labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing));
      torch::Tensor loss = ce;
      torch::Tensor budget_term = torch::zeros({}, logits.options());
      if (adaptive) {
        const BudgetLoss bl = budget_loss(output.stats, budget, inner_loss, margin);
        budget_term = lambda_out * bl.out + lambda_in * bl.inner;
        if (budget_loss_kind == "hard") {
          // METHOD §10 P26: straight-through hard count per adaptive block (train/hard_count.h).
          const std::vector<torch::Tensor> margins = cumulative_margins(output.stats);
          torch::Tensor hard = torch::zeros({}, logits.options());
          for (size_t l = 0; l < output.stats.size(); ++l)
            hard = hard + hard_budget_penalty(output.stats[l].patch_mask, margins[l], budget, margin, cutoff,
                                              hard_temperature, hard_surrogate).mean();
          budget_term = budget_term + lambda_hard_at(lambda_hard, step, hard_warmup_steps) * hard /
                                          static_cast<double>(output.stats.size());
        }
        loss = loss + budget_term;
      }
      loss.backward();
      // Mean over the global batch: each rank's mean gradient weighted by its share, summed over ranks
      // (no-op in one process), before clipping so every rank clips the same gradient.
      dist.step(trained, static_cast<double>(b) / static_cast<double>(part.global), clip, *optimizer);

      loss_sum += loss.item<double>() * b;
      ce_sum += ce.item<double>() * b;
      budget_sum += budget_term.item<double>() * b;
      correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
      seen += b;
      progress.tick(b, fmt::format("loss {:.3f}", loss_sum / seen));
    }
    progress.finish();
    rec.images_per_s = progress.rate();
    if (dist.active()) {  // epoch metrics over every rank's shard; throughput = Σ rank rates
      const std::vector<double> sums = dist.allreduce_sum(
          {loss_sum, ce_sum, budget_sum, static_cast<double>(correct), static_cast<double>(seen), rec.images_per_s});
      loss_sum = sums[0];
      ce_sum = sums[1];
      budget_sum = sums[2];
      correct = static_cast<int64_t>(std::llround(sums[3]));
      seen = static_cast<int64_t>(std::llround(sums[4]));
      rec.images_per_s = sums[5];
    }
    rec.loss = loss_sum / std::max<int64_t>(seen, 1);
    rec.ce = ce_sum / std::max<int64_t>(seen, 1);
    rec.budget = budget_sum / std::max<int64_t>(seen, 1);
    rec.train_accuracy = static_cast<double>(correct) / std::max<int64_t>(seen, 1);

    // Per-epoch evaluation is logging only (METHOD §7); the last epoch's weights are kept.
    EvalOptions eval_opts;
    eval_opts.batch_size = config.get_int("train.eval_batch_size");
    eval_opts.device = device;
    eval_opts.max_batches = max_batches;
    eval_opts.mode = SelectionMode::kHard;
    eval_opts.alphas = {1.0};
    rec.val_accuracy = evaluate_distributed(evaluate_split, val_set, eval_opts, dist).at(0).accuracy;
    if (adaptive) {
      eval_opts.alphas = eval_alphas;
      for (const auto& row : evaluate_distributed(evaluate_split, val_set, eval_opts, dist)) {
        rec.val_accuracy_alpha.push_back(row.accuracy);
        rec.kept_fraction.push_back(row.kept_fraction);
      }
    }
    std::string summary = fmt::format("epoch {}: loss {:.4f} train acc {:.4f} val acc {:.4f} ({:.0f} img/s)", rec.epoch,
                                      rec.loss, rec.train_accuracy, rec.val_accuracy, rec.images_per_s);
    for (size_t i = 0; i < eval_alphas.size(); ++i)
      summary += fmt::format(" | α={} acc {:.3f} kept {:.3f}", eval_alphas[i], rec.val_accuracy_alpha[i], rec.kept_fraction[i]);
    if (dist.is_main()) spdlog::info("{}", summary);

    records.push_back(rec);
    ck.records.push_back(rec);
    ck.epoch = epoch + 1;
    add_epoch_row(csv, rec);
    if (dist.is_main()) {
      csv.write(out + "/epochs.csv");
      save_checkpoint(ck_dir, ck, module, *optimizer, config.digest());
    }
    if (run.stop_after_epochs > 0 && epoch + 1 >= run.stop_after_epochs && epoch + 1 < epochs) {
      spdlog::info("stopping after epoch {} as asked", epoch + 1);
      return records;
    }
  }
  if (dist.is_main()) {
    csv.write(out + "/epochs.csv");
    save_module(out + "/model.safetensors", module,
                {{"stage", stage}, {"model", arch}, {"config_digest", config.digest()}, {"git", TOKCOM_GIT_HASH}});
    spdlog::info("wrote {}/model.safetensors and {}/epochs.csv", out, out);
  }
  dist.barrier();  // on return the files exist for every rank
  return records;
}

}  // namespace tokcom

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
#include "tokcom/core/state_dict.h"
#include "tokcom/core/version.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/evaluate.h"
#include "tokcom/model/budget_loss.h"
#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/model/vit.h"
#include "tokcom/model/weights_io.h"
#include "tokcom/train/distill.h"
#include "tokcom/train/distributed.h"
#include "tokcom/train/hard_count.h"
#include "tokcom/train/jscc_stage.h"
#include "tokcom/train/loop.h"
#include "tokcom/train/mixup.h"
#include "tokcom/train/schedule.h"
#include "tokcom/train/train_data.h"

namespace tokcom {
namespace fs = std::filesystem;

// Checkpoint state records (keys = field names, as written by earlier versions).
// (distill was added later: absent in an older checkpoint = 0.)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EpochRecord, epoch, lr, loss, ce, budget, train_accuracy, images_per_s,
                                                val_accuracy, kept_fraction, val_accuracy_alpha, distill)
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


csv::Writer epochs_writer(const std::vector<double>& alphas, bool distill) {
  std::vector<std::string> extra;
  if (distill) extra.push_back("distill_loss");
  for (double a : alphas) {
    extra.push_back(fmt::format("accuracy_hard_a{}", a));
    extra.push_back(fmt::format("kept_fraction_a{}", a));
  }
  return csv::Writer(epochs_schema(), extra);
}
void add_epoch_row(csv::Writer& out, const EpochRecord& r, bool distill) {
  out.integer(r.epoch).number(r.lr, 6).fixed(r.loss, 6).fixed(r.ce, 6).fixed(r.budget, 6);
  out.fixed(r.train_accuracy, 6).fixed(r.val_accuracy, 6).fixed(r.images_per_s, 2);
  if (distill) out.fixed(r.distill, 6);
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
    // A ViT checkpoint of another image size (same patch size) starts this one with its position
    // embeddings resampled to this grid (progressive resizing; docs/model.md "Other image sizes").
    TensorMap tensors = read_safetensors(init).tensors;
    if (model) fit_pos_embed(tensors, model, init);
    const LoadReport report = load_tensors(module, tensors, init, /*strict=*/false);
    spdlog::info("init from {}: {} tensors missing (fresh), {} unexpected (ignored)", init, report.missing.size(),
                 report.unexpected.size());
    for (const auto& m : report.missing) spdlog::debug("  fresh: {}", m);
  }
  // The folder's config is written once the model it describes was built and its init loaded: a
  // config no model can be made of, or a bad init, leaves train.out as it was.
  if (dist.is_main()) {  // only rank 0 writes files
    fs::create_directories(out);
    config.save(out + "/config.yaml");
  }
  module.to(device);
  // The student's forward; for the ViT also its final tokens and their cumulative mask (token distillation).
  struct Forward {
    VitOutput out;
    TokenState tokens;
  };
  const auto forward = [&](const torch::Tensor& images, const torch::Tensor& budget) {
    Forward f;
    if (!model) {
      f.out.logits = mobilenet->forward(images);
      return f;
    }
    f.tokens = model->forward_blocks(model->embed(images, budget), 0, model->options.depth(), SelectionMode::kSoft,
                                     &f.out.stats);
    f.out.logits = model->forward_head(f.tokens);
    return f;
  };
  const Teacher teacher = make_teacher(config, stage, arch, device);
  const bool distilling = teacher.active();
  const MixOptions mix = mix_options_from_config(config);
  const int64_t num_classes = model ? model->options.num_classes() : mobilenet->options.num_classes();
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
  const std::unique_ptr<torch::optim::Optimizer> optimizer = make_optimizer(
      config.get_string("train.optimizer"), {{decay, lr, wd}, {no_decay, lr, 0.0}, {selection, selection_lr, 0.0}});
  std::vector<torch::Tensor> trained;  // clipping covers trained parameters only (METHOD §10 P10)
  for (auto* g : {&decay, &no_decay, &selection}) trained.insert(trained.end(), g->begin(), g->end());

  // Data and schedule (a multiplier on each group's base lr).
  TrainData data(config, run.seed, dist.world_size(), dist.rank());
  const ScheduleOptions sched = data.schedule(1.0, lr);
  const ImageDataset& val_set = data.val_set;
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

  EpochLoop loop = make_epoch_loop(stage, *optimizer, trained, clip, data, device, dist, run.seed);
  for (const auto& group : optimizer->param_groups()) loop.base_lr.push_back(group.options().get_lr());  // before a resume
  loop.multiplier = [&sched](int64_t step) { return learning_rate(sched, step); };
  loop.report_lr = lr;
  loop.extra = 3;  // CE, budget term, distillation term

  const std::string ck_dir = out + "/checkpoint";
  CheckpointState ck = resume_or_start(ck_dir, run.resume, module, *optimizer, config.digest(), stage);
  std::vector<EpochRecord> records;
  for (const auto& r : ck.records) records.push_back(r.get<EpochRecord>());
  sync_ranks(dist, module, ck.epoch, run.seed);

  csv::Writer csv = epochs_writer(eval_alphas, distilling);
  for (const auto& r : records) add_epoch_row(csv, r, distilling);
  // One step: the budgets (adaptive stage), the forward pass, CE + the budget terms.
  const TrainStep step = [&](const StepInput& in) {
    torch::Tensor budget;
    if (adaptive) {  // drawn for the global batch, so ranks together use the single-process budgets
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(batch_seed(run.seed ^ 0xB0D9E7ull, in.epoch, in.step_in_epoch));
      budget = sample_budgets(in.part.global, gen, sampling, alpha_min, alpha_max)
                   .slice(0, in.part.begin, in.part.end)
                   .to(device);
    }
    // Mixup / CutMix (train/mixup.h): one λ per global step, the same on every rank.
    torch::Tensor images = in.images, targets;
    if (mix.enabled()) {
      MixedBatch mixed = mix_batch(in.images, in.labels, num_classes, smoothing, mix,
                                   batch_seed(run.seed ^ 0x313Bull, in.epoch, in.step_in_epoch));
      images = mixed.images;
      targets = mixed.targets;
    }
    Forward f;
    {
      const AutocastScope autocast(precision, device);  // the model's own scopes are fp32 in training
      f = forward(images, budget);
    }
    VitOutput& output = f.out;
    const torch::Tensor logits = output.logits.to(torch::kFloat);
    torch::Tensor ce = targets.defined() ? soft_cross_entropy(logits, targets)
                                         : torch::nn::functional::cross_entropy(
                                               logits, in.labels,
                                               torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(smoothing));
    torch::Tensor loss = ce;
    torch::Tensor distill_term = torch::zeros({}, logits.options());
    if (distilling) {
      const TeacherOutput t = teacher.forward(images);
      if (teacher.hard > 0.0) {  // DeiT's hard-label distillation: the teacher's decision as a second label
        const torch::Tensor hard_ce = torch::nn::functional::cross_entropy(logits, t.logits.argmax(1));
        loss = (1.0 - teacher.hard) * ce;
        distill_term = distill_term + teacher.hard * hard_ce;
      }
      if (teacher.kl > 0.0) distill_term = distill_term + teacher.kl * distillation_kl(logits, t.logits, teacher.temperature);
      if (teacher.tokens > 0.0) {
        Vit teacher_vit = teacher.vit;
        distill_term = distill_term + teacher.tokens * token_distillation(model, f.tokens, teacher_vit, t.tokens);
      }
      loss = loss + distill_term;
    }
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
        budget_term = budget_term + lambda_hard_at(lambda_hard, in.step, hard_warmup_steps) * hard /
                                        static_cast<double>(output.stats.size());
      }
      loss = loss + budget_term;
    }
    return StepOutput{loss, logits, {ce, budget_term, distill_term}};
  };

  for (int64_t epoch = ck.epoch; epoch < epochs; ++epoch) {
    module.train();  // every epoch (METHOD §10 P9: evaluation leaves the model in eval mode)
    const EpochMetrics m = loop.run(epoch, step);
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.lr = m.lr;
    rec.loss = m.loss;
    rec.ce = m.extra[0];
    rec.budget = m.extra[1];
    rec.distill = m.extra[2];
    rec.train_accuracy = m.train_accuracy;
    rec.images_per_s = m.images_per_s;

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
    add_epoch_row(csv, rec, distilling);
    if (finish_epoch(epoch, epochs, rec, ck, ck_dir, module, *optimizer, config.digest(), dist, run,
                     [&] { csv.write(out + "/epochs.csv"); })) {
      return records;
    }
  }
  if (dist.is_main()) {
    csv.write(out + "/epochs.csv");
    save_module(out + "/model.safetensors", module,
                {{"stage", stage}, {"model", arch}, {"config_digest", config.digest()}, {"git", tokcom::git_hash()}});
    spdlog::info("wrote {}/model.safetensors and {}/epochs.csv", out, out);
  }
  dist.barrier();  // on return the files exist for every rank
  return records;
}

}  // namespace tokcom

#include "tokcom/train/loop.h"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"
#include "tokcom/data/transforms.h"

namespace tokcom {
namespace fs = std::filesystem;

EpochMetrics EpochLoop::run(int64_t epoch, const TrainStep& step) const {
  Distributed& d = *dist;
  EpochMetrics m;
  double loss_sum = 0;
  std::vector<double> extra_sums(extra, 0.0);
  int64_t correct = 0, seen = 0;
  const std::string rank_tag = d.active() ? fmt::format(" [rank {}/{}]", d.rank(), d.world_size()) : "";
  Progress progress(fmt::format("{} epoch {}/{}{}", label, epoch + 1, epochs, rank_tag),
                    batches * loader->options().batch_size / d.world_size(), "img");
  Batch batch;
  loader->start_epoch(epoch);
  for (int64_t s = 0; s < batches && loader->next(batch); ++s) {
    StepInput in;
    in.epoch = epoch;
    in.step_in_epoch = s;
    in.step = epoch * batches + s;
    const double mult = multiplier(in.step);
    for (size_t g = 0; g < optimizer->param_groups().size(); ++g) {
      optimizer->param_groups()[g].options().set_lr(base_lr[g] * mult);
    }
    m.lr = report_lr * mult;
    in.images = batch.images.to(device);
    in.labels = batch.labels.to(device);
    // This rank's rows of the global batch (all of it in one process); an empty shard (last batch
    // smaller than the world) only joins the gradient sum.
    in.part = loader->shard(s);
    const int64_t b = in.images.size(0);
    optimizer->zero_grad();
    if (b == 0) {
      d.step(trained, 0.0, clip, *optimizer);
      continue;
    }
    torch::manual_seed(batch_seed(rank_seed(seed ^ 0x5EEDull, d.rank()), epoch, s));
    const StepOutput out = step(in);
    // Checked before the gradient reaches the weights: a diverged run stops here, naming the step;
    // the checkpoint on disk is the last good epoch's.
    const double loss = out.loss.item<double>();
    if (!std::isfinite(loss)) {
      throw UsageError(fmt::format(
          "{}: training diverged: the loss is {} at epoch {} step {} (step {} of the run, lr {:.3g}); the run stops "
          "before this step changes the weights; lower train.lr or look at the data (train.out keeps the checkpoint "
          "of the last good epoch)",
          label, loss, epoch + 1, s + 1, in.step + 1, report_lr * mult));
    }
    out.loss.backward();
    // Mean over the global batch: each rank's mean gradient weighted by its share, summed over
    // ranks (no-op in one process), before clipping so every rank clips the same gradient.
    d.step(trained, static_cast<double>(b) / static_cast<double>(in.part.global), clip, *optimizer);
    loss_sum += loss * b;
    for (size_t i = 0; i < extra; ++i) extra_sums[i] += out.extra.at(i).item<double>() * b;
    correct += out.logits.argmax(1).eq(in.labels).sum().item<int64_t>();
    seen += b;
    progress.tick(b, fmt::format("loss {:.3f}", loss_sum / seen));
  }
  progress.finish();
  m.images_per_s = progress.rate();
  if (d.active()) {  // over every rank's shard; throughput = Σ rank rates
    std::vector<double> values = {loss_sum, static_cast<double>(correct), static_cast<double>(seen), m.images_per_s};
    values.insert(values.end(), extra_sums.begin(), extra_sums.end());
    const std::vector<double> sums = d.allreduce_sum(values);
    loss_sum = sums[0];
    correct = static_cast<int64_t>(std::llround(sums[1]));
    seen = static_cast<int64_t>(std::llround(sums[2]));
    m.images_per_s = sums[3];
    for (size_t i = 0; i < extra; ++i) extra_sums[i] = sums[4 + i];
  }
  const double n = static_cast<double>(std::max<int64_t>(seen, 1));
  m.loss = loss_sum / n;
  m.train_accuracy = static_cast<double>(correct) / n;
  for (double s : extra_sums) m.extra.push_back(s / n);
  return m;
}

EpochLoop make_epoch_loop(std::string label, torch::optim::Optimizer& optimizer, std::vector<torch::Tensor> trained,
                          double clip, TrainData& data, torch::Device device, Distributed& dist, uint64_t seed) {
  EpochLoop loop;
  loop.seed = seed;
  loop.label = std::move(label);
  loop.optimizer = &optimizer;
  loop.trained = std::move(trained);
  loop.clip = clip;
  loop.loader = data.loader.get();
  loop.batches = data.batches;
  loop.epochs = data.epochs;
  loop.device = device;
  loop.dist = &dist;
  return loop;
}

CheckpointState resume_or_start(const std::string& dir, bool resume, torch::nn::Module& module,
                                torch::optim::Optimizer& optimizer, const std::string& digest, const std::string& label) {
  CheckpointState ck;
  if (resume && load_checkpoint(dir, &ck, module, optimizer, digest)) {
    spdlog::info("{}: resumed from {} after epoch {}", label, dir, ck.epoch);
  } else if (!resume && fs::exists(dir + "/state.json")) {
    spdlog::warn("{} holds a checkpoint; starting over (use --resume to continue it)", dir);
  } else if (resume) {
    spdlog::info("{}: no checkpoint in {} to resume; starting from the first epoch", label, dir);
  }
  return ck;
}

void sync_ranks(Distributed& dist, torch::nn::Module& module, int64_t epoch, uint64_t seed) {
  if (!dist.active()) return;
  dist.expect_same(static_cast<double>(epoch), "the epoch to resume from (train.out must be shared by the ranks)");
  // Every rank starts from rank 0's weights (the same seed gives the same ones; this makes it certain),
  // then draws its own dropout (rank 0 keeps the single-process stream).
  std::vector<torch::Tensor> state;
  for (const auto& p : module.parameters()) state.push_back(p);
  for (const auto& b : module.buffers()) state.push_back(b);
  dist.broadcast(state);
  torch::manual_seed(rank_seed(seed, dist.rank()));
}

bool finish_epoch(int64_t epoch, int64_t epochs, const nlohmann::json& record, CheckpointState& ck,
                  const std::string& ck_dir, const torch::nn::Module& module, const torch::optim::Optimizer& optimizer,
                  const std::string& digest, Distributed& dist, const TrainRunOptions& run,
                  const std::function<void()>& write_csv) {
  ck.records.push_back(record);
  ck.epoch = epoch + 1;
  if (dist.is_main()) {  // only rank 0 writes files
    write_csv();
    save_checkpoint(ck_dir, ck, module, optimizer, digest);
  }
  if (run.stop_after_epochs > 0 && epoch + 1 >= run.stop_after_epochs && epoch + 1 < epochs) {
    spdlog::info("stopping after epoch {} as asked", epoch + 1);
    return true;
  }
  return false;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name, const std::vector<ParamGroup>& groups) {
  if (name != "adam" && name != "adamw") {
    throw ConfigError("train.optimizer: unknown optimizer '" + name + "', expected adam or adamw");
  }
  std::vector<torch::optim::OptimizerParamGroup> list;
  for (const ParamGroup& g : groups) {
    if (g.params.empty()) continue;
    if (name == "adamw") {
      list.emplace_back(g.params, std::make_unique<torch::optim::AdamWOptions>(
                                      torch::optim::AdamWOptions(g.lr).weight_decay(g.weight_decay)));
    } else {
      list.emplace_back(g.params, std::make_unique<torch::optim::AdamOptions>(
                                      torch::optim::AdamOptions(g.lr).weight_decay(0.0)));
    }
  }
  const double lr = groups.empty() ? 0.0 : groups.front().lr;
  if (name == "adamw") return std::make_unique<torch::optim::AdamW>(std::move(list), torch::optim::AdamWOptions(lr));
  return std::make_unique<torch::optim::Adam>(std::move(list), torch::optim::AdamOptions(lr));
}

}  // namespace tokcom

// `tokcom train`: backbone and adaptive stages (METHOD §4, 7).
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "command.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/train/distributed.h"
#include "tokcom/train/trainer.h"

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

struct TrainArgs {
  std::string config = "fmnist";
  bool resume = false, force = false;
  int64_t frozen_cache_mb = TrainRunOptions().frozen_cache_mb;
  std::string out;  // -o: train.out
  std::vector<std::string> overrides;
  DistributedOptions dist;  // unset fields come from WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT (or Slurm's)
};

// What a training folder holds: its stage and what it trains (train.method for a JSCC bank, train.model
// otherwise), as its config.yaml says.
std::string run_identity(const Config& c) {
  const std::string stage = c.get_string("train.stage");
  return "train.stage=" + stage + (stage == "jscc" ? " train.method=" + c.get_string("train.method")
                                                   : " train.model=" + c.get_string("train.model"));
}

// A folder that holds another stage's output (another stage or model in its config.yaml, or a
// budget calibration) is not this run's to overwrite: its model and config would be lost.
void check_out_is_ours(const Config& config, bool force) {
  const std::string out = config.get_string("train.out");
  if (force || !fs::exists(out + "/config.yaml")) return;
  std::string theirs;
  try {
    theirs = fs::exists(out + "/calibration.csv") ? "a budget calibration (tokcom calibrate)"
                                                   : run_identity(Config::load(out + "/config.yaml"));
  } catch (const Error& e) {
    theirs = "a config.yaml this version cannot read (" + std::string(e.what()) + ")";
  }
  const std::string ours = run_identity(config);
  if (theirs == ours) return;
  throw UsageError(fmt::format("train.out {0} holds the output of {1}, not of this run ({2}); its model and config "
                               "would be overwritten: choose a new folder or pass --force",
                               out, theirs, ours));
}

void run_train(const TrainArgs& args) {
  std::vector<std::string> overrides = args.overrides;
  if (!args.out.empty()) overrides.push_back("train.out=" + args.out);
  // `tokcom --precision` given on the command line is train.precision for this run (saved with it).
  if (!global_options().precision.empty()) overrides.push_back("train.precision=" + global_options().precision);
  const Config config = Config::load(args.config, overrides);
  check_out_is_ours(config, args.force);
  TrainRunOptions run;
  run.resume = args.resume;
  run.seed = global_options().seed;
  run.frozen_cache_mb = args.frozen_cache_mb;
  Distributed dist(args.dist);  // a world of one unless asked: no process group
  run.distributed = &dist;
  train(config, run);
}

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a stage: train.stage=backbone (CE) | adaptive (CE + budget losses, METHOD §4) | jscc (the\n"
               "JSCC bank, per r and regime); data parallel with --world-size/--rank/--master (c10d Gloo)");
  cmd->add_option("-c,--config", args->config, "Named config in configs/ or a YAML path")->capture_default_str();
  cmd->add_flag("--resume", args->resume, "Continue from <train.out>/checkpoint (same config and seed)");
  cmd->add_flag("--force", args->force,
                "Write into a train.out that holds another stage's output (another train.stage, train.model or\n"
                "train.method in its config.yaml, or a budget calibration)");
  cmd->add_option("--world-size", args->dist.world_size,
                  "Data parallelism: number of ranks (default $WORLD_SIZE, else $SLURM_STEP_NUM_TASKS, else 1)")
      ->check(kFinitePositive);
  cmd->add_option("--rank", args->dist.rank, "This process's rank, 0..N-1 (default $RANK, else $SLURM_PROCID)")
      ->check(kFiniteNonNegative);
  cmd->add_option("--master", args->dist.master,
                  "ADDR:PORT of rank 0's TCPStore rendezvous (default $MASTER_ADDR:$MASTER_PORT)");
  cmd->add_option("--dist-timeout", args->dist.timeout_s,
                  "Seconds to wait for the other ranks at rendezvous and at every allreduce; a rank that died "
                  "makes the others fail after this")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("--dist-store", args->dist.store,
                  "file:PATH: rendezvous through a FileStore on a shared file system instead of --master");
  cmd->add_option("--frozen-cache-mb", args->frozen_cache_mb,
                  "train.stage=jscc: MB of the frozen device half's outputs kept for the bank's other (regime, r) "
                  "pairs, which train on the same batches (exact; 0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-o,--out", args->out, "Output folder: the same as train.out=DIR");
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides, e.g. train.epochs=5 train.stage=adaptive");
  cmd->footer(
      "Writes <train.out>/{config.yaml, epochs.csv, model.safetensors, checkpoint/}.\n"
      "Example: tokcom train -c fmnist train.stage=backbone train.out=runs/fmnist-backbone\n"
      "Two ranks (one machine or two): tokcom train --world-size 2 --rank K --master HOST0:29500 -c fmnist ...\n"
      "(train.batch_size is the global batch; each rank takes 1/N of it; only rank 0 writes files).");
  set_action(cmd, [args] { run_train(*args); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(40, add_train);
}  // namespace tokcom::cli

// `tokcom train`: backbone and adaptive stages (SPEC 4, 7).
#include <spdlog/spdlog.h>

#include "command.h"
#include "tokcom/core/config.h"
#include "tokcom/train/trainer.h"

namespace tokcom::cli {
namespace {

struct TrainArgs {
  std::string config = "fmnist";
  bool resume = false;
  std::vector<std::string> overrides;
};

void run_train(const TrainArgs& args) {
  const Config config = Config::load(args.config, args.overrides);
  TrainRunOptions run;
  run.resume = args.resume;
  run.seed = global_options().seed;
  train(config, run);
}

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a stage: train.stage=backbone (CE) | adaptive (CE + budget losses, SPEC 4)");
  cmd->add_option("-c,--config", args->config, "Named config in configs/ or a YAML path")->capture_default_str();
  cmd->add_flag("--resume", args->resume, "Continue from <train.out>/checkpoint (same config and seed)");
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides, e.g. train.epochs=5 train.stage=adaptive");
  cmd->footer(
      "Writes <train.out>/{config.yaml, epochs.csv, model.safetensors, checkpoint/}.\n"
      "Example: tokcom train -c fmnist train.stage=backbone train.out=runs/fmnist-backbone");
  set_action(cmd, [args] { run_train(*args); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(40, add_train);
}  // namespace tokcom::cli

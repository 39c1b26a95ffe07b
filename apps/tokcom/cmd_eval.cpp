// `tokcom eval`: accuracy and kept tokens at several budgets, soft or hard path (METHOD §3.4, 3.5).
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "command.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/eval/evaluate.h"
#include "tokcom/eval/checkpoint_config.h"

namespace tokcom::cli {
namespace {

struct EvalArgs {
  std::string checkpoint, config, mode = "hard", alphas = "0.1,0.25,0.5,0.75,1", split = "val", out;
  int64_t batch_size = 256, max_batches = 0;
  std::vector<std::string> overrides;
};

void run_eval(const EvalArgs& args) {
  const Config config = checkpoint_config(args.checkpoint, args.config, args.overrides);
  Vit model = make_vit(config);
  load_module(args.checkpoint, *model, /*strict=*/true);
  EvalOptions o;
  o.alphas = parse_number_list(args.alphas, "--alphas");
  o.mode = parse_mode(args.mode);
  o.batch_size = args.batch_size;
  o.max_batches = args.max_batches;
  o.device = torch::Device(config.get_string("train.device"));
  model->to(o.device);
  const ImageDataset data = load_dataset(config, args.split);
  const auto rows = evaluate(model, data, config, o);
  for (const auto& r : rows)
    std::printf("alpha %-5g %s  accuracy %.4f  kept fraction %.3f  %.0f img/s\n", r.alpha, r.mode.c_str(), r.accuracy,
                r.kept_fraction, r.images_per_s);
  if (!args.out.empty()) {
    write_eval_csv(args.out, rows);
    config.save(args.out + ".config.yaml");
    spdlog::info("wrote {} (+ .config.yaml)", args.out);
  }
}

void add_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Accuracy and kept tokens of a checkpoint at several budgets");
  cmd->add_option("--checkpoint", args->checkpoint, "model.safetensors from `tokcom train`")->required()->check(CLI::ExistingFile);
  cmd->add_option("-c,--config", args->config, "Config (default: <stem>.config.yaml, else config.yaml, beside the checkpoint)");
  cmd->add_option("--alphas", args->alphas, "Comma list of budgets in (0, 1]; 1 = static path")->capture_default_str();
  cmd->add_option("--mode", args->mode, "soft (reference batched masks) | hard (tokens gathered)")
      ->check(CLI::IsMember({"soft", "hard"}))->capture_default_str();
  cmd->add_option("--split", args->split, "train | val | test")->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size)->capture_default_str()->check(kFinitePositive);
  cmd->add_option("--max-batches", args->max_batches, "Only this many batches, a seeded random sample of the split (0: all)")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("-o,--out", args->out, "CSV: alpha,mode,accuracy,kept_fraction,kept_mean_block{i},kept_std_block{i},images_per_s,n_images");
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides");
  set_action(cmd, [args] { run_eval(*args); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(41, add_eval);
}  // namespace tokcom::cli

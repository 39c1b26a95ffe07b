// `tokcom calibrate`: make a trained adaptive ViT keep α of its patches when told α (docs/model.md
// "Budget calibration"). Measures the hard kept fraction against the budget fed to the budget token
// on a random subset of a split (the training split by default: the val split stays for the
// evaluation), inverts the curve, and writes a model folder — the same weights plus a config.yaml
// with model.calibration_kept / model.calibration_budget — that every other verb loads as it is.
#include <filesystem>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "command.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/data/loader.h"
#include "tokcom/eval/budget_calibration.h"
#include "tokcom/eval/checkpoint_config.h"
#include "tokcom/eval/sweep.h"

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

struct CalibrateArgs {
  std::string checkpoint, config, split = "train", budgets = "0.01:0.99:0.02", out;
  int64_t images = 1024, batch_size = 256;
  bool force = false;
  std::vector<std::string> overrides;
};

// `count` images of `split` in a seeded random order, without augmentation.
torch::Tensor sample_images(const Config& config, const std::string& split, int64_t count) {
  const ImageDataset data = load_dataset(config, split);
  LoaderOptions lo = loader_options(config, /*train=*/false, global_options().seed);
  lo.shuffle = true;
  lo.augment = false;
  lo.drop_last = false;
  lo.batch_size = std::min<int64_t>(256, std::max<int64_t>(1, count));
  Loader loader(data, transform_options(config, data), lo);
  std::vector<torch::Tensor> parts;
  int64_t have = 0;
  Batch batch;
  loader.start_epoch(0);
  while (have < count && loader.next(batch)) {
    parts.push_back(batch.images.slice(0, 0, std::min<int64_t>(batch.images.size(0), count - have)));
    have += parts.back().size(0);
  }
  if (have == 0) throw DataError(fmt::format("calibrate: the split '{}' of {} has no images", split, data.name));
  return torch::cat(parts);
}

std::string list(const std::vector<double>& v) { return fmt::format("[{:.6g}]", fmt::join(v, ", ")); }

void run_calibrate(const CalibrateArgs& a) {
  if (a.out.empty()) throw UsageError("calibrate: -o/--out DIR is required");
  // A folder holding a model that calibrate did not write (a training run, the checkpoint's own
  // folder) is another stage's output: overwriting its model and config loses that run.
  if (fs::exists(a.out + "/model.safetensors") && !fs::exists(a.out + "/calibration.csv") && !a.force) {
    throw UsageError(fmt::format("calibrate -o {0}: {0} holds model.safetensors that calibrate did not write (another "
                                 "stage's output would be overwritten); choose a new folder or pass --force",
                                 a.out));
  }
  Config config = checkpoint_config(a.checkpoint, a.config, a.overrides);
  Vit model = make_vit(config);
  load_module(a.checkpoint, *model, /*strict=*/true);
  model->to(torch::Device(config.get_string("train.device")));
  const std::vector<double> budgets = parse_range(a.budgets, "--budgets");
  if (a.images <= 0) throw UsageError(fmt::format("--images {} must be positive", a.images));
  const torch::Tensor images = sample_images(config, a.split, a.images);
  spdlog::info("calibrate: {} budgets × {} images of the {} split (hard path, blocks up to the last adaptive one)",
               budgets.size(), images.size(0), a.split);
  const std::vector<KeptPoint> curve = measure_kept_curve(model, images, budgets, a.batch_size);
  std::vector<double> kept, fed;
  try {
    std::tie(kept, fed) = calibration_from_curve(curve);
  } catch (const DataError& e) {
    // A model whose selection ignores the budget (e.g. a smoke run's barely trained one) has no curve
    // to invert: the folder gets the model as it is, so a pipeline goes on, and says so loudly.
    spdlog::warn("{}; {} holds the model uncalibrated (b(α) as METHOD §3.1)", e.what(), a.out);
  }
  config.set("model.calibration_kept=" + list(kept));
  config.set("model.calibration_budget=" + list(fed));
  const VitOptions calibrated = vit_options_from_config(config);
  validate_vit_options(calibrated);

  fs::create_directories(a.out);
  csv::Writer csv(csv::schema("a calibration curve (tokcom calibrate)", "budget,kept_fraction"));
  for (const auto& p : curve) csv.number(p.budget, 6).fixed(p.kept, 6).end_row();
  csv.write(a.out + "/calibration.csv");
  write_file_atomic(a.out + "/model.safetensors", read_file(a.checkpoint));
  config.save(a.out + "/config.yaml");
  std::printf("requested α → budget fed (kept fraction measured on %lld %s images)\n",
              static_cast<long long>(images.size(0)), a.split.c_str());
  for (double alpha : {0.1, 0.25, 0.5, 0.75, 0.9}) std::printf("  %-5g → %.4f\n", alpha, calibrated_budget(calibrated, alpha));
  if (!kept.empty() && kept.front() > 0.1) {
    std::printf("note: at its smallest budget the model still keeps %.3f of its patches; smaller α keep that much\n",
                kept.front());
  }
  spdlog::info("wrote {}/model.safetensors, config.yaml (model.calibration_*), calibration.csv", a.out);
}

void add_calibrate(CLI::App& app) {
  auto a = std::make_shared<CalibrateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Make an adaptive ViT keep α of its patches when told α: measure the hard kept fraction\n"
      "against the budget token's input on a split, write a model folder whose config inverts it");
  cmd->add_option("--checkpoint", a->checkpoint, "model.safetensors of the adaptive stage")->required()->check(CLI::ExistingFile);
  cmd->add_option("-c,--config", a->config, "Config (default: <stem>.config.yaml, else config.yaml, beside the checkpoint)");
  cmd->add_option("--split", a->split, "Split measured on (train keeps val for evaluation)")->capture_default_str();
  cmd->add_option("--images", a->images, "Random images of the split (seeded by --seed)")->capture_default_str()->check(kFinitePositive);
  cmd->add_option("--budgets", a->budgets, "Budgets fed to the budget token, lo:hi:step or a list, in (0, 1)")
      ->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size)->capture_default_str()->check(kFinitePositive);
  cmd->add_option("-o,--out", a->out, "Output folder: model.safetensors, config.yaml, calibration.csv")->required();
  cmd->add_flag("--force", a->force, "Write into a folder that holds another stage's model");
  cmd->add_option("overrides", a->overrides, "key.sub=value overrides");
  set_action(cmd, [a] { run_calibrate(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(44, add_calibrate);
}  // namespace tokcom::cli

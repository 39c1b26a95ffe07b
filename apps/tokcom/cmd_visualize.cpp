// `tokcom visualize`: the paper's Fig. 9 — validation images with the patches the model dropped
// greyed out, one column per budget α (hard path, the tokens that would really be sent).
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "command.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/grid.h"
#include "tokcom/data/image_codec.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/checkpoint_config.h"
#include "tokcom/model/vit.h"

namespace tokcom::cli {
namespace {

struct VisualizeArgs {
  std::string checkpoint, config, alphas = "0.1,0.25,0.5,0.75", out, split = "val";
  int64_t count = 8, first = 0;
  std::vector<std::string> overrides;
};

// Greys out dropped patches: mask (g*g) of kept (1) / dropped (0) over a g×g patch grid.
torch::Tensor grey_out(const torch::Tensor& image_u8, const torch::Tensor& kept, int64_t grid) {
  const int64_t h = image_u8.size(1), w = image_u8.size(2);
  torch::Tensor m = kept.to(torch::kFloat).view({1, 1, grid, grid});
  m = torch::nn::functional::interpolate(
          m, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest))
          .view({1, h, w});
  const torch::Tensor f = image_u8.to(torch::kFloat);
  const torch::Tensor grey = f * 0.2 + 150.0;  // faint trace of the dropped content
  return (f * m + grey * (1 - m)).round().clamp(0, 255).to(torch::kUInt8);
}

void run_visualize(const VisualizeArgs& args) {
  const Config config = checkpoint_config(args.checkpoint, args.config, args.overrides);
  Vit model = make_vit(config);
  load_module(args.checkpoint, *model, /*strict=*/true);
  model->eval();
  torch::NoGradGuard no_grad;
  if (model->options.adaptive_blocks().empty()) throw UsageError("visualize needs an adaptive model (model.adaptive_blocks)");
  const std::vector<double> alphas = parse_number_list(args.alphas, "--alphas");
  const ImageDataset data = load_dataset(config, args.split);
  const int64_t n = std::min<int64_t>(args.count, data.images.size(0) - args.first);
  if (n <= 0) throw UsageError(fmt::format("--first {} is past the {} images of the split", args.first, data.images.size(0)));
  const torch::Tensor raw = data.images.narrow(0, args.first, n);
  const TransformOptions t = transform_options(config, data);
  const torch::Tensor x = eval_transform(raw, t);
  const int64_t grid = model->options.image_size() / model->options.patch_size();

  std::vector<torch::Tensor> tiles;
  std::vector<std::string> captions;
  std::vector<torch::Tensor> columns;  // per alpha: (n, N) kept patches
  for (double alpha : alphas) {
    const VitOutput out = model->forward(x, torch::full({n}, alpha), SelectionMode::kHard);
    columns.push_back(out.stats.back().patch_mask.gt(0));
  }
  const torch::Tensor pred = model->forward(x).logits.argmax(1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = data.labels[args.first + i].item<int64_t>();
    tiles.push_back(raw[i]);
    captions.push_back(data.class_names.at(label));
    for (size_t a = 0; a < alphas.size(); ++a) {
      const torch::Tensor kept = columns[a][i];
      tiles.push_back(grey_out(raw[i], kept, grid));
      captions.push_back(fmt::format("A {} {}/{}", alphas[a], kept.sum().item<int64_t>(), kept.numel()));
    }
  }
  const torch::Tensor picture = make_grid(torch::stack(tiles), captions, static_cast<int>(1 + alphas.size()));
  const torch::Tensor hwc = picture.contiguous();
  write_file_atomic(args.out, encode_png(hwc.data_ptr<uint8_t>(), 3, hwc.size(1), hwc.size(2)));
  config.save(args.out + ".config.yaml");
  spdlog::info("wrote {}: {} images × ({} budgets + original); predicted class at α=1 of the first: {}", args.out, n,
               alphas.size(), data.class_names.at(pred[0].item<int64_t>()));
}

void add_visualize(CLI::App& app) {
  auto args = std::make_shared<VisualizeArgs>();
  CLI::App* cmd = app.add_subcommand("visualize", "Fig. 9: images with dropped patches greyed out at several budgets");
  cmd->add_option("--checkpoint", args->checkpoint, "Adaptive model weights (safetensors)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-c,--config", args->config, "Config (default: <stem>.config.yaml, else config.yaml, beside the checkpoint)");
  cmd->add_option("--alphas", args->alphas, "Comma list of budgets")->capture_default_str();
  cmd->add_option("--count", args->count, "Number of images")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--first", args->first, "Index of the first image of the split")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("--split", args->split)->capture_default_str();
  cmd->add_option("-o,--out", args->out, "PNG to write")->required();
  cmd->add_option("overrides", args->overrides, "key.sub=value overrides");
  set_action(cmd, [args] { run_visualize(*args); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(43, add_visualize);
}  // namespace tokcom::cli

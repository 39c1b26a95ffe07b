// `tokcom data info` and `tokcom data show`: what a data set holds and what the model sees.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>

#include "command.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/grid.h"
#include "tokcom/data/image_codec.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/prepare.h"
#include "tokcom/core/startup.h"

namespace tokcom::cli {
namespace {

struct DataArgs {
  std::string config, dataset, root, out, augment, split = "train";  // dataset "": the config's (fashion-mnist without one)
  int count = 32, columns = 8;
  std::vector<std::string> overrides;
};

// The config for a data verb: --dataset/--root/--augment become overrides; Imagenette and
// folders default to 64 px unless data.image_size is set explicitly (the schema default, 28,
// is Fashion-MNIST's side).
Config data_config(const DataArgs& a) {
  std::vector<std::string> overrides;
  if (!a.dataset.empty()) overrides.push_back("data.dataset=" + a.dataset);  // else the config's data set
  bool size_given = false;
  for (const auto& o : a.overrides) size_given |= o.rfind("data.image_size=", 0) == 0;
  if (!a.dataset.empty() && a.dataset != "fashion-mnist" && !size_given && a.config.empty())
    overrides.push_back("data.image_size=64");
  if (!a.root.empty()) overrides.push_back("data.root=" + a.root);
  if (!a.augment.empty()) overrides.push_back("data.augment=" + a.augment);
  overrides.insert(overrides.end(), a.overrides.begin(), a.overrides.end());
  return Config::load(a.config, overrides);
}

void run_info(const DataArgs& a) {
  const Config cfg = data_config(a);
  const std::vector<std::string> splits =
      cfg.get_string("data.dataset") == "fashion-mnist" ? std::vector<std::string>{"train", "test"}
                                                        : std::vector<std::string>{"train", "val"};
  std::vector<ImageDataset> sets;
  for (const auto& s : splits) sets.push_back(load_dataset(cfg, s));
  const ImageDataset& first = sets.front();
  std::cout << first.name << "  (" << first.source << ")\n";
  for (const auto& ds : sets)
    std::cout << fmt::format("  {:<5} {:>6} images  {}x{}x{} uint8\n", ds.split, ds.size(),
                             ds.images.size(1), ds.images.size(2), ds.images.size(3));
  std::cout << "  classes (" << first.class_names.size() << "), images per class "
            << sets[0].split << "/" << sets[1].split << ":\n";
  std::vector<torch::Tensor> counts;
  for (const auto& ds : sets) counts.push_back(torch::bincount(ds.labels, {}, int64_t(first.class_names.size())));
  for (size_t k = 0; k < first.class_names.size(); ++k) {
    const std::string id = first.class_ids[k] != first.class_names[k] ? first.class_ids[k] + "  " : "";
    std::cout << fmt::format("  {:>3}  {}{:<18} {:>5} / {}\n", k, id, first.class_names[k],
                             counts[0][k].item<int64_t>(), counts[1][k].item<int64_t>());
  }
}

void run_show(const DataArgs& a) {
  if (a.count < 1 || a.count > 1024) throw UsageError("--count: " + std::to_string(a.count) + " not in 1..1024");
  const Config cfg = data_config(a);
  const ImageDataset ds = load_dataset(cfg, a.split);
  const TransformOptions transform = transform_options(cfg, ds);
  LoaderOptions options;
  options.batch_size = std::min<int64_t>(a.count, ds.size());
  options.workers = 0;
  options.augment = transform.augment != "none";
  options.seed = uint64_t(torch::randint(1 << 30, {1}, torch::kInt64).item<int64_t>());  // from --seed
  Loader loader(ds, transform, options);
  const Batch batch = loader.make_batch(/*epoch=*/0, /*b=*/0);
  std::vector<std::string> captions;
  for (int64_t i = 0; i < batch.labels.size(0); ++i)
    captions.push_back(ds.class_names[batch.labels[i].item<int64_t>()]);
  const torch::Tensor pixels = denormalise(batch.images, transform.mean, transform.std);
  const torch::Tensor grid = make_grid(pixels, captions, a.columns);
  write_file_atomic(a.out, encode_png(grid.data_ptr<uint8_t>(), 3, int(grid.size(1)), int(grid.size(2))));
  cfg.save(a.out + ".config.yaml");  // the effective config beside every output
  spdlog::info("wrote {} ({} {} samples, augment {}, {}x{} px)", a.out, batch.labels.size(0), ds.split,
               transform.augment, grid.size(2), grid.size(1));
}

void run_prepare(PrepareOptions o) {
  o.threads = core_count();
  const PrepareReport r = prepare_image_folder(o);
  std::cout << fmt::format("wrote {}  ({}x{} px, Lanczos, fit {}, JPEG quality {})\n", o.out, o.size, o.size, o.fit,
                           o.quality);
  for (const auto& [split, n] : r.images) std::cout << fmt::format("  {:<5} {:>7} images\n", split, n);
  std::cout << fmt::format("  {} classes, {} grayscale images kept with one channel", r.classes.size(), r.grayscale);
  if (!r.skipped.empty()) std::cout << fmt::format(", {} unreadable images skipped", r.skipped.size());
  std::cout << "\n  SHA256SUMS: " << r.sums_line << "\n";
}

void add_common(CLI::App* cmd, const std::shared_ptr<DataArgs>& args) {
  cmd->add_option("--dataset", args->dataset,
                  "imagenette|fashion-mnist|folder (default: the config's data.dataset, fashion-mnist without -c)")
      ->check(CLI::IsMember({"imagenette", "fashion-mnist", "folder"}));
  cmd->add_option("--root", args->root, "ImageFolder root (<root>/<split>/<class>/<image>)");
  cmd->add_option("-c,--config", args->config, "Named config in configs/ (default: defaults only)");
  cmd->add_option("overrides", args->overrides, "key.sub=value ...");
}

void add_data(CLI::App& app) {
  CLI::App* data = group(app, "data", "Inspect and prepare data sets");
  auto info = std::make_shared<DataArgs>();
  CLI::App* cmd = data->add_subcommand("info", "Split sizes and class names of a data set");
  add_common(cmd, info);
  set_action(cmd, [info] { run_info(*info); });

  auto show = std::make_shared<DataArgs>();
  cmd = data->add_subcommand("show", "Write a labelled PNG grid of augmented samples");
  add_common(cmd, show);
  cmd->add_option("-o,--out", show->out, "PNG to write (temp file + rename)")->required();
  cmd->add_option("--count", show->count, "Number of samples")->capture_default_str()->check(CLI::Range(1, 10000));
  cmd->add_option("--columns", show->columns, "Grid columns")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--augment", show->augment, "none|crop-flip|randaugment (default: data.augment)")
      ->check(CLI::IsMember({"none", "crop-flip", "randaugment"}));
  cmd->add_option("--split", show->split, "train|val|test")->capture_default_str();
  set_action(cmd, [show] { run_show(*show); });

  auto prepare = std::make_shared<PrepareOptions>();
  cmd = data->add_subcommand(
      "prepare",
      "Turn an ImageFolder (the official Imagenette download, or any train/ val/ tree of class folders) into\n"
      "the tarball layout tokcom reads: every image Lanczos-resized to SIZE x SIZE, JPEG quality 90,\n"
      "grayscale kept; its line added to SHA256SUMS beside it. Reproducible: the same input, the same bytes.");
  cmd->add_option("--from", prepare->from, "Folder holding train/<class>/<image> (and val/, test/)")->required();
  cmd->add_option("--size", prepare->size, "Output side in pixels")->required()->check(CLI::Range(1, 4096));
  cmd->add_option("-o,--out", prepare->out, "Tarball to write, e.g. data/imagenette2-128.tar.gz (temp file + rename)")
      ->required();
  cmd->add_option("--fit", prepare->fit, "crop: the centred square, then resize; squash: the whole image")
      ->check(CLI::IsMember({"crop", "squash"}))->capture_default_str();
  cmd->add_option("--quality", prepare->quality, "JPEG quality")->capture_default_str()->check(CLI::Range(1, 100));
  cmd->add_flag("--skip-bad", prepare->skip_bad, "Leave unreadable images out (listed) instead of stopping");
  cmd->footer(
      "Example (Imagenette from https://github.com/fastai/imagenette, unpacked to ~/imagenette2):\n"
      "  tokcom data prepare --from ~/imagenette2 --size 128 -o ~/data/imagenette2-128.tar.gz\n"
      "  TOKCOM_DATA=~/data tokcom data info --dataset imagenette data.image_size=128");
  set_action(cmd, [prepare] { run_prepare(*prepare); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(10, add_data);
}  // namespace tokcom::cli

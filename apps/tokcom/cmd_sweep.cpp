// `tokcom sweep`: a trained JSCC bank over the grid methods × regimes × ratios × α × channels ×
// SNR, one tidy CSV row per cell plus a JSON sidecar; `--shard k/n` for array jobs; `tokcom merge`
// joins the shards (METHOD §5, issue "semantic channel").
#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "command.h"
#include "tokcom/comm/channel.h"
#include "tokcom/comm/zeta.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"
#include "tokcom/core/version.h"
#include "tokcom/comm/digital/options.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/eval/checkpoint_config.h"
#include "tokcom/eval/digital_eval.h"
#include "tokcom/eval/evaluate.h"
#include "tokcom/eval/link_eval.h"
#include "tokcom/eval/sweep.h"
#include "tokcom/split/method.h"
#include "tokcom/split/mobilenet_split.h"
#include "tokcom/split/proposal.h"

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

struct SweepArgs {
  std::map<std::string, std::string> bank_dirs;  // method → its bank folder (--bank, --vit-ae-bank, …)
  std::string config, methods = "proposal", regimes = "robust", channels = "awgn",
                      snr = "-20:20:2.5", alphas = "0.001,0.01,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", ratios,
                      mode = "hard", split = "val", shard = "0/1", out,
                      zetas = "0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2", backbone, per_image;
  int64_t batch_size = 256, max_batches = 0;
  std::vector<std::string> overrides;
};

// The config a bank was trained with (its config.yaml) unless -c is given, then the overrides.
Config bank_config(const SweepArgs& a, const std::string& bank) {
  if (!a.config.empty()) return Config::load(a.config, a.overrides);
  const std::string path = bank + "/config.yaml";
  if (!fs::exists(path)) {
    throw ConfigError(fmt::format("{}: not found; pass -c CONFIG or a --bank folder written by `tokcom train "
                                  "train.stage=jscc`",
                                  path));
  }
  return Config::load(path, a.overrides);
}

// The digital baseline `method` over its cells of this shard, classified by the clean backbone.
void run_digital(const SweepArgs& a, const std::string& method, const std::vector<SweepCell>& cells, int64_t begin,
                 int64_t end, uint64_t seed, std::vector<SweepRow>* rows, std::vector<digital::PerImageRow>* per_image,
                 nlohmann::json* configs) {
  std::vector<DigitalPoint> points;
  std::vector<const SweepCell*> owners;
  const std::string base = method.substr(0, method.find('/'));
  const auto capacity = method == base ? digital::CapacityModel::kShannon : digital::CapacityModel::kPractical;
  for (int64_t i = begin; i < end; ++i) {
    if (cells[i].method != method) continue;
    points.push_back({base, capacity, cells[i].zeta, cells[i].snr_db});
    owners.push_back(&cells[i]);
  }
  if (points.empty()) return;
  const Config config = checkpoint_config(a.backbone, a.config, a.overrides);
  (*configs)["backbone"] = config.to_yaml();
  Vit backbone = make_vit(config);
  load_module(a.backbone, *backbone, /*strict=*/true);
  DigitalEvalOptions o;
  o.device = torch::Device(config.get_string("train.device"));
  o.input_values = input_values(config);
  o.max_images = a.max_batches > 0 ? a.max_batches * a.batch_size : 0;
  o.progress_label = fmt::format("sweep {} ({} cells)", method, points.size());
  backbone->to(o.device);
  const ImageDataset data = load_dataset(config, a.split);
  const auto results = evaluate_digital(backbone, points, data, config, digital::digital_settings(config).codec, o, per_image);
  for (size_t i = 0; i < results.size(); ++i) {
    SweepRow row;
    row.cell = *owners[i];
    row.zeta = owners[i]->zeta;
    row.symbols = results[i].symbols();
    row.accuracy = results[i].accuracy();
    row.n_images = results[i].n_images;
    row.seed = seed;
    row.mode = a.mode;
    rows->push_back(row);
  }
}

void run_sweep(const SweepArgs& a) {
  SweepGrid grid;
  grid.methods = split_list(a.methods);
  grid.regimes = split_list(a.regimes);
  grid.channels = split_channel_specs(a.channels);
  grid.snrs = parse_range(a.snr, "--snr");
  grid.alphas = parse_range(a.alphas, "--alphas");
  grid.mode = a.mode;
  for (double alpha : grid.alphas) {
    if (!(alpha > 0 && alpha <= 1)) throw UsageError(fmt::format("--alphas: {} is outside (0, 1]", alpha));
  }
  grid.zetas = parse_range(a.zetas, "--zetas");
  std::map<std::string, std::string> banks;
  for (const auto& m : grid.methods) {
    if (is_digital_method(m)) {
      if (a.backbone.empty()) {
        throw UsageError(fmt::format("--methods {} needs --backbone (the clean ViT that classifies received images, Q7)", m));
      }
      continue;
    }
    const Method& method = method_named(m, "--methods");
    banks[m] = a.bank_dirs.count(method.name) ? a.bank_dirs.at(method.name) : "";
    if (banks[m].empty()) throw UsageError(fmt::format("--methods {} needs its bank folder ({})", m, method.bank_flag));
  }
  for (const auto& r : grid.regimes) {
    if (r != "robust" && r != "noiseless") throw UsageError("--regimes: '" + r + "', expected robust and/or noiseless");
  }
  std::vector<std::unique_ptr<Channel>> channels;
  for (const auto& c : grid.channels) channels.push_back(make_channel(c));
  const Config first_config = !banks.empty() ? bank_config(a, banks.begin()->second)
                                             : checkpoint_config(a.backbone, a.config, a.overrides);
  grid.ratios = a.ratios.empty() ? first_config.get_doubles("comm.ratios") : parse_range(a.ratios, "--ratios");
  const SelectionMode mode = parse_mode(a.mode);
  const Shard shard = parse_shard(a.shard);
  const uint64_t seed = global_options().seed;

  const std::vector<SweepCell> cells = sweep_cells(grid);
  const auto [begin, end] = shard_range(static_cast<int64_t>(cells.size()), shard);
  spdlog::info("sweep: {} cells in the grid, shard {}/{} runs cells [{}, {})", cells.size(), shard.k, shard.n, begin, end);
  const ImageDataset data = load_dataset(first_config, a.split);
  const torch::Device device(first_config.get_string("train.device"));

  std::vector<SweepRow> rows;
  nlohmann::json configs = nlohmann::json::object();
  std::vector<digital::PerImageRow> per_image;
  for (const auto& method : grid.methods) {
    if (is_digital_method(method)) {
      run_digital(a, method, cells, begin, end, seed, &rows, a.per_image.empty() ? nullptr : &per_image, &configs);
      continue;
    }
    const Config config = bank_config(a, banks.at(method));
    configs[method] = config.to_yaml();
    for (const auto& regime : grid.regimes) {
      std::vector<LinkPoint> points;
      std::vector<const SweepCell*> owners;
      for (int64_t i = begin; i < end; ++i) {
        const SweepCell& c = cells[i];
        if (c.method != method || c.regime != regime) continue;
        size_t ch = 0;
        while (grid.channels[ch] != c.channel) ++ch;
        points.push_back({Decision{c.alpha, c.ratio_index}, channels[ch].get(), c.snr_db, static_cast<uint64_t>(c.index)});
        owners.push_back(&c);
      }
      if (points.empty()) continue;
      SplitModel model = load_split(config, banks.at(method), method, regime, grid.ratios, mode, device);
      LinkEvalOptions lo;
      lo.batch_size = a.batch_size;
      lo.max_batches = a.max_batches;
      lo.seed = seed;
      lo.device = device;
      lo.progress_label = fmt::format("sweep {} {} ({} cells)", method, regime, points.size());
      const auto results = evaluate_link(model, points, data, config, lo);
      // Once per bank, not per row: the ViT's shape and whether each sent token carries a mask symbol.
      const bool vit_tokens = !is_mobilenet_method(method);
      const VitOptions vo = vit_tokens ? vit_options_from_config(config) : VitOptions();
      const bool mask_symbol = method_has_budget(method) && token_scale_from_config(config) == TokenScale::kChannel;
      for (size_t i = 0; i < results.size(); ++i) {
        SweepRow row;
        row.cell = *owners[i];
        row.kept_tokens = results[i].kept_tokens();
        // The measured fraction beside the asked α (the budget is what was sent, not what was asked).
        if (method_has_budget(method)) row.kept_fraction = row.kept_tokens / static_cast<double>(vo.num_patches());
        row.symbols = results[i].symbols();
        row.zeta = row.symbols / static_cast<double>(model.input_values);
        if (config.get_bool("comm.proxy_zeta_reference") && vit_tokens) {
          // METHOD §10 P15 reference mode: E[tokens sent]·dim·r with the fractional dim·r.
          const double sent_tokens = method_has_budget(method) ? row.kept_tokens + 2 : vo.num_patches() + 1;
          row.zeta = proxy_zeta_reference(sent_tokens, row.cell.ratio, vo.dim(), model.input_values);
          if (mask_symbol) row.zeta += sent_tokens / static_cast<double>(model.input_values);  // the mask's symbol per token
        }
        row.accuracy = results[i].accuracy();
        row.n_images = results[i].n_images;
        row.seed = seed;
        row.mode = a.mode;
        rows.push_back(row);
      }
    }
  }
  std::sort(rows.begin(), rows.end(), [](const SweepRow& x, const SweepRow& y) { return x.cell.index < y.cell.index; });
  nlohmann::json extra = {{"tool", "tokcom sweep"},
                          {"version", TOKCOM_VERSION},
                          {"git", tokcom::git_hash()},
                          {"torch", TORCH_VERSION},
                          {"split", a.split},
                          {"banks", banks},
                          {"configs", configs},
                          {"max_batches", a.max_batches}};
  if (!a.backbone.empty()) extra["backbone"] = a.backbone;
  write_sweep(a.out, grid, shard, seed, rows, extra);
  if (!a.per_image.empty()) {
    digital::write_per_image_csv(a.per_image, per_image);
    spdlog::info("wrote {} ({} rows)", a.per_image, per_image.size());
  }
  spdlog::info("wrote {} ({} rows) and {}.json", a.out, rows.size(), a.out);
}

void add_sweep(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand("sweep", "Accuracy vs ζ of trained JSCC banks over channels, SNRs, ratios and budgets");
  for (const Method& m : methods()) {
    if (!m.has_bank()) continue;
    cmd->add_option(m.bank_flag, a->bank_dirs[m.name],
                    fmt::format("Folder of the {} bank: {} (train.out of its train.stage=jscc)", m.name, m.about));
  }
  cmd->add_option("-c,--config", a->config, "Config (default: config.yaml in each bank folder)");
  cmd->add_option("--methods", a->methods,
                  "Comma list of " + method_names() + " (codecs: AWGN capacity; add /practical for the 5G NR rate "
                  "table)")
      ->capture_default_str();
  cmd->add_option("--regimes", a->regimes, "Comma list: robust, noiseless")->capture_default_str();
  cmd->add_option("--channels", a->channels,
                  "Comma list of channel specs (awgn, rayleigh, rayleigh-csi, rician:K=4, …; use ';' between "
                  "specs that hold commas)")
      ->capture_default_str();
  cmd->add_option("--snr", a->snr, "SNRs in dB: start:stop:step (inclusive) or a comma list")->capture_default_str();
  cmd->add_option("--alphas", a->alphas, "Budgets α in (0, 1] (static methods use α = 1)")->capture_default_str();
  cmd->add_option("--ratios", a->ratios, "Ratios r of the bank to evaluate (default: comm.ratios)");
  cmd->add_option("--mode", a->mode, "hard (only kept tokens sent) | soft (every position sent, reference)")
      ->check(CLI::IsMember({"soft", "hard"}))
      ->capture_default_str();
  cmd->add_option("--split", a->split, "train | val | test")->capture_default_str();
  cmd->add_option("--batch-size", a->batch_size)->capture_default_str()->check(kFinitePositive);
  cmd->add_option("--max-batches", a->max_batches, "> 0: only the first batches (smoke runs)")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("--zetas", a->zetas, "ζ settings of the digital baselines")->capture_default_str();
  cmd->add_option("--backbone", a->backbone, "Clean ViT (model.safetensors + config.yaml beside it) that classifies "
                                             "what the digital baselines deliver (METHOD §6.3, Q7)");
  cmd->add_option("--per-image", a->per_image, "Digital baselines: one row per (method, image, zeta, snr_db): "
                                               "budget_bits, choice, bytes, fits");
  cmd->add_option("--shard", a->shard, "k/n: run the k-th (0-based) of n contiguous parts of the grid")->capture_default_str();
  cmd->add_option("-o,--out", a->out, "CSV: method,regime,channel,snr_db,ratio,alpha,zeta,kept_tokens,symbols,"
                                      "accuracy,n_images,seed,mode,kept_fraction (+ .json sidecar)")
      ->required();
  cmd->add_option("overrides", a->overrides, "key.sub=value overrides of the bank's config");
  cmd->footer(
      "Example: tokcom sweep --bank runs/fmnist-jscc --channels awgn,rayleigh --snr=-20:20:5 --alphas 0.25,0.5,1 \\\n"
      "           --ratios 0.1,0.5 -o runs/fmnist-sweep.csv\n"
      "Shards: tokcom sweep … --shard $SLURM_ARRAY_TASK_ID/8 -o part$SLURM_ARRAY_TASK_ID.csv; then tokcom merge part*.csv -o all.csv");
  set_action(cmd, [a] { run_sweep(*a); });

  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  CLI::App* merge = app.add_subcommand("merge", "Join sweep shard CSVs; refuses overlapping or missing cells");
  merge->add_option("inputs", *inputs, "Shard CSVs (each with its .json sidecar)")->required()->check(CLI::ExistingFile);
  merge->add_option("-o,--out", *out, "Merged CSV (+ .json)")->required();
  set_action(merge, [inputs, out] {
    merge_sweeps(*inputs, *out);
    spdlog::info("wrote {} from {} shard(s)", *out, inputs->size());
  });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(50, add_sweep);
}  // namespace tokcom::cli

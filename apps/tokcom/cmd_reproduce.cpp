// `tokcom reproduce`: the paper's study at our scale in one resumable command (issue "end to end"):
// backbone → adaptive → JSCC bank (every r, robust + noiseless) → ViT-AE bank → the sweep grid in
// local shards + merge (Figs 6–7) → digital baselines → proxy tables on the training split → the
// controller per regime and method (search, oracle, deployment: Table II, Fig. 8) → budget calibration
// and eval of the adaptive model (kept fraction vs α) → Fig. 9 → `tokcom report`.
// Every stage is a tokcom command run as a child (stages.h): a stage that finished is reused, a
// training stage that was killed resumes from its last epoch (--resume), a sweep loses at most the
// shard it was in. On a cluster, run the same commands as array jobs (scripts/slurm/).
#include <algorithm>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "command.h"
#include "stages.h"
#include "tokcom/comm/channel.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/sweep.h"
#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/report/report.h"
#include "tokcom/split/method.h"

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

struct ReproduceArgs {
  std::string config = "imagenette64", out, stages, device;
  // The scale (0: the full size): by default the config's `reproduce` section (configs/defaults/
  // reproduce.yaml); a flag given on the command line wins. A study that must fit a machine's time
  // shrinks these, not the method.
  int64_t sweep_shards = 0, jscc_epochs = 0, deploy_images = 0, adaptive_epochs = 0, mobilenet_epochs = 0;
  int64_t backbone_epochs = 0, jscc_batches = 0, sweep_batches = 0, proxy_batches = 0, jscc_warm_start = 0;
  int64_t teacher_epochs = 0, digital_shards = 1, backbone_lowres_epochs = 0, backbone_lowres_size = 64;
  std::string alphas, snr, proxy_snr, channels, scenarios, methods;
  std::string teacher_model, teacher_distill_hard, adaptive_distill_kl, adaptive_distill_tokens, adaptive_lr, device_model;
  std::string backbone_augment;
  bool fresh = false, quick = false, plan = false;
  int jobs = 1;  // stages side by side (run_plan)
  // Each scale knob: its key in the `reproduce` section and the flag that overrides it.
  struct Knob {
    std::string key;
    CLI::Option* option = nullptr;
    int64_t* int_value = nullptr;
    int64_t min = 0;  // ints: the smallest allowed value
    std::string* string_value = nullptr;
  };
  std::vector<Knob> knobs;

  // Whether the knob's flag was given on the command line (it then wins over the config and --quick).
  bool given(const std::string& key) const {
    for (const Knob& k : knobs)
      if (k.key == key) return k.option->count() > 0;
    return false;
  }
};

// Fills every scale knob not given as a flag from the config's `reproduce` section.
void apply_config_scale(const Config& config, ReproduceArgs* a) {
  for (auto& k : a->knobs) {
    if (k.option->count() > 0) continue;
    const std::string key = "reproduce." + k.key;
    if (!k.int_value) {
      *k.string_value = config.get_string(key);
      continue;
    }
    *k.int_value = config.get_int(key);
    if (*k.int_value < k.min) {
      throw ConfigError(
          fmt::format("config '{}': {} is {}, expected an int >= {}", config.name(), key, *k.int_value, k.min));
    }
  }
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ",") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

void run_reproduce(ReproduceArgs& a) {
  const Config config = Config::load(a.config);  // validates the config and the grids before hours of work
  apply_config_scale(config, &a);
  for (double alpha : parse_range(a.alphas, "--alphas")) {
    if (!(alpha > 0 && alpha <= 1)) throw UsageError(fmt::format("--alphas: {} is outside (0, 1]", alpha));
  }
  parse_range(a.snr, "--snr");
  parse_range(a.proxy_snr, "--proxy-snr");
  for (const auto& channel : split_channel_specs(a.channels)) make_channel(channel);
  for (const auto& scenario : split_scenarios(a.scenarios)) make_snr_process(scenario);
  // The study trains every method that has a bank; the digital codecs always run (stage digital).
  const std::string trainable = method_names([](const Method& m) { return m.has_bank(); });
  const std::vector<std::string> methods = split_list(a.methods);
  for (const auto& m : methods) {
    const Method* known = find_method(m);
    if (!known || !known->has_bank()) {
      throw UsageError(fmt::format("--methods: unknown method '{}' (expected some of {})", m, trainable));
    }
  }
  if (methods.empty()) throw UsageError("--methods: empty list (expected some of " + trainable + ")");
  auto wanted = [&](const std::string& m) { return std::find(methods.begin(), methods.end(), m) != methods.end(); };
  const std::string name = fs::path(a.config).stem().string();
  const std::string out = a.out.empty() ? "runs/reproduce-" + name : a.out;
  if (a.fresh && !a.plan && fs::exists(out)) fs::remove_all(out);
  if (!a.plan) fs::create_directories(out);
  const int64_t shards = std::max<int64_t>(1, a.sweep_shards);

  // Scale: the config's own epochs for stages 1–2 (METHOD §7 at our size), --jscc-epochs for each of
  // the 14 (r, regime) models and the ViT-AE bank; --quick shrinks everything to a smoke run.
  // (--quick shrinks the JSCC epochs and batches too, unless their flags are given: a smoke run
  // whose pairs have several epochs is how the resume test kills one mid-pair.)
  const std::string max_batches = a.quick && !a.given("jscc_batches") ? "3" : std::to_string(a.jscc_batches);
  const std::string sweep_batches = a.quick ? "1" : std::to_string(a.sweep_batches);
  const std::string jscc_epochs = a.quick && !a.given("jscc_epochs") ? "1" : std::to_string(a.jscc_epochs);
  std::vector<std::string> common = {};
  if (!a.device.empty()) common.push_back("train.device=" + a.device);
  const std::vector<std::string> quick = {"train.epochs=1", "train.max_batches=3"};
  // A JSCC stage's scale is its own (`jscc` below), --quick included; every other stage takes
  // --quick's.
  auto with_jscc = [&](std::vector<std::string> v, const std::vector<std::string>& extra) {
    v.insert(v.end(), extra.begin(), extra.end());
    v.insert(v.end(), common.begin(), common.end());
    return v;
  };
  auto with = [&](std::vector<std::string> v, const std::vector<std::string>& extra = {}) {
    v = with_jscc(std::move(v), extra);
    if (a.quick) v.insert(v.end(), quick.begin(), quick.end());
    return v;
  };
  // Fine-tuning stages start from trained weights: no warm-up for the banks, one epoch for the
  // adaptive stage (the presets' warm-up is for training from scratch).
  const std::vector<std::string> jscc = {"train.stage=jscc", "train.ratios=all", "comm.train_regime=both",
                                         "train.warmup_epochs=0",
                                         "train.epochs=" + jscc_epochs, "train.max_batches=" + max_batches,
                                         "train.jscc_warm_start_steps=" + std::to_string(a.quick ? 0 : a.jscc_warm_start)};
  const std::string alphas = a.quick ? "0.25,0.5,1" : a.alphas;
  const std::string snr = a.quick ? "0,20" : a.snr, proxy_snr = a.quick ? "0,10,20" : a.proxy_snr;
  const std::string zeta_max = "0.0025,0.005,0.01,0.02,0.05,0.1";
  const std::string zetas = "0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.5,1";
  const std::string deploy_images = a.quick ? "20" : std::to_string(a.deploy_images);
  const std::string bank = out + "/bank", vit_ae = out + "/vit-ae";

  std::vector<PlannedStage> plan;  // each stage with the earlier stages it reads
  // The stages among `names` that this plan holds (the banks of the methods asked for).
  auto present = [&plan](const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& n : names)
      if (std::any_of(plan.begin(), plan.end(), [&](const PlannedStage& st) { return st.name == n; })) out.push_back(n);
    return out;
  };
  const std::vector<std::string> backbone_epochs =
      a.quick || a.backbone_epochs == 0 ? std::vector<std::string>{}
                                        : std::vector<std::string>{"train.epochs=" + std::to_string(a.backbone_epochs)};
  // A convnet teacher for the ViT backbone (DeiT's recipe; docs/model.md "Training recipe"): its own
  // stage, from scratch; the backbone then distils from it with the config's train.distill_hard /
  // train.distill_kl.
  const std::string mobilenet = out + "/mobilenet";
  const std::vector<std::string> mobilenet_epochs =
      a.quick ? std::vector<std::string>{} : std::vector<std::string>{"train.epochs=" + std::to_string(a.mobilenet_epochs)};
  const PlannedStage mobilenet_stage{"mobilenet",
                                     with({"train", "--resume", "-c", a.config, "train.stage=backbone",
                                           "train.model=mobilenet", "train.lr=2e-3", "train.warmup_epochs=1",
                                           "data.augment=crop-flip", "train.out=" + mobilenet},
                                          mobilenet_epochs),
                                     {}};
  std::vector<std::string> backbone_teacher, backbone_reads;
  // teacher_model "baseline": the study's own MobileNetV3 baseline (the `mobilenet` stage, trained
  // anyway) is the teacher; no stage of its own.
  const bool baseline_teacher = a.teacher_model == "baseline";
  if (baseline_teacher) {
    plan.push_back(mobilenet_stage);
    backbone_teacher = {"train.teacher=" + out + "/mobilenet/model.safetensors",
                        "train.teacher_model=mobilenet-v3-" + config.get_string("mobilenet.variant")};
    backbone_reads = {"mobilenet"};
  } else if (a.teacher_epochs > 0) {
    const std::string variant = mobilenet_variant_from_model_name(a.teacher_model);  // ConfigError for another name
    const std::vector<std::string> teacher_epochs =
        a.quick ? std::vector<std::string>{} : std::vector<std::string>{"train.epochs=" + std::to_string(a.teacher_epochs)};
    plan.push_back({"teacher", with({"train", "--resume", "-c", a.config, "train.stage=backbone", "train.model=mobilenet",
                                     "mobilenet.variant=" + variant, "train.lr=2e-3", "train.warmup_epochs=1",
                                     "train.distill_hard=0", "train.distill_kl=0", "train.out=" + out + "/teacher"},
                                    teacher_epochs), {}});
    backbone_teacher = {"train.teacher=" + out + "/teacher/model.safetensors", "train.teacher_model=" + a.teacher_model};
    backbone_reads = {"teacher"};
  }
  if (!a.teacher_distill_hard.empty()) {
    if (backbone_teacher.empty())
      throw ConfigError("reproduce.teacher_distill_hard is set but the backbone has no teacher (set teacher_epochs, or "
                        "teacher_model: baseline)");
    backbone_teacher.push_back("train.distill_hard=" + a.teacher_distill_hard);
  }
  std::vector<std::string> backbone_extra = backbone_epochs;
  backbone_extra.insert(backbone_extra.end(), backbone_teacher.begin(), backbone_teacher.end());
  // The ViT backbone's own augmentation (both phases), apart from the study's data.augment that every
  // other stage trains with.
  std::vector<std::string> backbone_augment;
  if (!a.backbone_augment.empty()) {
    check_augment(a.backbone_augment, "reproduce.backbone_augment", " (or empty: the config's data.augment)");
    backbone_augment = {"data.augment=" + a.backbone_augment};
    backbone_extra.insert(backbone_extra.end(), backbone_augment.begin(), backbone_augment.end());
  }
  // Progressive resizing (docs/model.md "Other image sizes"): the backbone first trains at a lower
  // resolution, same patch size (fewer tokens, so each epoch is cheaper; no teacher, whose images are
  // the full ones), and the backbone stage starts from it, its pos_embed resampled to the full grid.
  if (a.backbone_lowres_epochs > 0) {
    const std::string size = std::to_string(a.backbone_lowres_size);
    const std::vector<std::string> lowres_epochs =
        a.quick ? std::vector<std::string>{} : std::vector<std::string>{"train.epochs=" + std::to_string(a.backbone_lowres_epochs)};
    std::vector<std::string> lowres_extra = lowres_epochs;
    lowres_extra.insert(lowres_extra.end(), backbone_augment.begin(), backbone_augment.end());
    plan.push_back({"backbone-lowres", with({"train", "--resume", "-c", a.config, "train.stage=backbone",
                                            "data.image_size=" + size, "model.image_size=" + size,
                                            "train.out=" + out + "/backbone-lowres"},
                                           lowres_extra), {}});
    backbone_extra.insert(backbone_extra.end(),
                          {"train.init=" + out + "/backbone-lowres/model.safetensors", "train.warmup_epochs=1"});
    backbone_reads.push_back("backbone-lowres");
  }
  plan.push_back({"backbone", with({"train", "--resume", "-c", a.config, "train.stage=backbone",
                                    "train.out=" + out + "/backbone"},
                                   backbone_extra), backbone_reads});
  // The adaptive stage distils from the backbone it starts from (self-distillation), with its own
  // weights; the backbone's teacher and hard-label term are not its.
  std::vector<std::string> adaptive_extra =
      a.quick ? std::vector<std::string>{}
              : std::vector<std::string>{"train.epochs=" + std::to_string(a.adaptive_epochs), "train.warmup_epochs=1"};
  // (Only where some distillation is asked for, so the plans of configs without any stay as they were.)
  const bool distills = a.teacher_epochs > 0 || baseline_teacher || a.adaptive_distill_kl != "0" || a.adaptive_distill_tokens != "0" ||
                        config.get_double("train.distill_hard") > 0 || config.get_double("train.distill_kl") > 0 ||
                        config.get_double("train.distill_tokens") > 0;
  if (distills) {
    adaptive_extra.insert(adaptive_extra.end(),
                          {"train.teacher=", "train.teacher_model=same", "train.distill_hard=0",
                           "train.distill_kl=" + a.adaptive_distill_kl, "train.distill_tokens=" + a.adaptive_distill_tokens});
  }
  // The backbone weights' peak learning rate in the adaptive stage (the selection's is train.selection_lr):
  // a fine-tune of a trained backbone, which the backbone's own peak rate undoes (docs/RESULTS.md).
  if (!a.adaptive_lr.empty()) {
    const std::optional<double> lr = parse_double(a.adaptive_lr);
    if (!lr || *lr <= 0) {
      throw ConfigError("reproduce.adaptive_lr: expected a positive number (or empty: the config's train.lr), got '" +
                        a.adaptive_lr + "'");
    }
    adaptive_extra.push_back("train.lr=" + a.adaptive_lr);
  }
  plan.push_back({"adaptive", with({"train", "--resume", "-c", a.config, "train.stage=adaptive",
                                    "train.init=" + out + "/backbone/model.safetensors", "train.out=" + out + "/adaptive"},
                                   adaptive_extra), {"backbone"}});
  // The budget calibration (docs/model.md) on the training split. With reproduce.device_model
  // calibrated-capped it is the device half of the proposal's bank, with the cap: every α in every
  // later CSV is then what was sent (kept within 0.05 of α where the model can drop that much).
  const bool capped = a.device_model == "calibrated-capped";
  if (!capped && a.device_model != "adaptive") {
    throw ConfigError(fmt::format("reproduce.device_model is '{}', expected adaptive | calibrated-capped", a.device_model));
  }
  plan.push_back({"calibrated", {"calibrate", "--checkpoint", out + "/adaptive/model.safetensors", "--images",
                                 a.quick ? "128" : "1024", "--budgets", "0.01:0.99:0.02", "-o", out + "/calibrated"},
                  {"adaptive"}});
  const std::string device_model = capped ? "calibrated" : "adaptive";
  std::vector<std::string> bank_command = {"train", "--resume", "-c", out + "/" + device_model + "/config.yaml",
                                           "train.init=" + out + "/" + device_model + "/model.safetensors",
                                           "train.out=" + bank};
  if (capped) bank_command.push_back("model.budget_cap=true");
  // The proposal's links train at the preset's train.lr, as ViT-AE's (whose config is the backbone's)
  // and MobileNetV3's do: reproduce.adaptive_lr is the rate for fine-tuning the backbone weights and
  // must not reach the bank through the adaptive model's config. (At 128 px it did once: the robust
  // link at r = 0.05 kept 62 % of its clean model at 3e-4 and 80 % at 1e-3, docs/results/jscc-lr-128.)
  if (!a.adaptive_lr.empty()) bank_command.push_back("train.lr=" + config.get_string("train.lr"));
  if (wanted("proposal")) plan.push_back({"bank", with_jscc(bank_command, jscc), {device_model}});
  if (wanted("vit-ae")) plan.push_back({"vit-ae", with_jscc({"train", "--resume", "-c", out + "/backbone/config.yaml",
                                  "train.init=" + out + "/backbone/model.safetensors", "train.out=" + vit_ae,
                                  "model.adaptive_blocks=[]"},
                                 jscc), {"backbone"}});
  // MobileNetV3 baselines (METHOD §6.2): backbone from scratch (docs/mobilenet.md's recipe), then the
  // flat and CNN JSCC banks on its frozen device half. (Planned before the ViT backbone when it is that
  // backbone's teacher.)
  if ((wanted("mobilenet-flat") || wanted("mobilenet-cnn")) && !baseline_teacher) plan.push_back(mobilenet_stage);
  for (const std::string method : {"mobilenet-flat", "mobilenet-cnn"}) {
    if (!wanted(method)) continue;
    plan.push_back({method, with_jscc({"train", "--resume", "-c", mobilenet + "/config.yaml", "train.method=" + method,
                                  "train.init=" + mobilenet + "/model.safetensors", "train.out=" + out + "/" + method,
                                  "train.lr=1e-3", "data.augment=randaugment"},
                                 jscc), {"mobilenet"}});
  }
  std::vector<std::string> neural_banks;
  std::vector<std::string> swept, bank_stages;  // in the registry's order, whatever the order of --methods
  for (const Method& m : tokcom::methods()) {
    if (!m.has_bank() || !wanted(m.name)) continue;
    neural_banks.insert(neural_banks.end(), {m.bank_flag, out + "/" + m.stage});
    swept.push_back(m.name);
    bank_stages.push_back(m.stage);
  }
  const std::string neural_methods = join(swept);
  auto sweep_args = [&](std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.end(), neural_banks.begin(), neural_banks.end());
    head.insert(head.end(), {"--methods", neural_methods});
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  // A grid run as `n` shards, each its own resumable stage <name>/part-k-of-n writing <file> in its
  // folder, then <name>/merged: `tokcom merge` of the parts into <out>/<name>/<file> (an interrupted
  // session loses at most the shard it was in).
  auto add_sharded = [&](const std::string& name, int64_t n, const std::string& file,
                         const std::function<std::vector<std::string>(const std::string& shard, const std::string& path)>& command,
                         const std::vector<std::string>& reads) {
    std::vector<std::string> merge = {"merge"}, part_stages;
    for (int64_t k = 0; k < n; ++k) {
      const std::string stage = fmt::format("{}/part-{}-of-{}", name, k, n);
      const std::string path = out + "/" + stage + "/" + file;
      plan.push_back({stage, command(fmt::format("{}/{}", k, n), path), reads});
      merge.push_back(path);
      part_stages.push_back(stage);
    }
    merge.insert(merge.end(), {"-o", out + "/" + name + "/" + file});
    plan.push_back({name + "/merged", merge, part_stages});
  };
  add_sharded("sweep", shards, "sweep.csv", [&](const std::string& shard, const std::string& path) {
    return sweep_args({"sweep"}, {"--regimes", "robust,noiseless", "--channels", a.channels, "--snr=" + snr, "--alphas",
                                  alphas, "--max-batches", sweep_batches, "--shard", shard, "-o", path});
  }, bank_stages);
  // The digital baselines: one stage `digital` (as the 64-px study ran), or shards where the preset
  // says so (at 128 px the codecs' searches, AVIF's above all, take hours over the validation split).
  auto digital = [&](const std::string& shard, const std::string& path) {
    std::vector<std::string> v = {"sweep", "--methods", "resize,jpeg,webp,avif", "--backbone",
                                  out + "/backbone/model.safetensors", "--channels", "awgn", "--snr=" + snr, "--zetas",
                                  zetas, "--max-batches", sweep_batches};
    if (!shard.empty()) v.insert(v.end(), {"--shard", shard});
    v.insert(v.end(), {"-o", path});
    return v;
  };
  if (a.digital_shards > 1) add_sharded("digital", a.digital_shards, "digital.csv", digital, {"backbone"});
  else plan.push_back({"digital", digital("", out + "/digital/digital.csv"), {"backbone"}});
  // Proxy tables on the training split (the paper's text; METHOD §8.2), both regimes, both ViT methods.
  plan.push_back({"proxy", sweep_args({"sweep"}, {"--regimes", "robust,noiseless", "--channels", "awgn",
                                                  "--snr=" + proxy_snr, "--alphas", alphas, "--split", "train",
                                                  "--max-batches", a.quick ? "1" : std::to_string(a.proxy_batches), "-o",
                                                  out + "/proxy/proxy.csv"}),
                  bank_stages});
  for (const std::string method : {"proposal", "vit-ae", "mobilenet-cnn"}) {
    if (!wanted(method)) continue;
    for (const std::string regime : {"robust", "noiseless"}) {
      const std::string bank_stage = method_named(method, "reproduce").stage;
      std::vector<std::string> args = {"optimize", "--table", out + "/proxy/proxy.csv", "--method", method, "--regime",
                                       regime, "--channel", "awgn", "--zeta-max", zeta_max, "--bank",
                                       out + "/" + bank_stage,
                                       "--deploy-images", deploy_images, "-o",
                                       fmt::format("{}/control/{}-{}", out, method, regime)};
      if (a.quick) args.insert(args.end(), {"--scenarios", "gauss:10,2.5", "--T", "500", "--window", "100"});
      else if (!a.scenarios.empty()) args.insert(args.end(), {"--scenarios", a.scenarios});
      plan.push_back({fmt::format("control/{}-{}", method, regime), args, present({"proxy", bank_stage})});
    }
  }
  // Both models' hard kept fraction and accuracy per α on the val split: the kept-fraction-tracks-α evidence.
  for (const std::string model : {"adaptive", "calibrated"}) {
    for (const std::string mode : {"hard", "soft"}) {
      plan.push_back({fmt::format("eval/{}-{}", model, mode),
                      {"eval", "--checkpoint", out + "/" + model + "/model.safetensors", "--alphas",
                       "0.1,0.25,0.5,0.75,1", "--mode", mode, "--max-batches", a.quick ? "2" : "0", "-o",
                       fmt::format("{}/eval/{}-{}.csv", out, model, mode)},
                      {model}});
    }
  }
  // The same calibrated model with the budget cap (docs/model.md): α becomes an upper bound.
  for (const std::string mode : {"hard", "soft"}) {
    plan.push_back({fmt::format("eval/calibrated-capped-{}", mode),
                    {"eval", "--checkpoint", out + "/calibrated/model.safetensors", "--alphas", "0.1,0.25,0.5,0.75,1",
                     "--mode", mode, "--max-batches", a.quick ? "2" : "0", "-o",
                     fmt::format("{}/eval/calibrated-capped-{}.csv", out, mode), "model.budget_cap=true"},
                    {"calibrated"}});
  }
  plan.push_back({"fig9", {"visualize", "--checkpoint", out + "/adaptive/model.safetensors", "--alphas",
                           "0.25,0.5,0.75", "-o", out + "/fig9/fig9.png"},
                  {"adaptive"}});

  Stages stages("reproduce", out, static_cast<int>(plan.size()));
  if (a.plan) stages.set_dry_run(true);
  const std::vector<std::string> selected = split_list(a.stages);
  run_plan(stages, plan, selected, a.jobs);
  if (a.plan) {
    std::fprintf(stderr, "reproduce: plan only (--plan); nothing was run\n");
    return;
  }
  if (!selected.empty()) {
    std::fprintf(stderr, "reproduce: the selected stages are done; run the rest, or `tokcom report %s`\n", out.c_str());
    return;
  }
  std::fprintf(stderr, "[reproduce] report\n  $ tokcom report %s\n", out.c_str());
  const report::ReportFiles files = report::write_report(report::load_run(out), cli_report_options());
  std::fprintf(stderr, "reproduce: done; report: %s and %s\n", files.markdown.c_str(), files.html.c_str());
}

void add_reproduce(CLI::App& app) {
  auto a = std::make_shared<ReproduceArgs>();
  CLI::App* cmd = app.add_subcommand(
      "reproduce",
      "The paper's whole study at our scale, resumable: every stage, both regimes, the sweep grid,\n"
      "proxy tables, the controller (Table II, Fig. 8), Fig. 9. Rerun the same command after an interruption.");
  cmd->add_option("-c,--config", a->config, "Named config or YAML path (imagenette64 | deit-tiny-224 | ...)")
      ->capture_default_str();
  cmd->add_option("-o,--out", a->out, "Output folder (default runs/reproduce-<config>)");
  // Scale knobs: default from the config's `reproduce` section, the flag wins.
  auto add_knob = [&](const std::string& key, auto* value, const std::string& help) {
    std::string flag = "--" + key;  // backbone_epochs → --backbone-epochs
    std::replace(flag.begin(), flag.end(), '_', '-');
    return cmd->add_option(flag, *value, help + "\n(default: the config's reproduce." + key + ")");
  };
  auto knob_int = [&](const std::string& key, int64_t* value, int64_t min, const std::string& help) {
    CLI::Option* o = add_knob(key, value, help)
                         ->check(finite_number([min](double v) { return v >= static_cast<double>(min); },
                                               fmt::format("a number >= {}", min), fmt::format(">= {}", min)));
    a->knobs.push_back({key, o, value, min, nullptr});
  };
  auto knob_string = [&](const std::string& key, std::string* value, const std::string& help) {
    a->knobs.push_back({key, add_knob(key, value, help), nullptr, 0, value});
  };
  knob_int("sweep_shards", &a->sweep_shards, 1, "Local shards of the sweep (each its own resumable stage)");
  knob_int("digital_shards", &a->digital_shards, 1,
           "Local shards of the digital baselines' sweep (1: one stage `digital`; more: parts + merge)");
  knob_int("jscc_epochs", &a->jscc_epochs, 1, "Epochs of each (r, regime) JSCC model and of the ViT-AE bank");
  knob_int("adaptive_epochs", &a->adaptive_epochs, 1, "Epochs of the adaptive stage (from the backbone)");
  knob_int("mobilenet_epochs", &a->mobilenet_epochs, 1, "Epochs of the MobileNetV3 backbone (from scratch)");
  knob_int("deploy_images", &a->deploy_images, 0, "Images per deployment run (0: the whole validation split)");
  knob_int("backbone_epochs", &a->backbone_epochs, 0, "Epochs of the ViT backbone (0: the config's train.epochs)");
  knob_int("backbone_lowres_epochs", &a->backbone_lowres_epochs, 0,
           "Epochs of a low-resolution phase the ViT backbone starts from (progressive resizing; 0: none)");
  knob_int("backbone_lowres_size", &a->backbone_lowres_size, 1,
           "Image size of that phase (a multiple of model.patch_size)");
  knob_string("backbone_augment", &a->backbone_augment,
              "Augmentation of the ViT backbone, both phases: none | crop-flip | randaugment (empty: the\n"
              "config's data.augment, which every other stage trains with)");
  knob_int("teacher_epochs", &a->teacher_epochs, 0,
           "Epochs of the convnet teacher the ViT backbone distils from (0: no teacher stage; the weights\n"
           "are the config's train.distill_hard / train.distill_kl)");
  knob_string("teacher_model", &a->teacher_model,
              "The teacher: mobilenet-v3-small | mobilenet-v3-large (a teacher stage of teacher_epochs) |\n"
              "baseline (the study's MobileNetV3 baseline, the mobilenet stage: no stage of its own)");
  knob_string("teacher_distill_hard", &a->teacher_distill_hard,
              "Weight of the backbone's hard-label distillation from its teacher (train.distill_hard;\n"
              "empty: the config's)");
  knob_string("adaptive_distill_kl", &a->adaptive_distill_kl,
              "Adaptive stage: weight of the KL to the backbone's logits (train.distill_kl; 0 = off)");
  knob_string("adaptive_distill_tokens", &a->adaptive_distill_tokens,
              "Adaptive stage: weight of the kept tokens' distillation (train.distill_tokens; 0 = off)");
  knob_string("adaptive_lr", &a->adaptive_lr,
              "Adaptive stage: peak learning rate of the backbone weights (train.lr; empty: the config's;\n"
              "the selection's own is train.selection_lr)");
  knob_int("jscc_batches", &a->jscc_batches, 0, "Batches per epoch of every JSCC model (0: the whole training split)");
  knob_int("jscc_warm_start", &a->jscc_warm_start, 0,
           "Steps of each JSCC model's warm start (the codec alone learns to carry the device's output\n"
           "before the CE epochs; 0: the reference's cold start; train.jscc_warm_start_steps)");
  knob_int("sweep_batches", &a->sweep_batches, 0, "Batches (of 256) per sweep cell (0: the whole validation split)");
  knob_int("proxy_batches", &a->proxy_batches, 1, "Batches (of 256) of the training split per proxy-table cell");
  knob_string("alphas", &a->alphas, "Budgets α of the sweep and the proxy tables");
  knob_string("snr", &a->snr, "SNRs of the sweep (Figs 6-7), start:stop:step or a list");
  knob_string("proxy_snr", &a->proxy_snr, "SNR grid of the proxy tables");
  knob_string("channels", &a->channels, "Channels of the sweep");
  knob_string("methods", &a->methods,
              "Neural methods trained, swept and controlled (a study that must fit a machine's time may drop\n"
              "baselines; the digital ones always run)");
  knob_string("scenarios", &a->scenarios, "SNR scenarios of the controller (empty: the paper's five)");
  knob_string("device_model", &a->device_model,
              "Device half of the proposal's bank: adaptive (the adaptive stage's model) | calibrated-capped\n"
              "(its budget calibration with model.budget_cap: every α in the CSVs is what was sent)");
  cmd->add_option("--stages", a->stages, "Only these stages, comma list (e.g. backbone,adaptive or sweep)");
  cmd->add_option("--device", a->device, "train.device for every stage (cpu | cuda)");
  cmd->add_option("--jobs", a->jobs,
                  "Stages run side by side, each once the stages it reads are done, the cores shared\n"
                  "among them (small models train faster as 2 one-thread processes than as one 2-thread one)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--quick", a->quick, "Smoke run: one tiny epoch per stage, one batch per sweep cell");
  cmd->add_flag("--plan", a->plan,
                "Print every stage's command and whether it would be reused or run, then exit (runs nothing)");
  cmd->add_flag("--fresh", a->fresh, "Delete the output folder first (otherwise finished stages are reused)");
  cmd->footer("Example: tokcom reproduce --config configs/imagenette64.yaml   # then: tokcom report runs/reproduce-imagenette64");
  set_action(cmd, [a] { run_reproduce(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(6, add_reproduce);
}  // namespace tokcom::cli

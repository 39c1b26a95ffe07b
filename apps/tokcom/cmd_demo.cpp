// `tokcom demo`: the whole method in one command, at a small scale. Each stage is a tokcom command
// (printed before it runs, so the demo also teaches the CLI), run as a child of this binary; a
// stage whose command and inputs did not change since its last success is reused (its folder
// holds .done with the command's digest); --fresh starts over.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "command.h"
#include "stages.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/report/report.h"

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

struct DemoArgs {
  std::string dataset = "fashion-mnist", out;
  bool fresh = false, quick = false;
  // Two stage chains at once with one thread each (the ViT chain and the MobileNetV3 one): these small
  // models use two one-thread processes better than one two-thread process (docs/PERF.md); a long
  // stage that starts alone gets both cores (run_plan).
  int jobs = 2;
};

void run_demo(const DemoArgs& a) {
  const bool fmnist = a.dataset == "fashion-mnist";
  const std::string preset = fmnist ? "fmnist" : "imagenette64";
  const std::string out = a.out.empty() ? "runs/demo-" + a.dataset : a.out;
  if (a.fresh && fs::exists(out)) fs::remove_all(out);
  fs::create_directories(out);
  // Small everything: a few epochs, subsets of the training set per JSCC epoch, 2,048 test images.
  // --quick (tests, smoke runs): one epoch of 4 batches per stage, one 64-image batch per sweep cell.
  const std::string epochs_backbone = a.quick ? "1" : fmnist ? "3" : "4", epochs_adaptive = a.quick ? "1" : "2";
  const std::string jscc_batches = a.quick ? "2" : fmnist ? "120" : "40";
  const std::string train_batches = a.quick ? "4" : "0", sweep_batches = a.quick ? "1" : "8",
                    sweep_batch_size = a.quick ? "64" : "256", deploy_images = a.quick ? "20" : "300",
                    slots = a.quick ? "500" : "5000", window = a.quick ? "100" : "1000";
  const std::string ratios = "0.01,0.1,0.5", zetas = fmnist ? "0.01,0.02,0.05,0.1,0.2,0.5" : "0.001,0.005,0.01,0.05,0.1";
  const std::string zeta_max = fmnist ? "0.02,0.05,0.1" : "0.005,0.01,0.05";
  const std::vector<std::string> jscc = {"train.stage=jscc", "train.ratios=" + ratios, "comm.train_regime=both",
                                         "train.epochs=1", "train.max_batches=" + jscc_batches, "train.optimizer=adam",
                                         "train.lr=1e-3", "train.schedule=constant", "train.warmup_epochs=0",
                                         "train.label_smoothing=0", "comm.input_values=0"};
  auto with = [](std::vector<std::string> v, const std::vector<std::string>& extra) {
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  };
  // The pipeline, each stage with the earlier stages it reads (rerun when one of them reruns).
  std::vector<PlannedStage> plan;
  plan.push_back({"backbone", {"train", "-c", preset, "train.stage=backbone", "train.epochs=" + epochs_backbone,
                     "train.max_batches=" + train_batches, "train.out=" + out + "/backbone"}, {}});
  plan.push_back({"adaptive", {"train", "-c", preset, "train.stage=adaptive", "train.epochs=" + epochs_adaptive,
                     "train.max_batches=" + train_batches, "train.init=" + out + "/backbone/model.safetensors",
                     "train.out=" + out + "/adaptive"}, {"backbone"}});
  plan.push_back({"bank", with({"train", "-c", out + "/adaptive/config.yaml", "train.init=" + out + "/adaptive/model.safetensors",
                      "train.out=" + out + "/bank"},
                     jscc), {"adaptive"}});
  plan.push_back({"vit-ae", with({"train", "-c", out + "/backbone/config.yaml", "train.init=" + out + "/backbone/model.safetensors",
                        "train.out=" + out + "/vit-ae", "model.adaptive_blocks=[]"},
                       jscc), {"backbone"}});
  // The paper's strongest neural baseline: MobileNetV3-Small with the CNN JSCC on its frozen device half.
  plan.push_back({"mobilenet", {"train", "-c", preset, "train.stage=backbone", "train.model=mobilenet", "train.lr=2e-3",
                      "train.epochs=" + epochs_backbone, "train.max_batches=" + train_batches,
                      "train.out=" + out + "/mobilenet"}, {}});
  plan.push_back({"mobilenet-cnn", with({"train", "-c", out + "/mobilenet/config.yaml", "train.method=mobilenet-cnn",
                               "train.init=" + out + "/mobilenet/model.safetensors", "train.out=" + out + "/mobilenet-cnn"},
                              jscc), {"mobilenet"}});
  plan.push_back({"sweep", {"sweep", "--bank", out + "/bank", "--vit-ae-bank", out + "/vit-ae", "--mobilenet-cnn-bank",
                  out + "/mobilenet-cnn", "--methods", "proposal,vit-ae,mobilenet-cnn",
                  "--regimes", "robust,noiseless", "--ratios", ratios, "--channels", "awgn", "--snr", "0,10,20",
                  "--alphas", "0.1,0.25,0.5,0.75,1", "--max-batches", sweep_batches, "--batch-size", sweep_batch_size,
                  "-o", out + "/sweep/sweep.csv"}, {"bank", "vit-ae", "mobilenet-cnn"}});
  plan.push_back({"digital", {"sweep", "--methods", "resize,jpeg", "--backbone", out + "/backbone/model.safetensors", "--channels",
                    "awgn", "--snr", "0,10,20", "--zetas", zetas, "--max-batches", sweep_batches, "--batch-size",
                    sweep_batch_size, "-o",
                    out + "/digital/digital.csv", "comm.input_values=0"}, {"backbone"}, /*brief=*/true});
  plan.push_back({"proxy", {"sweep", "--bank", out + "/bank", "--regimes", "robust", "--ratios", ratios, "--channels", "awgn",
                  "--snr=-10:30:5", "--alphas", "0.001,0.01,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", "--split", "train",
                  "--max-batches", sweep_batches, "--batch-size", sweep_batch_size, "-o", out + "/proxy/proxy.csv"}, {"bank"}});
  plan.push_back({"control", {"optimize", "--table", out + "/proxy/proxy.csv", "--method", "proposal", "--regime", "robust",
                    "--channel", "awgn", "--scenarios", "gauss:10,2.5", "fixed:20", "--zeta-max", zeta_max, "--T", slots,
                    "--window", window, "--bank", out + "/bank", "--deploy-images", deploy_images, "-o",
                    out + "/control"}, {"proxy", "bank"}, /*brief=*/true});

  plan.push_back({"fig9", {"visualize", "--checkpoint", out + "/adaptive/model.safetensors", "--alphas", "0.1,0.25,0.5,0.75",
                 "--count", a.quick ? "2" : "8", "-o", out + "/fig9/fig9.png"}, {"adaptive"}, /*brief=*/true});

  const int total = static_cast<int>(plan.size()) + 1;  // + the report
  Stages s("demo", out, total);
  run_plan(s, plan, {}, a.jobs);

  // Report (`tokcom report` on the folder), a README with the headline tables, and the summary in the terminal.
  std::fprintf(stderr, "[demo %d/%d] report\n  $ tokcom report %s\n", total, total, out.c_str());
  const report::RunData run = report::load_run(out);
  const report::ReportFiles files = report::write_report(run, cli_report_options());
  const std::string at20 = report::accuracy_table(run, "awgn", 20), at10 = report::accuracy_table(run, "awgn", 10);
  const std::string deploy = report::deployment_table(run);
  const std::string readme = fmt::format(
      "# tokcom demo ({0})\n\nGenerated by `tokcom demo --dataset {0}`; the full report (figures, training curves, "
      "Table II beside the paper's numbers, timing, provenance) is [report.md](report.md) and the self-contained "
      "[report.html](report.html); `tokcom report {5}` regenerates both from the files. Rerun reuses finished stages, "
      "`--fresh` starts over. Small scale: a few epochs, JSCC ratios {1}.\n\n"
      "## Accuracy vs ζ over AWGN (best over each method's decisions)\n\n### 20 dB\n\n{2}### 10 dB\n\n{3}"
      "## Controller on the real model (deployment, batch 1, {4} images per run)\n\n{6}",
      a.dataset, ratios, at20, at10, deploy_images, out, deploy);
  write_file_atomic(out + "/README.md", readme);
  std::printf("\nAccuracy at 20 dB AWGN (best over each method's decisions, ζ = channel uses / input values):\n\n%s\n",
              at20.c_str());
  std::printf("Controller on the real model (deployment; accuracy, constrained accuracy, mean ζ vs ζ_max):\n\n%s\n",
              deploy.c_str());
  std::printf("Report: %s and %s (%zu figures); summary: %s/README.md\n", files.markdown.c_str(), files.html.c_str(),
              files.figures.size(), out.c_str());
}

void add_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "The whole method at small scale: train every stage, sweep, proxy table, controller, report");
  cmd->add_option("--dataset", a->dataset, "fashion-mnist (installed by setup.sh) | imagenette (the shipped 64-px tarball)")
      ->check(CLI::IsMember({"fashion-mnist", "imagenette"}))
      ->capture_default_str();
  cmd->add_option("-o,--out", a->out, "Output folder (default runs/demo-<dataset>)");
  cmd->add_option("--jobs", a->jobs, "Stages run side by side, the cores shared among them (1: one after another)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--quick", a->quick, "Smoke run: one tiny epoch per stage, 64 images per sweep cell (minutes)");
  cmd->add_flag("--fresh", a->fresh, "Delete the output folder first (otherwise finished stages are reused)");
  cmd->footer("Stages: backbone → adaptive → JSCC bank (robust + noiseless) → ViT-AE → sweep → digital baselines →\n"
              "proxy table (training split) → controller search + deployment → token-selection picture (fig9) →\n"
              "report (`tokcom report`: report.md, report.html, README.md).");
  set_action(cmd, [a] { run_demo(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(5, add_demo);
}  // namespace tokcom::cli

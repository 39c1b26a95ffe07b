// `tokcom optimize`: the Lyapunov controller driven by a proxy table (METHOD §8). Table-driven mode:
// --simulate runs one (V, μ) on the proxy simulation and writes the per-slot trace; without
// --V/--mu it searches the (V, μ) grid per --zeta-max and scenario and reports the oracle bound.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "command.h"
#include "optimize_args.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/text.h"
#include "tokcom/control/optimize.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/control/synthetic_table.h"
#include "tokcom/comm/channel.h"
#include "tokcom/control/deploy.h"
#include "tokcom/control/simulate.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/net/client.h"
#include "tokcom/split/proposal.h"

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

// Continues each picked controller on the real model (batch 1, hard mode), `repeats` times
// (default: 3 for random scenarios, 1 for fixed SNRs) and writes DIR/deploy/trace_*.csv and
// DIR/deploy_summary.csv (+ .json).
struct Deployment {
  Config config;
  SplitModel model;
  std::unique_ptr<Channel> channel;
  ImageDataset data;
  DeployOptions options;
  std::unique_ptr<RemoteDecider> remote;  // `tokcom device --controller server`
  std::shared_ptr<net::EdgeClient> client;  // `tokcom device`: its stream, closed cleanly at the end
  int64_t repeats = 0;
  std::string out;
  csv::Writer rows{deploy_schema()};

  void run(const std::string& scenario, double zeta_max, const LyapunovController& picked) {
    auto process = make_snr_process(scenario);
    const int64_t n = repeats > 0 ? repeats : (scenario.rfind("fixed", 0) == 0 ? 1 : 3);
    fs::create_directories(out + "/deploy");
    for (int64_t r = 0; r < n; ++r) {
      LyapunovController c = picked;  // every repeat continues from the post-simulation queue
      std::vector<SlotRecord> trace;
      const DeploySummary s =
          deploy(model, *channel, c, *process, data, config, options, static_cast<uint64_t>(r), &trace, remote.get());
      write_trace_csv(fmt::format("{}/deploy/trace_{}_zmax{}_rep{}.csv", out, csv::file_slug(scenario), zeta_max, r), trace);
      rows.text(scenario).number(zeta_max).integer(r).number(c.options().tradeoff).number(c.options().queue_step);
      rows.fixed(s.accuracy, 6).fixed(s.constrained_accuracy, 6).number(s.zeta, 8).integer(s.slots);
      rows.number(s.queue_final, 8).end_row();
      spdlog::info("deploy {} zeta_max={} repeat {}: accuracy {:.4f}, constrained {:.4f}, mean zeta {:.5f} ({} slots)",
                   scenario, zeta_max, r, s.accuracy, s.constrained_accuracy, s.zeta, s.slots);
    }
    rows.write(out + "/deploy_summary.csv");
  }
};

}  // namespace

void run_optimize(const OptimizeArgs& a) {
  if (a.table.empty() == !a.synthetic)
    throw UsageError("optimize: give exactly one of --table FILE or --synthetic");
  OptimizeRequest q;  // the flags first: a mistake there costs no file reading
  q.table_path = a.synthetic ? "<synthetic>" : a.table;
  q.zeta_max = parse_number_list(a.zeta_max, "--zeta-max");
  q.search.tradeoffs = parse_number_list(a.v_grid, "--V-grid");
  q.search.queue_steps = parse_number_list(a.mu_grid, "--mu-grid");
  const ProxyTable table = a.synthetic ? make_synthetic_table()
                                       : ProxyTable::read_csv(a.table, ProxyFilter{a.method, a.channel, a.regime});
  if (!a.write_table.empty()) table.write_csv(a.write_table);

  q.search.slots = a.slots;
  q.search.window = a.window;
  q.search.interpolate = a.interpolate;
  q.selection = parse_selection_rule(a.selection);
  q.oracle_samples = a.oracle_samples;
  q.plots = !a.no_plots;
  q.out_dir = a.out;
  // The global --seed (main seeds LibTorch's default generator with it): read it back, so one
  // seed drives every random stream of a run.
  q.seed = at::detail::getDefaultCPUGenerator().current_seed();
  const int sources = !a.scenario.empty() + !a.scenarios.empty() + !a.snr_trace.empty();
  if (sources > 1) throw ConfigError("optimize: give only one of --scenario, --scenarios, --snr-trace");
  if (!a.snr_trace.empty()) {
    q.scenarios = {"trace:" + a.snr_trace};
  } else if (!a.scenario.empty()) {
    q.scenarios = {a.scenario};
  } else if (!a.scenarios.empty()) {
    for (const auto& item : a.scenarios)
      for (const auto& spec : split_scenarios(item)) q.scenarios.push_back(spec);
  } else {
    q.scenarios = paper_scenarios();
  }
  const bool pair_given = !std::isnan(a.tradeoff) || !std::isnan(a.queue_step);
  if (pair_given) {
    if (std::isnan(a.tradeoff) || std::isnan(a.queue_step))
      throw ConfigError("optimize: give both --V and --mu (or neither, to search the grid)");
    q.tradeoff = a.tradeoff;
    q.queue_step = a.queue_step;
  }
  std::unique_ptr<Deployment> deployment;
  if (!a.bank.empty()) {
    deployment = std::make_unique<Deployment>();
    const std::string cfg = a.bank + "/config.yaml";
    if (!fs::exists(cfg)) throw ConfigError(cfg + ": not found (--bank must be a folder written by train.stage=jscc)");
    deployment->config = Config::load(cfg, a.overrides);
    deployment->options.device = torch::Device(deployment->config.get_string("train.device"));
    deployment->options.max_images = a.deploy_images;
    deployment->options.seed = q.seed;
    require_counted_token_scale(deployment->config, "a deployment (optimize --bank, device)");
    deployment->model = load_split(deployment->config, a.bank, table.method(), table.regime(), table.ratios(),
                                   SelectionMode::kHard, deployment->options.device);
    if (!a.server.address.empty()) {
      // `tokcom device`: the server half is a real edge server; the channel stays here, at the
      // sender, so the server decodes what a receiver would.
      auto client = std::make_shared<net::EdgeClient>(a.server);
      if (client->served().method != deployment->model.device->method() || client->served().mode != "hard") {
        throw UsageError(fmt::format("server {} serves '{}' in {} mode; this device sends '{}' in hard mode",
                                     a.server.address, client->served().method, client->served().mode,
                                     deployment->model.device->method()));
      }
      if (client->served().input_values != deployment->model.input_values) {
        throw UsageError(fmt::format("server {} counts zeta against n = {}, this device's model has n = {}",
                                     a.server.address, client->served().input_values,
                                     deployment->model.input_values));
      }
      deployment->client = client;
      auto remote_server = std::make_shared<net::RemoteServer>(client, table.ratios());
      deployment->model.server = remote_server;
      deployment->options.note = [remote_server, labels = a.send_labels](const SlotNote& n) {
        remote_server->note(n, labels);
      };
      if (a.server_controller) deployment->remote = std::make_unique<net::RemoteController>(client, table.ratios());
    }
    deployment->channel = make_channel(table.channel());
    deployment->data = load_dataset(deployment->config, a.deploy_split);
    deployment->repeats = a.repeats;
    deployment->out = a.out;
    fs::create_directories(a.out);
    deployment->config.save(a.out + "/deploy.config.yaml");
    Deployment* d = deployment.get();
    q.after_pick = [d](const std::string& scenario, double zeta_max, const LyapunovController& c) {
      d->run(scenario, zeta_max, c);
    };
  }
  if (a.simulate || pair_given) {
    if (!pair_given) throw ConfigError("optimize --simulate needs --V and --mu");
    fs::create_directories(a.out);
    run_optimize_simulation(table, q);
  } else {
    run_optimize_search(table, q);
  }
  // The device is done: half-close the stream and take the server's status (OK), instead of
  // cancelling it when the client goes away.
  if (deployment && deployment->client) deployment->client->finish();
}

namespace {

void add_optimize(CLI::App& app) {
  auto a = std::make_shared<OptimizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "optimize",
      "Lyapunov controller on a proxy table (METHOD §8): simulate one (V, mu) or search the grid, with\n"
      "the oracle bound. Table CSV columns: method,channel,regime,snr_db,ratio,budget,zeta,accuracy");
  cmd->add_option("--table", a->table, "Proxy table CSV (any table in the schema, e.g. from your system)");
  cmd->add_option("--method", a->method, "Keep rows of this method (needed when the CSV holds several)");
  cmd->add_option("--channel", a->channel, "Keep rows of this channel");
  cmd->add_option("--regime", a->regime, "Keep rows of this training regime (robust|noiseless)");
  cmd->add_flag("--synthetic", a->synthetic, "Use the built-in synthetic 77-decision table instead of --table");
  cmd->add_option("--write-table", a->write_table, "Also write the table used (after filtering) to this CSV");
  cmd->add_flag("--simulate", a->simulate, "Proxy-table simulation of one (--V, --mu): writes DIR/trace.csv");
  cmd->add_option("--V", a->tradeoff, "Lyapunov trade-off V (with --mu: no search)")->check(kFinitePositive);
  cmd->add_option("--mu", a->queue_step, "Queue step size mu")->check(kFinitePositive);
  cmd->add_option("--zeta-max", a->zeta_max, "Long-term zeta bound(s), comma list")->capture_default_str();
  // 10^8 slots: ~2 GB of trace at most; more is a typo, not a study.
  cmd->add_option("--T", a->slots, "Slots simulated")->capture_default_str()->check(CLI::Range(1, 100000000));
  cmd->add_option("--window", a->window, "Last slots averaged for accuracy, zeta, feasibility")
      ->capture_default_str()->check(kFinitePositive);
  cmd->add_option("--scenario", a->scenario,
                  "One SNR process: gauss:M,SD | fixed:S | gauss-markov:M,SD,rho=R | "
                  "gilbert-elliott:good=G,bad=B,p_gb=P,p_bg=Q[,sd=S] | trace:FILE");
  cmd->add_option("--scenarios", a->scenarios,
                  "SNR processes, comma/space list (default: the paper's five: gauss:0,2.5 gauss:10,2.5 "
                  "gauss:20,2.5 fixed:10 fixed:20)");
  cmd->add_option("--snr-trace", a->snr_trace, "Replay this SNR trace CSV (one dB value per slot)");
  cmd->add_option("--V-grid", a->v_grid, "Search grid of V")->capture_default_str();
  cmd->add_option("--mu-grid", a->mu_grid, "Search grid of mu (tie-break order)")->capture_default_str();
  cmd->add_option("--selection", a->selection, "Rule whose pick gets a trace and the figure (METHOD §10 P18)")
      ->check(CLI::IsMember({"paper", "reference"}))->capture_default_str();
  cmd->add_flag("--interpolate", a->interpolate, "Interpolate the table linearly in SNR (METHOD §10 P19)");
  cmd->add_option("--oracle-samples", a->oracle_samples, "Monte Carlo SNR draws of the oracle with --interpolate")
      ->capture_default_str()->check(kFinitePositive);
  cmd->add_flag("--no-plots", a->no_plots, "Skip the gnuplot figures");
  cmd->add_option("--bank", a->bank,
                  "Deployment (METHOD §8.5): after the search, run each picked controller on this trained bank "
                  "(train.stage=jscc folder) image by image, hard mode, batch 1");
  cmd->add_option("--deploy-split", a->deploy_split, "Split the deployment runs on")->capture_default_str();
  cmd->add_option("--deploy-images", a->deploy_images, "> 0: only this many images (slots) per deployment run")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("--repeats", a->repeats, "Deployment repeats (0: 3 for random scenarios, 1 for fixed SNRs)")
      ->capture_default_str()
      ->check(kFiniteNonNegative);
  cmd->add_option("-o,--out", a->out, "Output folder")->required();
  cmd->add_option("overrides", a->overrides, "key.sub=value overrides of the bank's config (with --bank)");
  set_action(cmd, [a] { run_optimize(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(60, add_optimize);
}  // namespace tokcom::cli

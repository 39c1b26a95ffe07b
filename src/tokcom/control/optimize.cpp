#include "tokcom/control/optimize.h"

#include <filesystem>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "tokcom/control/oracle.h"
#include "tokcom/control/plots.h"
#include "tokcom/control/simulate.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/version.h"

namespace tokcom {
namespace fs = std::filesystem;
namespace {

using csv::format_number;  // figure data and file names

// One summary.csv row.
struct SummaryRow {
  std::string scenario, rule;
  double zeta_max = 0.0;
  std::optional<SearchRow> run;  // empty: no feasible pair
  OracleResult oracle;
};

void add_summary_row(csv::Writer& out, const SummaryRow& r) {
  out.text(r.scenario).number(r.zeta_max).text(r.rule);
  if (r.run) {
    const SimulationSummary& s = r.run->summary;
    out.number(r.run->tradeoff).number(r.run->queue_step).number(s.accuracy_mean).number(s.zeta_mean);
    out.integer(s.feasible ? 1 : 0).number(s.queue_final);
  } else {
    out.empty().empty().empty().empty().integer(0).empty();
  }
  if (r.oracle.feasible) {
    out.number(r.oracle.accuracy).number(r.oracle.zeta);
    if (r.run) out.number(r.oracle.accuracy - r.run->summary.accuracy_mean);
    else out.empty();
  } else {
    out.empty().empty().empty();
  }
  out.end_row();
}

nlohmann::json summary_json(const SummaryRow& r) {
  nlohmann::json j = {{"scenario", r.scenario}, {"zeta_max", r.zeta_max}, {"rule", r.rule}};
  if (r.run) {
    j["V"] = r.run->tradeoff;
    j["mu"] = r.run->queue_step;
    j["accuracy"] = r.run->summary.accuracy_mean;
    j["zeta"] = r.run->summary.zeta_mean;
    j["feasible"] = r.run->summary.feasible;
    j["queue_final"] = r.run->summary.queue_final;
  }
  j["oracle_feasible"] = r.oracle.feasible;
  if (r.oracle.feasible) {
    j["oracle_accuracy"] = r.oracle.accuracy;
    j["oracle_zeta"] = r.oracle.zeta;
    j["oracle_multiplier"] = r.oracle.multiplier;
    if (r.run) j["gap"] = r.oracle.accuracy - r.run->summary.accuracy_mean;
  }
  return j;
}

// File-name-safe form of a scenario spec ("gauss:10,2.5" → "gauss_10_2.5"; traces by file stem).
std::string slug(const std::string& spec) {
  return csv::file_slug(spec.rfind("trace:", 0) == 0 ? "trace_" + fs::path(spec.substr(6)).stem().string() : spec);
}

std::vector<double> scenario_snr(const std::string& spec, size_t index, const OptimizeRequest& q) {
  auto process = make_snr_process(spec);
  std::seed_seq seq{static_cast<uint64_t>(q.seed), static_cast<uint64_t>(index)};
  std::mt19937_64 rng(seq);
  return draw_snr(*process, q.search.slots, rng);
}

OracleResult scenario_oracle(const ProxyTable& table, const std::string& spec, double zeta_max,
                             const OptimizeRequest& q) {
  auto process = make_snr_process(spec);
  return oracle_bound(table, *process, zeta_max, q.search.interpolate, q.oracle_samples, q.seed);
}

nlohmann::json sidecar(const ProxyTable& table, const OptimizeRequest& q, const std::string& mode) {
  nlohmann::json j;
  j["tool"] = "tokcom optimize";
  j["mode"] = mode;
  j["version"] = TOKCOM_VERSION;
  j["git_hash"] = tokcom::git_hash();
  j["seed"] = q.seed;
  j["table"] = {{"path", q.table_path}, {"method", table.method()}, {"channel", table.channel()},
                {"regime", table.regime()}, {"decisions", table.decision_count()},
                {"snr_grid", table.snr_grid()}};
  j["T"] = q.search.slots;
  j["window"] = q.search.window;
  j["interpolate"] = q.search.interpolate;
  j["zeta_max"] = q.zeta_max;
  j["scenarios"] = q.scenarios;
  j["snr_seed_rule"] = "scenario k draws from std::mt19937_64(std::seed_seq{seed, k})";
  j["correct_column"] = "proxy accuracy of the chosen decision (expected correctness), not a draw";
  return j;
}

void write_summary(const std::string& dir, const std::vector<SummaryRow>& rows, nlohmann::json meta) {
  csv::Writer out(summary_schema());
  for (const auto& r : rows) add_summary_row(out, r);
  out.write(dir + "/summary.csv");
  meta["results"] = nlohmann::json::array();
  for (const auto& r : rows) meta["results"].push_back(summary_json(r));
  write_file_atomic(dir + "/summary.json", meta.dump(2) + "\n");
}

void check_common(const OptimizeRequest& q) {
  if (q.out_dir.empty()) throw ConfigError("optimize: --out is required");
  if (q.scenarios.empty()) throw ConfigError("optimize: no SNR scenario given");
  if (q.zeta_max.empty()) throw ConfigError("optimize: no --zeta-max value given");
  for (double z : q.zeta_max)
    if (!(z > 0.0)) throw ConfigError(fmt::format("optimize: --zeta-max {} must be > 0", z));
  if (q.search.slots < 1 || q.search.window < 1 || q.search.window > q.search.slots)
    throw ConfigError(fmt::format("optimize: --T {} and --window {}: need 1 <= window <= T", q.search.slots,
                                  q.search.window));
  for (const auto& s : q.scenarios) make_snr_process(s);  // fail before any work on a bad spec
  fs::create_directories(q.out_dir);
}

}  // namespace

const csv::Schema& summary_schema() {
  static const csv::Schema s = csv::schema(
      "a summary.csv written by `tokcom optimize`", kSummaryHeader, {"scenario", "rule"},
      {"V", "mu", "accuracy", "zeta", "queue_final", "oracle_accuracy", "oracle_zeta", "gap"});
  return s;
}

const csv::Schema& search_schema() {
  static const csv::Schema s = csv::schema("a search.csv written by `tokcom optimize`", kSearchHeader, {"scenario"});
  return s;
}

const csv::Schema& deploy_schema() {
  static const csv::Schema s =
      csv::schema("a deploy_summary.csv written by `tokcom optimize --bank` or `tokcom device`", kDeployHeader, {"scenario"});
  return s;
}

void run_optimize_simulation(const ProxyTable& table, const OptimizeRequest& q) {
  check_common(q);
  if (!q.tradeoff || !q.queue_step) throw ConfigError("optimize --simulate needs both --V and --mu");
  if (q.scenarios.size() != 1 || q.zeta_max.size() != 1)
    throw ConfigError(fmt::format("optimize --simulate runs one scenario and one --zeta-max (got {} and {})",
                                  q.scenarios.size(), q.zeta_max.size()));
  const std::string& spec = q.scenarios[0];
  const double zeta_max = q.zeta_max[0];
  LyapunovController controller(table, LyapunovOptions{*q.tradeoff, *q.queue_step, zeta_max, q.search.interpolate});
  SimulationResult sim = simulate(controller, scenario_snr(spec, 0, q), q.search.window);
  const std::string trace = q.out_dir + "/trace.csv";
  write_trace_csv(trace, sim.trace);

  SummaryRow row{spec, "given", zeta_max, SearchRow{*q.tradeoff, *q.queue_step, zeta_max, sim.summary},
                 scenario_oracle(table, spec, zeta_max, q)};
  nlohmann::json meta = sidecar(table, q, "simulate");
  meta["V"] = *q.tradeoff;
  meta["mu"] = *q.queue_step;
  meta["controller_state"] = nlohmann::json::parse(controller.save_state());
  write_summary(q.out_dir, {row}, meta);
  spdlog::info("{} V={} mu={} zeta_max={}: accuracy {:.4f}, mean zeta {:.5f} ({}), oracle {:.4f}", spec,
               *q.tradeoff, *q.queue_step, zeta_max, sim.summary.accuracy_mean, sim.summary.zeta_mean,
               sim.summary.feasible ? "feasible" : "infeasible", row.oracle.accuracy);
  if (q.plots) {
    if (gnuplot_available()) {
      plot_trace(trace, zeta_max, q.out_dir + "/trace",
                 fmt::format("{}  V={} mu={} zeta_max={}", spec, *q.tradeoff, *q.queue_step, zeta_max));
    } else {
      spdlog::warn("gnuplot not found: skipping the figures (the CSVs are written)");
    }
  }
  if (q.after_pick) q.after_pick(spec, zeta_max, controller);
}

void run_optimize_search(const ProxyTable& table, const OptimizeRequest& q) {
  check_common(q);
  const bool plots = q.plots && gnuplot_available();
  if (q.plots && !plots) spdlog::warn("gnuplot not found: skipping the figures (the CSVs are written)");
  fs::create_directories(q.out_dir + "/traces");
  std::vector<SummaryRow> summary;
  csv::Writer search_csv(search_schema());
  std::string fig8 = "# blocks per scenario (gnuplot index): zeta_max,accuracy,zeta,oracle_accuracy\n";
  nlohmann::json traces = nlohmann::json::array();
  for (size_t k = 0; k < q.scenarios.size(); ++k) {
    const std::string& spec = q.scenarios[k];
    const std::vector<double> snr = scenario_snr(spec, k, q);  // common to every ζ_max, V, μ
    if (k > 0) fig8 += "\n\n";
    for (double zeta_max : q.zeta_max) {
      const std::vector<SearchRow> rows = grid_search(table, snr, zeta_max, q.search);
      for (const SearchRow& r : rows) {
        search_csv.text(spec).number(zeta_max).number(r.tradeoff).number(r.queue_step);
        search_csv.number(r.summary.accuracy_mean).number(r.summary.zeta_mean).integer(r.summary.feasible ? 1 : 0);
        search_csv.integer(r.selected_paper ? 1 : 0).integer(r.selected_reference ? 1 : 0).end_row();
      }
      const OracleResult oracle = scenario_oracle(table, spec, zeta_max, q);
      std::optional<SearchRow> picked;
      for (SelectionRule rule : {SelectionRule::kPaper, SelectionRule::kReference}) {
        const auto i = select(rows, rule);
        summary.push_back(SummaryRow{spec, to_string(rule), zeta_max,
                                     i ? std::optional<SearchRow>(rows[*i]) : std::nullopt, oracle});
        if (rule == q.selection && i) picked = rows[*i];
      }
      fig8 += fmt::format("{},{},{},{}\n", format_number(zeta_max),  // NaN: no feasible pair (a gap)
                          picked ? format_number(picked->summary.accuracy_mean) : "NaN",
                          picked ? format_number(picked->summary.zeta_mean) : "NaN",
                          oracle.feasible ? format_number(oracle.accuracy) : "NaN");
      if (picked) {
        // Re-run the picked pair with its trace (deterministic: same SNRs, Z(0) = 0).
        LyapunovController c(table, LyapunovOptions{picked->tradeoff, picked->queue_step, zeta_max, q.search.interpolate});
        const SimulationResult sim = simulate(c, snr, q.search.window);
        const std::string stem = fmt::format("{}/traces/trace_{}_zmax{}", q.out_dir, slug(spec), format_number(zeta_max));
        write_trace_csv(stem + ".csv", sim.trace);
        if (q.after_pick) q.after_pick(spec, zeta_max, c);
        traces.push_back({{"scenario", spec}, {"zeta_max", zeta_max}, {"V", picked->tradeoff},
                          {"mu", picked->queue_step}, {"file", fs::path(stem).filename().string() + ".csv"}});
        if (plots) {
          plot_trace(stem + ".csv", zeta_max, stem,
                     fmt::format("{}  V={} mu={} zeta_max={} ({} rule)", spec, picked->tradeoff,
                                 picked->queue_step, zeta_max, to_string(q.selection)));
        }
      }
      const SummaryRow& shown = summary[summary.size() - (q.selection == SelectionRule::kPaper ? 2 : 1)];
      spdlog::info("{} zeta_max={}: {} rule picks {}; oracle {}", spec, zeta_max, to_string(q.selection),
                   shown.run ? fmt::format("V={} mu={} accuracy {:.4f} zeta {:.5f}", shown.run->tradeoff,
                                           shown.run->queue_step, shown.run->summary.accuracy_mean,
                                           shown.run->summary.zeta_mean)
                             : std::string("nothing (no feasible pair)"),
                   oracle.feasible ? fmt::format("{:.4f}", oracle.accuracy) : std::string("infeasible"));
    }
  }
  search_csv.write(q.out_dir + "/search.csv");
  write_file_atomic(q.out_dir + "/fig8.csv", fig8);
  nlohmann::json meta = sidecar(table, q, "search");
  meta["V_grid"] = q.search.tradeoffs;
  meta["mu_grid"] = q.search.queue_steps;
  meta["selection"] = to_string(q.selection);
  meta["traces"] = traces;
  write_summary(q.out_dir, summary, meta);
  if (plots) {
    plot_fig8(q.out_dir + "/fig8.csv", q.scenarios, q.out_dir + "/fig8",
              fmt::format("{} / {} / {}: Lyapunov controller ({} rule) vs oracle bound", table.method(),
                          table.channel(), table.regime(), to_string(q.selection)));
  }
}

}  // namespace tokcom

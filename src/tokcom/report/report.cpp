#include "tokcom/report/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>

#include "tokcom/control/optimize.h"
#include "tokcom/control/plots.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"
#include "tokcom/core/version.h"
#include "tokcom/eval/evaluate.h"
#include "tokcom/eval/sweep.h"
#include "tokcom/report/document.h"
#include "tokcom/split/method.h"
#include "tokcom/train/jscc_stage.h"
#include "tokcom/train/trainer.h"

namespace tokcom::report {
namespace fs = std::filesystem;
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string num(double v) { return csv::format_number(v); }
std::string pct(double v) { return fmt::format("{:.2f}", 100.0 * v); }
std::string zeta_text(double v) { return fmt::format("{:.5g}", v); }


std::string slug(const std::string& s) { return csv::file_slug(s); }


nlohmann::json read_json(const fs::path& path, const std::string& name) {
  try {
    return nlohmann::json::parse(read_file(path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: not valid JSON ({}), expected the sidecar its command writes", name, e.what()));
  }
}

// ---- the paper's Table II (METHOD §9.1), copied verbatim; "a – b" per cell --------------------------
struct PaperRow {
  const char* group;
  const char* method;
  const char* cells[6];
};
constexpr double kPaperZetaMax[6] = {0.0025, 0.005, 0.01, 0.02, 0.05, 0.1};
constexpr PaperRow kPaperTable2[] = {
    {"G1", "ViT AE", {"62.96 – 65.68", "68.05 – 70.11", "77.48 – 79.64", "80.92 – 81.49", "80.79 – 83.40", "80.97 – 84.09"}},
    {"G1", "MNv3 CNN", {"–", "72.38 – 65.38", "72.71 – 65.91", "72.33 – 66.65", "73.20 – 67.36", "73.10 – 67.46"}},
    {"G1", "Proposal", {"63.41 – 72.20", "71.14 – 76.61", "78.93 – 81.72", "81.15 – 83.73", "81.07 – 84.23", "85.15 – 85.55"}},
    {"G2", "ViT AE", {"62.34 – 65.84", "67.26 – 70.67", "77.06 – 79.34", "80.92 – 81.83", "80.54 – 82.55", "80.85 – 83.25"}},
    {"G2", "MNv3 CNN", {"–", "72.10 – 65.47", "72.75 – 65.74", "72.65 – 66.45", "73.15 – 67.31", "73.16 – 67.30"}},
    {"G2", "Proposal", {"64.14 – 71.90", "74.73 – 76.66", "79.11 – 79.97", "81.21 – 81.48", "81.16 – 84.39", "81.11 – 85.52"}},
    {"G3", "ViT AE", {"61.01 – 57.35", "66.90 – 63.06", "77.20 – 76.41", "81.04 – 83.41", "80.43 – 83.63", "80.36 – 83.45"}},
    {"G3", "MNv3 CNN", {"–", "71.97 – 65.35", "72.92 – 65.45", "72.54 – 66.14", "73.12 – 67.41", "73.10 – 67.31"}},
    {"G3", "Proposal", {"62.88 – 70.88", "66.23 – 72.99", "79.31 – 79.69", "81.10 – 83.48", "81.07 – 84.46", "80.82 – 85.50"}},
    {"G4", "ViT AE", {"60.65 – 57.49", "66.72 – 64.53", "76.82 – 77.19", "80.22 – 81.02", "80.69 – 83.90", "80.34 – 83.26"}},
    {"G4", "MNv3 CNN", {"–", "71.83 – 65.55", "72.70 – 65.52", "72.97 – 66.20", "73.09 – 67.24", "73.00 – 67.29"}},
    {"G4", "Proposal", {"63.27 – 69.90", "73.31 – 74.51", "78.92 – 79.16", "80.98 – 83.04", "81.04 – 84.36", "81.04 – 85.03"}},
    {"G5", "ViT AE", {"55.80 – 63.80", "61.07 – 72.79", "73.35 – 79.04", "79.12 – 80.72", "80.02 – 81.45", "80.22 – 82.13"}},
    {"G5", "MNv3 CNN", {"–", "71.41 – 62.85", "72.63 – 64.32", "72.79 – 65.58", "72.95 – 67.30", "72.93 – 66.95"}},
    {"G5", "Proposal", {"55.13 – 64.80", "65.27 – 73.00", "72.70 – 78.73", "78.37 – 79.88", "79.90 – 82.04", "80.34 – 83.81"}},
};

// The paper's label of `method` when its Table II has rows for it, else "".
std::string paper_method(const std::string& method) {
  const Method* m = find_method(method);
  if (!m) return "";
  for (const PaperRow& r : kPaperTable2) {
    if (std::string(r.method) == m->paper_label) return m->paper_label;
  }
  return "";
}

// Range over G1–G5 of the paper's number for (method, regime, ζ_max); "" when the paper has none.
// Per METHOD §9.1's inference, a = noiseless-trained and b = robust-trained.
std::string paper_range(const std::string& method, const std::string& regime, double zeta_max) {
  const std::string m = paper_method(method);
  if (m.empty() || (regime != "robust" && regime != "noiseless")) return "";
  int column = -1;
  for (int i = 0; i < 6; ++i)
    if (std::fabs(kPaperZetaMax[i] - zeta_max) < 1e-12) column = i;
  if (column < 0) return "";
  double lo = 1e9, hi = -1e9;
  for (const PaperRow& r : kPaperTable2) {
    if (m != r.method) continue;
    const std::string cell = r.cells[column];
    const size_t dash = cell.find(" – ");
    if (dash == std::string::npos) continue;
    const double v = std::stod(regime == "noiseless" ? cell.substr(0, dash) : cell.substr(dash + 5));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (hi < 0) return "";
  return fmt::format("{:.2f}–{:.2f}", lo, hi);
}

// ---- Figs 6–7 data --------------------------------------------------------------------------------
struct Curve {
  std::vector<std::pair<double, double>> points;  // (ζ, accuracy) of every decision
};
using Curves = std::map<std::string, Curve>;  // label → decisions

// (channel, SNR) → curves, over the evaluation sweeps (not the proxy tables).
std::map<std::pair<std::string, double>, Curves> accuracy_curves(const RunData& run) {
  std::map<std::pair<std::string, double>, Curves> out;
  for (const SweepFile& f : run.sweeps) {
    if (f.proxy) continue;
    const csv::Table& t = f.table;
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const std::string regime = t.text(i, "regime");
      const std::string label = t.text(i, "method") + (regime == "none" ? "" : " (" + regime + ")");
      out[{t.text(i, "channel"), t.number(i, "snr_db")}][label].points.emplace_back(t.number(i, "zeta"),
                                                                                   t.number(i, "accuracy"));
    }
  }
  return out;
}

// Upper envelope: sorted by ζ, the points where the best accuracy so far rises.
std::vector<std::pair<double, double>> envelope(std::vector<std::pair<double, double>> p) {
  std::sort(p.begin(), p.end());
  std::vector<std::pair<double, double>> out;
  double best = -1;
  for (const auto& [z, a] : p) {
    if (a <= best) continue;
    best = a;
    out.emplace_back(z, a);
  }
  return out;
}

std::vector<double> zeta_bounds(const Curves& curves) {
  double lo = 1e300, hi = 0;
  for (const auto& [label, c] : curves)
    for (const auto& [z, a] : c.points) lo = std::min(lo, z), hi = std::max(hi, z);
  std::vector<double> out;
  for (int e = -5; e <= 0; ++e) {
    for (int m : {1, 2, 5}) {
      const double b = std::stod(fmt::format("{}e{}", m, e));  // the double nearest 0.01 etc., as a CSV holds it
      if (b < lo * (1 - 1e-9)) continue;
      if (!out.empty() && out.back() >= hi) return out;
      out.push_back(b);
    }
  }
  return out;
}

TableBlock accuracy_block(const Curves& curves) {
  const std::vector<double> bounds = zeta_bounds(curves);
  TableBlock t;
  t.header = {"method"};
  for (double b : bounds) t.header.push_back("ζ ≤ " + num(b));
  for (const auto& [label, c] : curves) {
    std::vector<std::string> row = {label};
    for (double b : bounds) {
      double best = -1;
      for (const auto& [z, a] : c.points)
        if (z <= b) best = std::max(best, a);
      row.push_back(best < 0 ? "–" : fmt::format("{:.3f}", best));
    }
    t.rows.push_back(row);
  }
  return t;
}

// ---- Table II --------------------------------------------------------------------------------------
struct DeployCell {
  std::string scenario;
  double zeta_max = 0;
  std::vector<double> accuracy, constrained, zeta;
};

std::string selection_of(const ControlRun& c) {
  if (c.summary_json.is_object() && c.summary_json.contains("selection") && c.summary_json["selection"].is_string())
    return c.summary_json["selection"].get<std::string>();
  return "paper";
}

std::string table_field(const ControlRun& c, const char* key) {
  if (c.summary_json.is_object() && c.summary_json.contains("table") && c.summary_json["table"].contains(key) &&
      c.summary_json["table"][key].is_string())
    return c.summary_json["table"][key].get<std::string>();
  return "";
}

std::optional<double> oracle_of(const ControlRun& c, const std::string& scenario, double zeta_max) {
  const std::string rule = selection_of(c);
  for (size_t i = 0; i < c.summary.rows.size(); ++i) {
    if (c.summary.text(i, "scenario") != scenario || std::fabs(c.summary.number(i, "zeta_max") - zeta_max) > 1e-12)
      continue;
    if (c.summary.text(i, "rule") != rule && c.summary.text(i, "rule") != "given") continue;
    return c.summary.optional_number(i, "oracle_accuracy");
  }
  return std::nullopt;
}

std::vector<DeployCell> deploy_cells(const ControlRun& c) {
  std::vector<DeployCell> cells;
  const csv::Table& t = *c.deploy;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const std::string s = t.text(i, "scenario");
    const double zm = t.number(i, "zeta_max");
    auto it = std::find_if(cells.begin(), cells.end(),
                           [&](const DeployCell& d) { return d.scenario == s && std::fabs(d.zeta_max - zm) < 1e-12; });
    if (it == cells.end()) {
      cells.push_back(DeployCell{s, zm, {}, {}, {}});
      it = cells.end() - 1;
    }
    it->accuracy.push_back(t.number(i, "accuracy"));
    it->constrained.push_back(t.number(i, "constrained_accuracy"));
    it->zeta.push_back(t.number(i, "zeta"));
  }
  return cells;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

TableBlock deploy_block(const ControlRun& c, bool* any_paper) {
  const std::string method = table_field(c, "method"), regime = table_field(c, "regime");
  TableBlock t;
  t.header = {"scenario", "ζ_max", "repeats", "accuracy (%)", "constrained accuracy (%)", "achieved mean ζ",
              "mean ζ ≤ ζ_max", "oracle accuracy (%)", "paper (%, G1–G5 range)"};
  *any_paper = false;
  for (const DeployCell& d : deploy_cells(c)) {
    const double worst = *std::max_element(d.zeta.begin(), d.zeta.end());
    const auto oracle = oracle_of(c, d.scenario, d.zeta_max);
    const std::string paper = paper_range(method, regime, d.zeta_max);
    if (!paper.empty()) *any_paper = true;
    t.rows.push_back({d.scenario, num(d.zeta_max), std::to_string(d.accuracy.size()), pct(mean(d.accuracy)),
                      pct(mean(d.constrained)), zeta_text(mean(d.zeta)),
                      worst <= d.zeta_max ? "yes" : "NO (largest repeat " + zeta_text(worst) + ")",
                      oracle ? pct(*oracle) : "–", paper.empty() ? "–" : paper});
  }
  return t;
}

// ---- discovery ---------------------------------------------------------------------------------------
std::string rel(const fs::path& p, const fs::path& root) { return fs::relative(p, root).generic_string(); }

void require(const fs::path& root, const std::string& stage, const std::string& file) {
  if (!fs::exists(root / stage / file)) {
    throw DataError(fmt::format("{}/{} is missing in {}, but {}/.done says the stage finished (restore the file or "
                                "rerun the stage)",
                                stage, file, root.string(), stage));
  }
}

}  // namespace

namespace {
std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}
}  // namespace

RunData load_run(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) {
    throw DataError(dir + ": no such folder (expected a run folder, e.g. the output of `tokcom demo`)");
  }
  RunData run;
  run.dir = dir;
  std::vector<fs::path> files;
  std::set<std::string> skip = {"report", "checkpoint", "deploy", "traces"};
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory()) {
      if (skip.count(name) || starts_with(name, ".")) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());

  std::map<std::string, fs::path> summaries, deploys, searches;
  std::map<std::string, StageInfo> stages;
  auto stage = [&](const fs::path& folder) -> StageInfo& {
    const std::string r = folder == root ? "." : rel(folder, root);
    StageInfo& s = stages[r];
    s.name = r;
    return s;
  };
  for (const fs::path& f : files) {
    const std::string name = f.filename().string(), r = rel(f, root);
    const fs::path parent = f.parent_path();
    const std::string folder = parent == root ? "." : rel(parent, root);
    if (name == "epochs.csv" || (starts_with(name, "epochs-") && ends_with(name, ".csv"))) {
      const bool jscc = name != "epochs.csv";
      run.epochs.push_back(
          EpochsFile{folder, csv::read(f.string(), r, jscc ? jscc_epochs_schema() : epochs_schema()), jscc});
      run.inputs.push_back(r);
      stage(parent);
    } else if (name == "summary.csv") {
      summaries[folder] = f;
    } else if (name == "deploy_summary.csv") {
      deploys[folder] = f;
    } else if (name == "search.csv") {
      searches[folder] = f;
    } else if (ends_with(name, ".csv") && starts_with(first_line(f), "alpha,mode,accuracy,kept_fraction")) {
      run.evals.push_back(csv::read(f.string(), r, eval_schema()));
      run.inputs.push_back(r);
    } else if (ends_with(name, ".csv")) {
      const fs::path side = f.string() + ".json";
      nlohmann::json sidecar;
      if (fs::exists(side)) sidecar = read_json(side, r + ".json");
      const bool known = name == "sweep.csv" || name == "digital.csv" || name == "proxy.csv";
      if (!known && !(sidecar.is_object() && sidecar.contains("grid"))) continue;  // not a sweep CSV
      SweepFile sf{csv::read(f.string(), r, sweep_schema()), sidecar, false};
      sf.proxy = name == "proxy.csv" || (sidecar.is_object() && sidecar.value("split", "") == "train");
      run.sweeps.push_back(std::move(sf));
      run.inputs.push_back(r);
      if (!sidecar.is_null()) {
        run.sidecars.emplace_back(r + ".json", sidecar);
        run.inputs.push_back(r + ".json");
      }
    } else if (ends_with(name, ".csv.json")) {
      const fs::path csv = f.string().substr(0, f.string().size() - 5);
      if (!fs::exists(csv)) {
        const nlohmann::json side = read_json(f, r);
        if (side.is_object() && side.contains("grid")) {
          throw DataError(fmt::format("{} is missing in {}: its sidecar {} is there (a sweep writes both)",
                                      rel(csv, root), dir, r));
        }
      }
    } else if (ends_with(name, ".png") &&
               (starts_with(name, "fig9") || starts_with(name, "visualize") ||
                parent.filename() == "fig9" || parent.filename() == "visualize")) {
      run.pictures.push_back(r);
    } else if (name == ".done") {
      stage(parent).done = true;
    } else if (name == ".seconds") {
      try {
        stage(parent).seconds = csv::parse_number(trimmed(read_file(f.string())), r, "seconds");
      } catch (const FormatError& e) {
        throw FormatError(std::string(e.what()).substr(13));  // drop the doubled "FormatError: "
      }
    } else if (name == ".command") {
      stage(parent).command = trimmed(read_file(f.string()));
    } else if (name == "config.yaml" || ends_with(name, ".config.yaml")) {
      StageInfo& s = stage(parent);
      if (s.config.empty() || name == "config.yaml") {
        s.config = r;
        s.config_digest = fnv1a_hex(read_file(f.string()));
      }
      run.inputs.push_back(r);
    }
  }

  // Control folders: deploy_summary.csv needs the summary.csv of the same search.
  std::set<std::string> control_dirs;
  for (const auto& [d, p] : summaries) control_dirs.insert(d);
  for (const auto& [d, p] : deploys) {
    if (!summaries.count(d)) {
      throw DataError(fmt::format("{}/summary.csv is missing in {}: {}/deploy_summary.csv is there, and `tokcom "
                                  "optimize` writes both (the report takes the oracle bound from summary.csv)",
                                  d, dir, d));
    }
  }
  for (const std::string& d : control_dirs) {
    const std::string prefix = d == "." ? "" : d + "/";
    ControlRun c{d, csv::read(summaries[d].string(), prefix + "summary.csv", summary_schema()), std::nullopt,
                 std::nullopt, nullptr, nullptr};
    run.inputs.push_back(prefix + "summary.csv");
    if (searches.count(d)) {
      c.search = csv::read(searches[d].string(), prefix + "search.csv", search_schema());
      run.inputs.push_back(prefix + "search.csv");
    }
    if (deploys.count(d)) {
      c.deploy = csv::read(deploys[d].string(), prefix + "deploy_summary.csv", deploy_schema());
      run.inputs.push_back(prefix + "deploy_summary.csv");
    }
    const fs::path sj = root / d / "summary.json";
    if (fs::exists(sj)) {
      c.summary_json = read_json(sj, prefix + "summary.json");
      run.sidecars.emplace_back(prefix + "summary.json", c.summary_json);
      run.inputs.push_back(prefix + "summary.json");
    }
    for (const char* n : {"deploy_summary.json", "deploy_summary.csv.json"}) {
      if (fs::exists(root / d / n)) {
        c.deploy_json = read_json(root / d / n, prefix + n);
        run.sidecars.emplace_back(prefix + n, c.deploy_json);
        run.inputs.push_back(prefix + n);
      }
    }
    run.controls.push_back(std::move(c));
  }

  // A finished demo stage must still hold its output.
  for (auto& [name, s] : stages) {
    if (!s.done) continue;
    const std::string base = fs::path(name).filename().string();
    if (base == "backbone" || base == "adaptive") require(root, name, "epochs.csv");
    if (base == "sweep") require(root, name, "sweep.csv");
    if (base == "digital") require(root, name, "digital.csv");
    if (base == "proxy") require(root, name, "proxy.csv");
    if (base == "control") {
      require(root, name, "summary.csv");
      require(root, name, "deploy_summary.csv");
    }
    const bool bank_stage = std::any_of(methods().begin(), methods().end(),
                                        [&](const Method& m) { return m.has_bank() && base == m.stage; });
    if (bank_stage) {
      const bool any = std::any_of(run.epochs.begin(), run.epochs.end(),
                                   [&](const EpochsFile& e) { return e.stage == name && e.jscc; });
      if (!any) {
        throw DataError(fmt::format("{}/epochs-<regime>-r<ratio>.csv is missing in {}, but {}/.done says the JSCC "
                                    "stage finished",
                                    name, dir, name));
      }
    }
  }
  for (auto& [name, s] : stages) run.stages.push_back(s);

  if (run.sweeps.empty() && run.epochs.empty() && run.controls.empty() && run.evals.empty()) {
    throw DataError(fmt::format(
        "{} holds none of the files a report is made from (looked for sweep CSVs: sweep.csv, digital.csv, "
        "proxy.csv or any *.csv with a sweep .json sidecar; epochs.csv / epochs-*.csv of `tokcom train`; "
        "summary.csv / deploy_summary.csv of `tokcom optimize`)",
        dir));
  }
  return run;
}

std::string accuracy_table(const RunData& run, const std::string& channel, double snr_db) {
  const auto curves = accuracy_curves(run);
  const auto it = curves.find({channel, snr_db});
  if (it == curves.end()) return "";
  Document d;
  d.table(accuracy_block(it->second));
  return d.markdown();
}

std::string deployment_table(const RunData& run) {
  Document d;
  for (const ControlRun& c : run.controls) {
    if (!c.deploy) continue;
    bool any_paper = false;
    d.table(deploy_block(c, &any_paper));
  }
  return d.markdown();
}

ReportFiles write_report(const RunData& run, const ReportOptions& options) {
  const fs::path out = options.out_dir.empty() ? fs::path(run.dir) : fs::path(options.out_dir);
  const fs::path figdir = out / "report" / "figures";
  fs::create_directories(figdir);
  const bool plots = options.plots && gnuplot_available();
  ReportFiles files;
  files.markdown = (out / "report.md").string();
  files.html = (out / "report.html").string();
  auto figure = [&](const std::string& stem, const std::string& caption) -> std::optional<FigureBlock> {
    const fs::path png = figdir / (stem + ".png");
    if (!fs::exists(png)) return std::nullopt;
    files.figures.push_back(png.string());
    const fs::path svg = figdir / (stem + ".svg");
    return FigureBlock{rel(png, out), fs::exists(svg) ? rel(svg, out) : "", caption};
  };
  // Remove figures of an earlier report so a failed plot cannot show a stale picture.
  for (const auto& e : fs::directory_iterator(figdir))
    if (e.is_regular_file()) fs::remove(e.path());

  const std::string run_name = fs::absolute(run.dir).lexically_normal().filename().string();
  Document doc;
  doc.heading(1, "tokcom report: " + run_name);
  doc.text("Made by `tokcom report " + run.dir + "` from the files of the run only (CSVs, JSON sidecars, configs, "
           "pictures on disk); running it again regenerates report.md, report.html and report/figures/. Accuracy "
           "is a fraction in the ζ tables and a percentage in the deployment tables; ζ = channel uses / input values.");
  if (!plots) {
    doc.text(options.plots ? "gnuplot was not found: figures are skipped; the tables hold the same numbers."
                           : "Figures were switched off; the tables hold the same numbers.");
  }

  // Figs 6–7.
  doc.heading(2, "Accuracy vs ζ (Figs 6–7)");
  const auto curves = accuracy_curves(run);
  if (curves.empty()) {
    doc.text("No evaluation sweep (sweep.csv / digital.csv) in this run.");
  } else {
    doc.text("Best accuracy over each method's decisions at each ζ budget (upper envelope over (α, r) for the "
             "proposal, over r for ViT-AE, over the ζ settings for the digital baselines), one curve per method and "
             "training regime, per channel and SNR. Sources: " +
             [&] {
               std::string s;
               for (const auto& f : run.sweeps)
                 if (!f.proxy) s += (s.empty() ? "" : ", ") + f.table.name;
               return s;
             }() +
             ".");
  }
  for (const auto& [key, c] : curves) {
    const auto& [channel, snr] = key;
    doc.heading(3, fmt::format("{} at {} dB", channel, num(snr)));
    if (plots) {
      const std::string stem = fmt::format("accuracy_vs_zeta_{}_{}dB", slug(channel), slug(num(snr)));
      std::string data, plot;
      int block = 0;
      double right = 0;  // the largest ζ of the figure: each envelope runs on to it (a budget never lowers the best)
      for (const auto& [label, curve] : c)
        for (const auto& p : curve.points) right = std::max(right, p.first);
      for (const auto& [label, curve] : c) {
        std::vector<std::pair<double, double>> env;
        for (const auto& p : envelope(curve.points))
          if (p.first > 0) env.push_back(p);
        if (env.empty()) continue;
        data += (block ? "\n\n# " : "# ") + label + " (upper envelope; the last row repeats it at the largest zeta)\n";
        for (const auto& [z, a] : env) data += num(z) + "," + num(a) + "\n";
        if (env.back().first < right) data += num(right) + "," + num(env.back().second) + "\n";
        const std::string file = gnuplot_quote((figdir / (stem + ".csv")).string());
        plot += fmt::format("{}{} index {} using 1:2 with steps lw 2 lc {} title {}, \\\n     "
                            "{} index {} using 1:2 every ::0::{} with points pt 7 ps 0.8 lc {} notitle",
                            block ? ", \\\n     " : "", file, block, block + 1, gnuplot_quote(label), file, block,
                            env.size() - 1, block + 1);
        ++block;
      }
      if (block > 0) {
        write_file_atomic((figdir / (stem + ".csv")).string(), data);
        render_gnuplot((figdir / stem).string(),
               fmt::format("set title {}\nset logscale x\nset format x '%g'\nset xlabel 'zeta'\nset ylabel "
                           "'accuracy'\nset yrange [0:1]\nset key bottom right\nset grid\nplot {}\n",
                           gnuplot_quote(fmt::format("Accuracy vs zeta, {} at {} dB (best over decisions)", channel, num(snr))),
                           plot));
        if (auto f = figure(stem, fmt::format("Accuracy vs ζ, {} at {} dB", channel, num(snr)))) doc.figure(*f);
      }
    }
    doc.table(accuracy_block(c));
  }

  // Fig. 8.
  doc.heading(2, "Controller vs oracle bound (Fig. 8)");
  if (run.controls.empty()) doc.text("No controller search (summary.csv of `tokcom optimize`) in this run.");
  for (const ControlRun& c : run.controls) {
    const std::string rule = selection_of(c), prefix = c.dir == "." ? "" : c.dir + "/";
    doc.text(fmt::format("From {}summary.csv: method {}, regime {}, channel {}; the {} rule's pick per (scenario, "
                         "ζ_max) on the proxy table, its mean accuracy and mean ζ over the last window, and the oracle "
                         "bound (best achievable mean proxy accuracy at mean ζ ≤ ζ_max).",
                         prefix, table_field(c, "method").empty() ? "?" : table_field(c, "method"),
                         table_field(c, "regime").empty() ? "?" : table_field(c, "regime"),
                         table_field(c, "channel").empty() ? "?" : table_field(c, "channel"), rule));
    std::vector<std::string> scenarios;
    std::map<std::string, std::string> blocks;
    TableBlock t;
    t.header = {"scenario", "ζ_max", "rule", "V", "μ", "accuracy (%)", "mean ζ", "feasible", "oracle accuracy (%)",
                "gap (points)"};
    const csv::Table& s = c.summary;
    for (size_t i = 0; i < s.rows.size(); ++i) {
      if (s.text(i, "rule") != rule && s.text(i, "rule") != "given") continue;
      const std::string sc = s.text(i, "scenario");
      if (!blocks.count(sc)) scenarios.push_back(sc);
      auto opt = [&](const char* col, bool percent) {
        const auto v = s.optional_number(i, col);
        return v ? (percent ? pct(*v) : num(*v)) : std::string("–");
      };
      const auto nan = [&](const char* col) {
        const auto v = s.optional_number(i, col);
        return v ? num(*v) : std::string("NaN");
      };
      blocks[sc] += fmt::format("{},{},{},{}\n", num(s.number(i, "zeta_max")), nan("accuracy"), nan("zeta"),
                                nan("oracle_accuracy"));
      const auto gap = s.optional_number(i, "gap");
      t.rows.push_back({sc, num(s.number(i, "zeta_max")), s.text(i, "rule"), opt("V", false), opt("mu", false),
                        opt("accuracy", true), s.optional_number(i, "zeta") ? zeta_text(*s.optional_number(i, "zeta")) : "–",
                        s.number(i, "feasible") != 0 ? "yes" : "no", opt("oracle_accuracy", true),
                        gap ? fmt::format("{:.2f}", 100 * *gap) : "–"});
    }
    if (plots && !scenarios.empty()) {
      const std::string stem = "fig8_" + slug(c.dir == "." ? "run" : c.dir);
      std::string data = "# zeta_max,accuracy,zeta,oracle_accuracy; one block per scenario\n";
      for (size_t k = 0; k < scenarios.size(); ++k) data += (k ? "\n\n" : "") + blocks[scenarios[k]];
      write_file_atomic((figdir / (stem + ".csv")).string(), data);
      plot_fig8((figdir / (stem + ".csv")).string(), scenarios, (figdir / stem).string(),
                fmt::format("{} / {}: controller ({} rule) vs oracle bound", table_field(c, "method"),
                            table_field(c, "regime"), rule));
      if (auto f = figure(stem, "Controller accuracy vs ζ_max (solid) with the oracle bound (dashed); right: "
                                "achieved mean ζ vs ζ_max"))
        doc.figure(*f);
    }
    doc.table(t);
    if (c.search) doc.text(fmt::format("Every (V, μ) tried: {}search.csv ({} rows).", prefix, c.search->rows.size()));
  }

  // Table II.
  doc.heading(2, "Deployment (Table II)");
  bool any_deploy = false;
  for (const ControlRun& c : run.controls) {
    if (!c.deploy) continue;
    any_deploy = true;
    const std::string prefix = c.dir == "." ? "" : c.dir + "/";
    doc.text(fmt::format("From {}deploy_summary.csv: the picked controller continued on the real model (batch 1, hard "
                         "path), mean over repeats; constrained accuracy counts an image only when its ζ(t) ≤ ζ_max; "
                         "\"mean ζ ≤ ζ_max\" checks every repeat's achieved mean ζ. Oracle accuracy from {}summary.csv.",
                         prefix, prefix));
    bool any_paper = false;
    doc.table(deploy_block(c, &any_paper));
    const std::string method = table_field(c, "method"), regime = table_field(c, "regime");
    doc.text("Paper column: the paper's Table II (METHOD §9.1) for the same method, regime and ζ_max, as the range over "
             "its five SNR groups G1–G5: the groups' scenario labels were lost (METHOD Q2), so no row can be matched to "
             "one scenario; a = noiseless-trained, b = robust-trained is METHOD §9.1's inference. The paper used DeiT-Tiny on "
             "224-px Imagenette, so numbers from a smaller run are not comparable in level." +
             std::string(any_paper ? "" : " No ζ_max / method of this run is in the paper's table."));
    const std::string pm = paper_method(method);
    if (!pm.empty()) {
      TableBlock p;
      p.header = {"group", "method"};
      for (double z : kPaperZetaMax) p.header.push_back("ζ_max " + num(z));
      for (const PaperRow& r : kPaperTable2) {
        if (pm != r.method) continue;
        std::vector<std::string> row = {r.group, r.method};
        for (const char* cell : r.cells) row.push_back(cell);
        p.rows.push_back(row);
      }
      doc.text("The paper's Table II rows for " + pm + " (accuracy %, \"noiseless – robust\"; METHOD §9.1):");
      doc.table(p);
    }
  }
  if (!any_deploy) doc.text("No deployment (deploy_summary.csv of `tokcom optimize --bank`) in this run.");

  // Fig. 9.
  doc.heading(2, "Token selection (Fig. 9)");
  if (run.pictures.empty()) {
    doc.text("No token-selection picture in this run (fig9*.png or a fig9/ or visualize/ folder); make one with "
             "`tokcom visualize --checkpoint DIR/adaptive/model.safetensors -o DIR/fig9/fig9.png` and rerun the "
             "report.");
  }
  for (const std::string& p : run.pictures) {
    const fs::path abs = fs::path(run.dir) / p;
    files.figures.push_back(abs.string());
    doc.figure(FigureBlock{rel(fs::absolute(abs), fs::absolute(out)), "",
                           p + ": kept patches in colour, dropped patches greyed out, one column per budget α"});
  }

  // Kept fraction vs α (METHOD §10 P26: the hard kept fraction must track the budget).
  doc.heading(2, "Token budget: kept fraction vs α");
  if (run.evals.empty()) {
    doc.text("No `tokcom eval` CSV (alpha,mode,accuracy,kept_fraction,...) in this run.");
  } else {
    doc.text("From `tokcom eval` over the whole split: the fraction of patch tokens kept after the last adaptive "
             "block (what is sent) and the accuracy, per budget α; |kept − α| is the budget's tracking error.");
    TableBlock t;
    t.header = {"file", "mode", "α", "accuracy %", "kept fraction", "|kept − α|", "images/s"};
    for (const csv::Table& e : run.evals) {
      for (size_t i = 0; i < e.rows.size(); ++i) {
        const double alpha = e.number(i, "alpha"), kept = e.number(i, "kept_fraction");
        const bool rate = std::find(e.header.begin(), e.header.end(), "images_per_s") != e.header.end();
        t.rows.push_back({e.name, e.text(i, "mode"), num(alpha), pct(e.number(i, "accuracy")), fmt::format("{:.3f}", kept),
                          fmt::format("{:.3f}", std::abs(kept - alpha)),
                          rate ? fmt::format("{:.0f}", e.number(i, "images_per_s")) : "–"});
      }
    }
    doc.table(t);
  }

  // Training curves.
  doc.heading(2, "Training curves");
  if (run.epochs.empty()) doc.text("No epochs.csv in this run.");
  if (!run.epochs.empty()) {
    TableBlock t;
    t.header = {"stage", "file", "epochs", "final loss", "final train accuracy", "final val accuracy", "images/s"};
    std::string loss, acc, loss_plot, acc_plot;
    int block = 0;
    for (const EpochsFile& e : run.epochs) {
      const csv::Table& c = e.table;
      const std::string label = e.jscc ? e.stage + " " + fs::path(c.name).stem().string().substr(7) : e.stage;
      std::vector<std::string> val_cols;
      for (const auto& h : c.header)
        if (e.jscc ? starts_with(h, "val_accuracy_snr") : h == "val_accuracy") val_cols.push_back(h);
      auto val = [&](size_t i) {
        std::vector<double> v;
        for (const auto& col : val_cols) v.push_back(c.number(i, col));
        return mean(v);
      };
      std::string ld, ad;
      for (size_t i = 0; i < c.rows.size(); ++i) {
        ld += num(c.number(i, "epoch")) + "," + num(c.number(i, "loss")) + "\n";
        if (!val_cols.empty()) ad += num(c.number(i, "epoch")) + "," + num(val(i)) + "\n";
      }
      if (!c.rows.empty()) {
        const size_t last = c.rows.size() - 1;
        double ips = 0;
        for (size_t i = 0; i < c.rows.size(); ++i) ips += c.number(i, "images_per_s");
        t.rows.push_back({e.stage, c.name, std::to_string(c.rows.size()), fmt::format("{:.4f}", c.number(last, "loss")),
                          fmt::format("{:.4f}", c.number(last, "train_accuracy")),
                          val_cols.empty() ? "–" : fmt::format("{:.4f}", val(last)),
                          fmt::format("{:.0f}", ips / static_cast<double>(c.rows.size()))});
        loss += (block ? "\n\n# " : "# ") + label + "\n" + ld;
        acc += (block ? "\n\n# " : "# ") + label + "\n" + (ad.empty() ? "NaN,NaN\n" : ad);
        const std::string sep = block ? ", \\\n     " : "";
        loss_plot += fmt::format("{}{} index {} using 1:2 with linespoints lw 2 pt 7 title {}", sep,
                                 gnuplot_quote((figdir / "training_loss.csv").string()), block, gnuplot_quote(label));
        acc_plot += fmt::format("{}{} index {} using 1:2 with linespoints lw 2 pt 7 notitle", sep,
                                gnuplot_quote((figdir / "training_val_accuracy.csv").string()), block);
        ++block;
      }
    }
    if (plots && block > 0) {
      write_file_atomic((figdir / "training_loss.csv").string(), loss);
      write_file_atomic((figdir / "training_val_accuracy.csv").string(), acc);
      render_gnuplot((figdir / "training").string(),
             fmt::format("set multiplot layout 1,2 title 'Training curves'\nset grid\nset xlabel 'epoch'\n"
                         "set autoscale y\nset ylabel 'training loss'\nset key top right\nplot {}\n"
                         "set ylabel 'validation accuracy (JSCC: mean over its eval SNRs)'\nset yrange [0:1]\nplot {}\n",
                         loss_plot, acc_plot));
      if (auto f = figure("training", "Training loss and validation accuracy per epoch, one curve per stage (and per "
                                      "JSCC regime and ratio)"))
        doc.figure(*f);
    }
    doc.table(t);
  }

  // Timing.
  doc.heading(2, "Timing");
  {
    TableBlock t;
    t.header = {"stage", "wall time (s)", "finished (.done)"};
    double total = 0;
    bool any = false;
    for (const StageInfo& s : run.stages) {
      if (!s.seconds && !s.done) continue;
      if (s.seconds) total += *s.seconds, any = true;
      t.rows.push_back({s.name, s.seconds ? fmt::format("{:.1f}", *s.seconds) : "–", s.done ? "yes" : "no"});
    }
    if (t.rows.empty()) {
      doc.text("No stage records (.done / .seconds files of `tokcom demo`) in this run; throughput per epoch is in the "
               "training table (images/s).");
    } else {
      if (any) t.rows.push_back({"total", fmt::format("{:.1f}", total), ""});
      doc.text("Wall time of each stage as `tokcom demo` measured it (.seconds; \"–\": not recorded, e.g. a stage "
               "reused from an earlier run before timing was recorded). Training throughput is in the training table.");
      doc.table(t);
    }
  }

  // Provenance.
  doc.heading(2, "Provenance");
  doc.text(fmt::format("Report made by tokcom {} (git {}), LibTorch {}, protobuf {}, gRPC {}.", TOKCOM_VERSION,
                       TOKCOM_GIT_HASH, TORCH_VERSION,
                       google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION), grpc::Version()));
  {
    TableBlock t;
    t.header = {"stage", "config", "config digest (FNV-1a 64 of the file)", "command"};
    for (const StageInfo& s : run.stages) {
      if (s.config.empty() && s.command.empty()) continue;
      t.rows.push_back({s.name, s.config.empty() ? "–" : s.config, s.config_digest.empty() ? "–" : s.config_digest,
                        s.command.empty() ? "–" : "`" + s.command + "`"});
    }
    if (!t.rows.empty()) doc.table(t);
  }
  {
    TableBlock t;
    t.header = {"sidecar", "tool", "seed", "git", "version"};
    auto field = [](const nlohmann::json& j, const char* k) -> std::string {
      if (!j.is_object() || !j.contains(k)) return "–";
      return j[k].is_string() ? j[k].get<std::string>() : j[k].dump();
    };
    for (const auto& [name, j] : run.sidecars)
      t.rows.push_back({name, field(j, "tool"), field(j, "seed"),
                        field(j, j.is_object() && j.contains("git_hash") ? "git_hash" : "git"), field(j, "version")});
    if (!t.rows.empty()) doc.table(t);
  }
  doc.heading(3, "Files read");
  {
    std::string list;
    for (const std::string& f : run.inputs) list += f + "\n";
    for (const std::string& f : run.pictures) list += f + "\n";
    doc.code(list);
  }

  write_file_atomic(files.markdown, doc.markdown());
  write_file_atomic(files.html, doc.html("tokcom report: " + run_name, out.string()));
  return files;
}

}  // namespace tokcom::report

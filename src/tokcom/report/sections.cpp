#include "tokcom/report/sections.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <torch/version.h>

#include "tokcom/control/plots.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/stats.h"
#include "tokcom/core/version.h"
#include "tokcom/report/figures.h"
#include "tokcom/report/paper.h"
#include "tokcom/report/report_util.h"
#include "tokcom/split/method.h"

namespace tokcom::report {
namespace fs = std::filesystem;

std::optional<FigureBlock> ReportContext::figure(const std::string& stem, const std::string& caption) const {
  const fs::path png = figdir / (stem + ".png");
  if (!fs::exists(png)) return std::nullopt;
  files->figures.push_back(png.string());
  const fs::path svg = figdir / (stem + ".svg");
  return FigureBlock{relative(png), fs::exists(svg) ? relative(svg) : "", caption};
}

std::string ReportContext::relative(const fs::path& path) const { return fs::relative(path, out).generic_string(); }

namespace {

// ---- Figs 6–7 data --------------------------------------------------------------------------------
struct Curve {
  std::vector<std::pair<double, double>> points;  // (ζ, accuracy) of every decision
  std::vector<int64_t> images;                     // n_images of each point
  std::vector<std::pair<double, double>> decisions;  // (r, α) of each point
};
using Curves = std::map<std::string, Curve>;  // label → decisions

// (channel, SNR) → curves, over the evaluation sweeps, or (proxy) over the proxy tables: the
// training split, where a controller picks its decisions.
std::map<std::pair<std::string, double>, Curves> sweep_curves(const RunData& run, bool proxy) {
  std::map<std::pair<std::string, double>, Curves> out;
  for (const SweepFile& f : run.sweeps) {
    if (f.proxy != proxy) continue;
    const csv::Table& t = f.table;
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const std::string regime = t.text(i, "regime");
      const std::string label = t.text(i, "method") + (regime == "none" ? "" : " (" + regime + ")");
      Curve& c = out[{t.text(i, "channel"), t.number(i, "snr_db")}][label];
      c.points.emplace_back(t.number(i, "zeta"), t.number(i, "accuracy"));
      c.images.push_back(static_cast<int64_t>(t.number(i, "n_images")));
      c.decisions.emplace_back(t.number(i, "ratio"), t.number(i, "alpha"));
    }
  }
  return out;
}
std::map<std::pair<std::string, double>, Curves> accuracy_curves(const RunData& run) { return sweep_curves(run, false); }

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

// Best accuracy of a curve within ζ ≤ bound, with the images it was measured on (n 0: no point).
std::pair<double, int64_t> best_within(const Curve& c, double bound) {
  double best = -1;
  int64_t n = 0;
  for (size_t i = 0; i < c.points.size(); ++i)
    if (c.points[i].first <= bound && c.points[i].second > best) best = c.points[i].second, n = c.images[i];
  return {best, n};
}

TableBlock accuracy_block(const Curves& curves) {
  const std::vector<double> bounds = zeta_bounds(curves);
  TableBlock t;
  t.header = {"method"};
  for (double b : bounds) t.header.push_back("ζ ≤ " + num(b));
  for (const auto& [label, c] : curves) {
    std::vector<std::string> row = {label};
    for (double b : bounds) {
      const auto [best, n] = best_within(c, b);
      if (best < 0) {
        row.push_back("–");
        continue;
      }
      const Interval ci = wilson_interval(best, n);
      row.push_back(fmt::format("{:.3f} ({:.3f}–{:.3f})", best, ci.low, ci.high));
    }
    t.rows.push_back(row);
  }
  return t;
}

// The decision each method would be run at: picked on the training split (the proxy table: best
// accuracy with ζ ≤ the budget, the smaller ζ on a tie), reported with its accuracy on val. An
// envelope over val cells takes the best of many noisy cells; this does not look at val to choose.
// "*" marks a pick whose val ζ exceeds the budget. Empty when the run has no proxy table there.
TableBlock picked_block(const Curves& val, const Curves* proxy) {
  TableBlock t;
  if (!proxy) return t;
  const std::vector<double> bounds = zeta_bounds(val);
  t.header = {"method, picked on the training split"};
  for (double b : bounds) t.header.push_back("ζ ≤ " + num(b));
  for (const auto& [label, train] : *proxy) {
    const auto v = val.find(label);
    if (v == val.end()) continue;
    std::vector<std::string> row = {label};
    for (double b : bounds) {
      int best = -1;
      for (size_t i = 0; i < train.points.size(); ++i) {
        if (train.points[i].first > b) continue;
        if (best < 0 || train.points[i].second > train.points[best].second ||
            (train.points[i].second == train.points[best].second && train.points[i].first < train.points[best].first))
          best = static_cast<int>(i);
      }
      int at = -1;
      for (size_t i = 0; best >= 0 && i < v->second.decisions.size(); ++i)
        if (v->second.decisions[i] == train.decisions[best]) at = static_cast<int>(i);
      if (at < 0) {
        row.push_back("–");
        continue;
      }
      const double a = v->second.points[at].second;
      const Interval ci = wilson_interval(a, v->second.images[at]);
      row.push_back(fmt::format("{:.3f} ({:.3f}–{:.3f}){}", a, ci.low, ci.high, v->second.points[at].first > b ? "*" : ""));
    }
    t.rows.push_back(row);
  }
  return t;
}

// ---- Table II --------------------------------------------------------------------------------------
struct DeployCell {
  std::string scenario;
  double zeta_max = 0;
  std::vector<double> accuracy, constrained, zeta, slots;
};

// Table II's 95 % interval of a deployment's accuracy: over its repeats (Student t) when there are
// several, else Wilson over the images of its one run.
Interval deploy_interval(const DeployCell& d) {
  if (d.accuracy.size() >= 2) return mean_interval(d.accuracy);
  return wilson_interval(d.accuracy.at(0), static_cast<int64_t>(d.slots.at(0)));
}

std::string with_interval(double accuracy, const Interval& i) {
  return fmt::format("{} ({}–{})", pct(accuracy), pct(std::max(0.0, i.low)), pct(std::min(1.0, i.high)));
}

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

// The summary.csv row of (scenario, ζ_max) under the run's selection rule; -1 when the run has none.
int summary_row(const ControlRun& c, const std::string& scenario, double zeta_max) {
  const std::string rule = selection_of(c);
  for (size_t i = 0; i < c.summary.rows.size(); ++i) {
    if (c.summary.text(i, "scenario") != scenario || std::fabs(c.summary.number(i, "zeta_max") - zeta_max) > 1e-12)
      continue;
    if (c.summary.text(i, "rule") != rule && c.summary.text(i, "rule") != "given") continue;
    return static_cast<int>(i);
  }
  return -1;
}

std::optional<double> oracle_of(const ControlRun& c, const std::string& scenario, double zeta_max) {
  const int i = summary_row(c, scenario, zeta_max);
  return i < 0 ? std::nullopt : c.summary.optional_number(i, "oracle_accuracy");
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
      cells.push_back(DeployCell{s, zm, {}, {}, {}, {}});
      it = cells.end() - 1;
    }
    it->accuracy.push_back(t.number(i, "accuracy"));
    it->constrained.push_back(t.number(i, "constrained_accuracy"));
    it->zeta.push_back(t.number(i, "zeta"));
    it->slots.push_back(t.number(i, "slots"));
  }
  return cells;
}

TableBlock deploy_block(const ControlRun& c, bool* any_paper) {
  const std::string method = table_field(c, "method"), regime = table_field(c, "regime");
  TableBlock t;
  t.header = {"scenario", "ζ_max", "repeats", "accuracy (%, 95 % interval)", "constrained accuracy (%)", "achieved mean ζ",
              "mean ζ ≤ ζ_max", "oracle accuracy (%)", "paper (%, G1–G5 range)"};
  *any_paper = false;
  for (const DeployCell& d : deploy_cells(c)) {
    const double worst = *std::max_element(d.zeta.begin(), d.zeta.end());
    const auto oracle = oracle_of(c, d.scenario, d.zeta_max);
    const std::string paper = paper_range(method, regime, d.zeta_max);
    if (!paper.empty()) *any_paper = true;
    t.rows.push_back({d.scenario, num(d.zeta_max), std::to_string(d.accuracy.size()),
                      with_interval(mean(d.accuracy), deploy_interval(d)),
                      pct(mean(d.constrained)), zeta_text(mean(d.zeta)),
                      worst <= d.zeta_max ? "yes" : "NO (largest repeat " + zeta_text(worst) + ")",
                      oracle ? pct(*oracle) : "–", paper.empty() ? "–" : paper});
  }
  return t;
}

}  // namespace

// Figs 6–7: accuracy vs ζ per channel and SNR (upper envelope over each method's decisions).
void accuracy_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
  const bool plots = ctx.plots;
  doc.heading(2, "Accuracy vs ζ (Figs 6–7)");
  const auto curves = accuracy_curves(run);
  const auto proxies = sweep_curves(run, /*proxy=*/true);
  if (curves.empty()) {
    doc.text("No evaluation sweep (sweep.csv / digital.csv) in this run.");
  } else {
    doc.text("Best accuracy over each method's decisions at each ζ budget (upper envelope over (α, r) for the "
             "proposal, over r for ViT-AE, over the ζ settings for the digital baselines), one curve per method and "
             "training regime, per channel and SNR; in brackets the 95 % Wilson interval of that accuracy over the "
             "cell's images (an envelope picks the best of many noisy cells, so it favours a method with more "
             "decisions: read two methods as different only where their intervals do not overlap). Sources: " +
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
      double right = 0;  // the largest ζ of the figure: each envelope runs on to it (a budget never lowers the best)
      std::vector<Series> envelopes;
      for (const auto& [label, curve] : c) {
        for (const auto& p : curve.points) right = std::max(right, p.first);
        Series s{label, {}};
        for (const auto& p : envelope(curve.points))
          if (p.first > 0) s.points.push_back(p);
        envelopes.push_back(s);
      }
      const auto f = accuracy_figure(ctx, fmt::format("accuracy_vs_zeta_{}_{}dB", slug(channel), slug(num(snr))),
                                     fmt::format("Accuracy vs zeta, {} at {} dB (best over decisions)", channel, num(snr)),
                                     fmt::format("Accuracy vs ζ, {} at {} dB", channel, num(snr)), envelopes, right);
      if (f) doc.figure(*f);
    }
    doc.table(accuracy_block(c));
    const auto p = proxies.find(key);
    const TableBlock picked = picked_block(c, p == proxies.end() ? nullptr : &p->second);
    if (!picked.rows.empty()) {
      doc.text("Each method at the decision its proxy table (training split) picks for the budget — best training "
               "accuracy with ζ ≤ the budget — with that decision's accuracy on val: chosen without looking at val, "
               "unlike the envelope above (* = its val ζ exceeds the budget).");
      doc.table(picked);
    }
  }
}

// ---- Claims ------------------------------------------------------------------------------------
namespace {

// A above B with separated 95 % Wilson intervals: "holds"; B above A, separated: "fails"; else "undecided".
std::string verdict(std::pair<double, int64_t> a, std::pair<double, int64_t> b) {
  const Interval ia = wilson_interval(a.first, a.second), ib = wilson_interval(b.first, b.second);
  if (ia.low > ib.high) return "holds";
  if (ib.low > ia.high) return "fails";
  return "undecided";
}

struct Tally {
  int holds = 0, fails = 0, undecided = 0;
  std::vector<std::string> failing;  // where it fails
  void add(const std::string& v, const std::string& where) {
    if (v == "holds") ++holds;
    if (v == "fails") ++fails, failing.push_back(where);
    if (v == "undecided") ++undecided;
  }
  std::vector<std::string> row(const std::string& claim) const {
    std::string where;
    for (size_t i = 0; i < failing.size() && i < 4; ++i) where += (i ? "; " : "") + failing[i];
    if (failing.size() > 4) where += fmt::format("; … ({} more)", failing.size() - 4);
    return {claim, std::to_string(holds), std::to_string(fails), std::to_string(undecided), where.empty() ? "–" : where};
  }
};

bool is_proposal(const std::string& label) { return starts_with(label, "proposal"); }

}  // namespace

// The paper's claims, tested cell by cell on this run's CSVs (never written by hand).
void claims_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
  doc.heading(2, "Claims");
  const auto curves = accuracy_curves(run);
  doc.text("Each claim of the paper, tested on this run's evaluation sweeps and deployments. A cell is one (channel, "
           "SNR, ζ budget) of the accuracy tables above: \"holds\" when the claim's side is ahead with separated 95 % "
           "Wilson intervals, \"fails\" when the other side is, \"undecided\" when the intervals overlap. Budgets where "
           "a side has no operating point are not counted.");
  TableBlock t;
  t.header = {"claim", "holds", "fails", "undecided", "fails at"};
  std::map<std::string, Tally> versus;  // baseline → tally of "proposal at or above it"
  Tally robust;                         // robust ≥ noiseless below 10 dB
  std::vector<std::vector<std::string>> savings;
  for (const auto& [key, c] : curves) {
    const auto& [channel, snr] = key;
    const std::vector<double> bounds = zeta_bounds(c);
    for (double b : bounds) {
      const std::string where = fmt::format("{} {} dB ζ ≤ {}", channel, num(snr), num(b));
      for (const auto& [label, curve] : c) {
        if (!is_proposal(label)) continue;
        const auto mine = best_within(curve, b);
        if (mine.second == 0) continue;
        for (const auto& [other, other_curve] : c) {
          if (is_proposal(other)) continue;
          const auto theirs = best_within(other_curve, b);
          if (theirs.second > 0) versus[other].add(verdict(mine, theirs), where + " (" + label + ")");
        }
      }
      if (snr < 10) {
        for (const auto& [label, curve] : c) {
          const size_t at = label.find(" (robust)");
          if (at == std::string::npos) continue;
          const auto other = c.find(label.substr(0, at) + " (noiseless)");
          if (other == c.end()) continue;
          const auto r = best_within(curve, b), n = best_within(other->second, b);
          if (r.second > 0 && n.second > 0) robust.add(verdict(r, n), where + " (" + label.substr(0, at) + ")");
        }
      }
    }
    // Fewer symbols than the best digital codec at equal accuracy: at the best accuracy any digital
    // codec reaches here, the least ζ each side needs for it.
    double target = -1, digital_zeta = 0;
    std::string digital_label;
    for (const auto& [label, curve] : c) {
      if (!is_digital_method(label.substr(0, label.find(' ')))) continue;
      for (const auto& [z, a] : curve.points)
        if (a > target || (a == target && z < digital_zeta)) target = a, digital_zeta = z, digital_label = label;
    }
    if (target < 0) continue;
    for (const auto& [label, curve] : c) {
      if (!is_proposal(label)) continue;
      double need = -1;
      for (const auto& [z, a] : curve.points)
        if (a >= target && (need < 0 || z < need)) need = z;
      savings.push_back({channel, num(snr), label, digital_label, fmt::format("{:.3f}", target), zeta_text(digital_zeta),
                         need < 0 ? "never reached" : zeta_text(need),
                         need > 0 ? fmt::format("{:.1f}×", digital_zeta / need) : "–"});
    }
  }
  for (const auto& [baseline, tally] : versus) t.rows.push_back(tally.row("proposal at or above " + baseline));
  if (robust.holds + robust.fails + robust.undecided > 0)
    t.rows.push_back(robust.row("robust-trained at or above noiseless-trained below 10 dB"));
  // Deployments: ζ_max met by the strict rule (every repeat's mean ζ ≤ ζ_max) and within 1 %.
  // (method, regime) → (scenario, ζ_max) → mean accuracy
  std::map<std::pair<std::string, std::string>, std::map<std::pair<std::string, double>, double>> deployed;
  for (const ControlRun& c : run.controls) {
    if (!c.deploy) continue;
    const std::string method = table_field(c, "method");
    Tally strict, loose;
    for (const DeployCell& d : deploy_cells(c)) {
      const double worst = *std::max_element(d.zeta.begin(), d.zeta.end());
      const std::string where = fmt::format("{} ζ_max {} (ζ {})", d.scenario, num(d.zeta_max), zeta_text(worst));
      strict.add(worst <= d.zeta_max ? "holds" : "fails", where);
      loose.add(worst <= 1.01 * d.zeta_max ? "holds" : "fails", where);
      deployed[{method, table_field(c, "regime")}][{d.scenario, d.zeta_max}] = mean(d.accuracy);
    }
    const std::string who = method.empty() ? c.dir : method + " (" + c.dir + ")";
    t.rows.push_back(strict.row("ζ_max met, strict: " + who));
    t.rows.push_back(loose.row("ζ_max met within 1 %: " + who));
  }
  // The gap to ViT-AE narrows as ζ_max grows (per regime and scenario, point estimates of the deployments).
  Tally gap;
  for (const auto& [who, cells] : deployed) {
    if (who.first != "proposal") continue;
    const auto vit_ae = deployed.find({"vit-ae", who.second});
    if (vit_ae == deployed.end()) continue;
    std::map<std::string, std::vector<std::pair<double, double>>> gaps;  // scenario → (ζ_max, gap)
    for (const auto& [cell, acc] : cells) {
      const auto it = vit_ae->second.find(cell);
      if (it != vit_ae->second.end()) gaps[cell.first].emplace_back(cell.second, acc - it->second);
    }
    for (auto& [scenario, g] : gaps) {
      if (g.size() < 2) continue;
      std::sort(g.begin(), g.end());
      gap.add(g.back().second < g.front().second ? "holds" : "fails",
              fmt::format("{} {}: gap {} at ζ_max {} → {} at {}", who.second, scenario, pct(g.front().second),
                          num(g.front().first), pct(g.back().second), num(g.back().first)));
    }
  }
  if (gap.holds + gap.fails > 0) t.rows.push_back(gap.row("gap to ViT-AE narrows as ζ_max grows (point estimates)"));
  if (t.rows.empty()) {
    doc.text("No claim can be tested: the run has no evaluation sweep with two methods and no deployment.");
  } else {
    doc.table(t);
    // The same counts for machines (two runs' tables side by side: scripts/geometry_claims.py).
    static const csv::Schema schema =
        csv::schema("a claims.csv written by `tokcom report`", "claim,holds,fails,undecided,fails_at", {"claim", "fails_at"});
    csv::Writer w(schema);
    for (const auto& row : t.rows) {
      w.text(row[0]);
      for (int k = 1; k <= 3; ++k) w.integer(std::stoll(row[k]));
      w.text(row[4]).end_row();
    }
    const fs::path file = ctx.figdir.parent_path() / "claims.csv";
    fs::create_directories(file.parent_path());
    w.write(file.string());
    doc.text("These counts as CSV: " + ctx.relative(file) + ".");
  }
  if (!savings.empty()) {
    doc.text("Fewer channel symbols than the best digital codec at equal accuracy: per channel and SNR, the best "
             "accuracy any digital codec reaches, the least ζ it needs, the least ζ the proposal needs for the same "
             "accuracy, and the ratio (point estimates).");
    TableBlock s;
    s.header = {"channel", "SNR dB", "proposal", "best digital", "accuracy", "digital ζ", "proposal ζ", "fewer symbols"};
    s.rows = savings;
    doc.table(s);
  }
}

// Fig. 8: the controller's pick per (scenario, ζ_max) against the oracle bound.
void controller_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
  const bool plots = ctx.plots;
  const fs::path& figdir = ctx.figdir;
  const auto figure = [&ctx](const std::string& stem, const std::string& caption) { return ctx.figure(stem, caption); };
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
}

// The paper's Table II layout: one row per (method, regime, scenario), one column per ζ_max; each
// cell the deployed accuracy with its 95 % interval, or "–" and why no controller ran there.
void table2_overview(Document& doc, const ReportContext& ctx) {
  const RunData& run = ctx.run;
  std::vector<double> budgets;
  for (const ControlRun& c : run.controls)
    if (c.deploy)
      for (size_t i = 0; i < c.summary.rows.size(); ++i) budgets.push_back(c.summary.number(i, "zeta_max"));
  if (budgets.empty()) return;
  const auto same = [](double a, double b) { return std::fabs(a - b) < 1e-12; };
  std::sort(budgets.begin(), budgets.end());
  budgets.erase(std::unique(budgets.begin(), budgets.end(), same), budgets.end());
  TableBlock t;
  t.header = {"method", "regime", "scenario"};
  for (double z : budgets) t.header.push_back("ζ_max " + num(z));
  int deployed = 0, below = 0, over = 0, other = 0, exceeded = 0;
  double largest_over = 0;
  // The same cells for machines, one per line (comparing runs: scripts/geometry_claims.py).
  static const csv::Schema schema = csv::schema(
      "a table2.csv written by `tokcom report`",
      "method,regime,scenario,zeta_max,status,accuracy,low,high,repeats,zeta_exceeded,overshoot",
      {"method", "regime", "scenario", "status"}, {"accuracy", "low", "high", "repeats", "zeta_exceeded", "overshoot"});
  csv::Writer cells_csv(schema);
  const auto add = [&](const std::vector<std::string>& row, double z, const char* status) {
    cells_csv.text(row[0]).text(row[1]).text(row[2]).number(z).text(status);
  };
  for (const ControlRun& c : run.controls) {
    if (!c.deploy) continue;
    const std::vector<DeployCell> cells = deploy_cells(c);
    std::vector<std::string> scenarios;
    for (size_t i = 0; i < c.summary.rows.size(); ++i) {
      const std::string sc = c.summary.text(i, "scenario");
      if (std::find(scenarios.begin(), scenarios.end(), sc) == scenarios.end()) scenarios.push_back(sc);
    }
    for (const std::string& sc : scenarios) {
      std::vector<std::string> row = {table_field(c, "method"), table_field(c, "regime"), sc};
      for (double z : budgets) {
        const auto d = std::find_if(cells.begin(), cells.end(),
                                    [&](const DeployCell& x) { return x.scenario == sc && same(x.zeta_max, z); });
        if (d != cells.end()) {
          ++deployed;
          const bool exceeds = *std::max_element(d->zeta.begin(), d->zeta.end()) > z;
          exceeded += exceeds;
          const Interval ci = deploy_interval(*d);
          row.push_back(with_interval(mean(d->accuracy), ci) + (exceeds ? " †" : ""));
          add(row, z, "deployed");
          cells_csv.number(mean(d->accuracy), 6).number(std::max(0.0, ci.low), 6).number(std::min(1.0, ci.high), 6);
          cells_csv.integer(static_cast<int64_t>(d->accuracy.size())).integer(exceeds).empty().end_row();
          continue;
        }
        const int at = summary_row(c, sc, z);
        if (at < 0) {
          row.push_back("");  // not asked of this method
          continue;
        }
        if (!c.summary.optional_number(at, "oracle_accuracy")) {
          ++below;
          row.push_back("– below");
          add(row, z, "below");
          cells_csv.empty().empty().empty().empty().empty().empty().end_row();
          continue;
        }
        // Every (V, μ) tried overshot ζ_max on the proxy table: by how much the closest one did.
        std::optional<double> closest;
        for (size_t i = 0; c.search && i < c.search->rows.size(); ++i)
          if (c.search->text(i, "scenario") == sc && same(c.search->number(i, "zeta_max"), z))
            closest = std::min(closest.value_or(INFINITY), c.search->number(i, "zeta"));
        if (closest && *closest >= z * (1 - 1e-12)) {  // the paper's rule is mean ζ strictly below ζ_max
          ++over;
          const double by = std::max(0.0, *closest / z - 1);
          largest_over = std::max(largest_over, by);
          row.push_back(by < 1e-9 ? std::string("– at ζ_max") : fmt::format("– over +{:.2g} %", 100 * by));
          add(row, z, by < 1e-9 ? "at" : "over");
          cells_csv.empty().empty().empty().empty().empty().number(by, 6).end_row();
        } else {
          ++other;
          row.push_back("– not deployed");
          add(row, z, "other");
          cells_csv.empty().empty().empty().empty().empty().empty().end_row();
        }
      }
      t.rows.push_back(row);
    }
  }
  const fs::path file = ctx.figdir.parent_path() / "table2.csv";
  fs::create_directories(file.parent_path());
  cells_csv.write(file.string());
  doc.text("Every deployment at a glance, in the paper's layout: accuracy (%) of the picked controller on the real "
           "model with its 95 % interval (over the repeats, Student t, where there are several; Wilson over the run's "
           "images where there is one). The same cells as CSV: " + ctx.relative(file) + ".");
  doc.table(t);
  doc.text(fmt::format(
      "{} cells deployed, {} \"–\": {} below the method's cheapest operating point (\"– below\": no mix of its "
      "decisions reaches a mean ζ that low, the oracle bound included), {} where no (V, μ) the controller tried "
      "stayed strictly below ζ_max on the proxy table, the paper's feasibility rule (\"– over\": by how much the "
      "closest one overshot{}; \"– at ζ_max\": it met ζ_max exactly, which the strict \"<\" refuses){}. "
      "† a repeat's achieved mean ζ exceeded ζ_max on the real model ({} cells; the per-method tables give the "
      "largest).",
      deployed, below + over + other, below, over,
      over ? fmt::format("; the largest such overshoot +{:.2g} %", 100 * largest_over) : "",
      other ? fmt::format(", {} not deployed for another reason", other) : "", exceeded));
}

// Table II: the picked controller on the real model, with the oracle and the paper's range.
void deployment_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
  doc.heading(2, "Deployment (Table II)");
  bool any_deploy = false;
  table2_overview(doc, ctx);
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
      doc.text("The paper's Table II rows for " + pm + " (accuracy %, \"noiseless – robust\"; METHOD §9.1; source: " +
               kPaperSource + "):");
      doc.table(paper_rows(pm));
    }
  }
  if (!any_deploy) doc.text("No deployment (deploy_summary.csv of `tokcom optimize --bank`) in this run.");
}

// Fig. 9: the token-selection pictures of the run.
void selection_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
  ReportFiles& files = *ctx.files;
  doc.heading(2, "Token selection (Fig. 9)");
  if (run.pictures.empty()) {
    doc.text("No token-selection picture in this run (fig9*.png or a fig9/ or visualize/ folder); make one with "
             "`tokcom visualize --checkpoint DIR/adaptive/model.safetensors -o DIR/fig9/fig9.png` and rerun the "
             "report.");
  }
  for (const std::string& p : run.pictures) {
    const fs::path abs = fs::path(run.dir) / p;
    files.figures.push_back(abs.string());
    doc.figure(FigureBlock{ctx.relative(abs), "",
                           p + ": kept patches in colour, dropped patches greyed out, one column per budget α"});
  }
}

// Kept fraction vs α from `tokcom eval` (METHOD §10 P26: the hard kept fraction must track the budget).
void budget_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
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
}

// Training curves and the final numbers of every epochs CSV.
// Each JSCC model against the clean model it was trained on: its validation accuracy at 20 dB over
// the clean model's last-epoch validation accuracy (the stage its config's train.init names; the
// calibration's model is the adaptive stage's weights). A bank far below its clean model carries
// that handicap into every comparison of the sweep.
void bank_quality(Document& doc, const ReportContext& ctx) {
  const RunData& run = ctx.run;
  TableBlock t;
  std::map<std::string, Series> shares;  // "bank regime" → (r, % of clean)
  t.header = {"bank", "regime", "r", "val accuracy at 20 dB", "clean model", "clean val accuracy", "% of clean"};
  int rated = 0, reached = 0;
  std::map<std::string, std::string> clean_of;  // bank stage → its clean stage (one config read per bank)
  for (const EpochsFile& e : run.epochs) {
    const csv::Table& c = e.table;
    if (!e.jscc || c.rows.empty() || std::find(c.header.begin(), c.header.end(), "val_accuracy_snr20") == c.header.end())
      continue;
    const bool known = clean_of.count(e.stage) > 0;
    std::string& clean_stage = clean_of[e.stage];
    const fs::path config = fs::path(run.dir) / e.stage / "config.yaml";
    if (!known && fs::exists(config)) {
      try {
        const std::string init = Config::load(config.string(), {}).get_string("train.init");
        clean_stage = fs::path(init).parent_path().filename().string();
        if (clean_stage == "calibrated") clean_stage = "adaptive";
      } catch (const Error&) {  // a config this build cannot read: the row says "?"
      }
    }
    std::optional<double> clean;
    for (const EpochsFile& f : run.epochs)
      if (!f.jscc && f.stage == clean_stage && !f.table.rows.empty() &&
          std::find(f.table.header.begin(), f.table.header.end(), "val_accuracy") != f.table.header.end())
        clean = f.table.number(f.table.rows.size() - 1, "val_accuracy");
    const size_t last = c.rows.size() - 1;
    const double acc = c.number(last, "val_accuracy_snr20"), r = c.number(last, "ratio");
    std::string share = "–";
    if (clean && *clean > 0) {
      share = fmt::format("{:.1f}", 100 * acc / *clean);
      Series& series = shares[e.stage + " " + c.text(last, "regime")];
      series.label = e.stage + " (" + c.text(last, "regime") + ")";
      series.points.emplace_back(r, 100 * acc / *clean);
      if (r >= 0.05) {
        ++rated;
        if (acc >= 0.97 * *clean) ++reached;
      }
    }
    t.rows.push_back({e.stage, c.text(last, "regime"), num(r), fmt::format("{:.4f}", acc),
                      clean_stage.empty() ? "?" : clean_stage, clean ? fmt::format("{:.4f}", *clean) : "–", share});
  }
  if (t.rows.empty()) return;
  doc.text(fmt::format("Each JSCC model against its clean model: validation accuracy through the link at 20 dB (AWGN, "
                       "α = 1, hard) over the clean model's last-epoch validation accuracy (the stage its config's "
                       "train.init names). {} of the {} models with r ≥ 0.05 reach 97 % of their clean model; a "
                       "method's accuracy in the sweep is bounded by this share.",
                       reached, rated));
  if (ctx.plots) {
    std::vector<Series> curves;
    for (auto& [key, series] : shares) {
      std::sort(series.points.begin(), series.points.end());
      curves.push_back(series);
    }
    if (const auto f = link_share_figure(ctx, curves)) doc.figure(*f);
  }
  doc.table(t);
}

void training_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
  const bool plots = ctx.plots;
  doc.heading(2, "Training curves");
  if (run.epochs.empty()) doc.text("No epochs.csv in this run.");
  if (!run.epochs.empty()) {
    TableBlock t;
    t.header = {"stage", "file", "epochs", "final loss", "final train accuracy", "final val accuracy", "images/s"};
    std::vector<Series> loss, val_accuracy;
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
      Series ls{label, {}}, as{label, {}};
      for (size_t i = 0; i < c.rows.size(); ++i) {
        ls.points.emplace_back(c.number(i, "epoch"), c.number(i, "loss"));
        if (!val_cols.empty()) as.points.emplace_back(c.number(i, "epoch"), val(i));
      }
      if (!c.rows.empty()) {
        const size_t last = c.rows.size() - 1;
        double ips = 0;
        for (size_t i = 0; i < c.rows.size(); ++i) ips += c.number(i, "images_per_s");
        t.rows.push_back({e.stage, c.name, std::to_string(c.rows.size()), fmt::format("{:.4f}", c.number(last, "loss")),
                          fmt::format("{:.4f}", c.number(last, "train_accuracy")),
                          val_cols.empty() ? "–" : fmt::format("{:.4f}", val(last)),
                          fmt::format("{:.0f}", ips / static_cast<double>(c.rows.size()))});
        loss.push_back(ls);
        val_accuracy.push_back(as);
      }
    }
    if (plots) {
      if (const auto f = training_figure(ctx, loss, val_accuracy)) doc.figure(*f);
    }
    doc.table(t);
    bank_quality(doc, ctx);
  }
}

// Wall time of each stage.
void timing_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
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
      if (any) t.rows.push_back({"sum of the stages", fmt::format("{:.1f}", total), ""});
      doc.text("Wall time of each stage as its pipeline (`tokcom demo`, `reproduce`) measured it (.seconds: over every "
               "call that worked on the stage's command, interrupted ones included; \"–\": not recorded, e.g. a stage "
               "reused from an earlier run before timing was recorded). Stages that ran side by side overlap, so the "
               "sum is more than the wall time. Training throughput is in the training table.");
      doc.table(t);
    }
  }
  if (run.calls && !run.calls->rows.empty()) {
    // The stages' times add up to more than the wall time when stages run side by side, and a
    // study that was interrupted took several calls: calls.csv has the wall time itself.
    const csv::Table& calls = *run.calls;
    TableBlock t;
    t.header = {"call started (UTC)", "wall time (s)", "jobs", "threads", "stages run", "stages reused", "outcome"};
    double wall = 0;
    for (size_t i = 0; i < calls.rows.size(); ++i) {
      wall += calls.number(i, "seconds");
      t.rows.push_back({calls.text(i, "started_utc"), fmt::format("{:.0f}", calls.number(i, "seconds")),
                        calls.text(i, "jobs"), calls.text(i, "threads"), calls.text(i, "ran"), calls.text(i, "reused"),
                        calls.text(i, "outcome")});
    }
    t.rows.push_back({"all calls", fmt::format("{:.0f} ({:.2f} h)", wall, wall / 3600), "", "", "", "", ""});
    doc.text(fmt::format("The pipeline's calls (calls.csv, one row per call of the command): {:.0f} s of wall time "
                         "({:.2f} h) over {} call{}. Calls made before the ledger existed are not in it.",
                         wall, wall / 3600, calls.rows.size(), calls.rows.size() == 1 ? "" : "s"));
    doc.table(t);
  }
}

// Provenance: versions, configs and their digests, sidecars, files read.
void provenance_section(Document& doc, ReportContext& ctx) {
  const RunData& run = ctx.run;
  const ReportOptions& options = ctx.options;
  doc.heading(2, "Provenance");
  doc.text(fmt::format("Report made by tokcom {} (git {}), LibTorch {}{}.", TOKCOM_VERSION, tokcom::git_hash(),
                       TORCH_VERSION, options.libraries.empty() ? "" : ", " + options.libraries));
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

}  // namespace tokcom::report

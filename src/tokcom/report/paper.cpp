#include "tokcom/report/paper.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tokcom/core/csv.h"
#include "tokcom/split/method.h"

namespace tokcom::report {
namespace {
constexpr PaperCell kNone{0, 0, false};
}  // namespace

const char* const kPaperSource =
    "Devoto et al., \"Adaptive Semantic Token Communication for Transformer-based Edge Inference\" (2025), Table II: "
    "deployment accuracy (%) under the Lyapunov controller, DeiT-Tiny on 224-px Imagenette";
const double kPaperZetaMax[6] = {0.0025, 0.005, 0.01, 0.02, 0.05, 0.1};

const std::vector<PaperRow>& paper_table2() {
  static const std::vector<PaperRow> rows = {
    {"G1", "ViT AE", {{62.96, 65.68}, {68.05, 70.11}, {77.48, 79.64}, {80.92, 81.49}, {80.79, 83.40}, {80.97, 84.09}}},
    {"G1", "MNv3 CNN", {kNone, {72.38, 65.38}, {72.71, 65.91}, {72.33, 66.65}, {73.20, 67.36}, {73.10, 67.46}}},
    {"G1", "Proposal", {{63.41, 72.20}, {71.14, 76.61}, {78.93, 81.72}, {81.15, 83.73}, {81.07, 84.23}, {85.15, 85.55}}},
    {"G2", "ViT AE", {{62.34, 65.84}, {67.26, 70.67}, {77.06, 79.34}, {80.92, 81.83}, {80.54, 82.55}, {80.85, 83.25}}},
    {"G2", "MNv3 CNN", {kNone, {72.10, 65.47}, {72.75, 65.74}, {72.65, 66.45}, {73.15, 67.31}, {73.16, 67.30}}},
    {"G2", "Proposal", {{64.14, 71.90}, {74.73, 76.66}, {79.11, 79.97}, {81.21, 81.48}, {81.16, 84.39}, {81.11, 85.52}}},
    {"G3", "ViT AE", {{61.01, 57.35}, {66.90, 63.06}, {77.20, 76.41}, {81.04, 83.41}, {80.43, 83.63}, {80.36, 83.45}}},
    {"G3", "MNv3 CNN", {kNone, {71.97, 65.35}, {72.92, 65.45}, {72.54, 66.14}, {73.12, 67.41}, {73.10, 67.31}}},
    {"G3", "Proposal", {{62.88, 70.88}, {66.23, 72.99}, {79.31, 79.69}, {81.10, 83.48}, {81.07, 84.46}, {80.82, 85.50}}},
    {"G4", "ViT AE", {{60.65, 57.49}, {66.72, 64.53}, {76.82, 77.19}, {80.22, 81.02}, {80.69, 83.90}, {80.34, 83.26}}},
    {"G4", "MNv3 CNN", {kNone, {71.83, 65.55}, {72.70, 65.52}, {72.97, 66.20}, {73.09, 67.24}, {73.00, 67.29}}},
    {"G4", "Proposal", {{63.27, 69.90}, {73.31, 74.51}, {78.92, 79.16}, {80.98, 83.04}, {81.04, 84.36}, {81.04, 85.03}}},
    {"G5", "ViT AE", {{55.80, 63.80}, {61.07, 72.79}, {73.35, 79.04}, {79.12, 80.72}, {80.02, 81.45}, {80.22, 82.13}}},
    {"G5", "MNv3 CNN", {kNone, {71.41, 62.85}, {72.63, 64.32}, {72.79, 65.58}, {72.95, 67.30}, {72.93, 66.95}}},
    {"G5", "Proposal", {{55.13, 64.80}, {65.27, 73.00}, {72.70, 78.73}, {78.37, 79.88}, {79.90, 82.04}, {80.34, 83.81}}},
  };
  return rows;
}

std::string paper_method(const std::string& method) {
  const Method* m = find_method(method);
  if (!m) return "";
  for (const PaperRow& r : paper_table2()) {
    if (std::string(r.method) == m->paper_label) return m->paper_label;
  }
  return "";
}

std::string paper_range(const std::string& method, const std::string& regime, double zeta_max) {
  const std::string m = paper_method(method);
  if (m.empty() || (regime != "robust" && regime != "noiseless")) return "";
  int column = -1;
  for (int i = 0; i < 6; ++i)
    if (std::fabs(kPaperZetaMax[i] - zeta_max) < 1e-12) column = i;
  if (column < 0) return "";
  double lo = 1e9, hi = -1e9;
  for (const PaperRow& r : paper_table2()) {
    const PaperCell& c = r.cells[column];
    if (m != r.method || !c.present) continue;
    const double v = regime == "noiseless" ? c.noiseless : c.robust;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (hi < 0) return "";
  return fmt::format("{:.2f}–{:.2f}", lo, hi);
}

TableBlock paper_rows(const std::string& label) {
  TableBlock t;
  t.header = {"group", "method"};
  for (double z : kPaperZetaMax) t.header.push_back("ζ_max " + csv::format_number(z));
  for (const PaperRow& r : paper_table2()) {
    if (label != r.method) continue;
    std::vector<std::string> row = {r.group, r.method};
    for (const PaperCell& c : r.cells) row.push_back(c.present ? fmt::format("{:.2f} – {:.2f}", c.noiseless, c.robust) : "–");
    t.rows.push_back(row);
  }
  return t;
}

}  // namespace tokcom::report

#include "tokcom/control/proxy_table.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"

namespace tokcom {
namespace {

const std::vector<std::string> kColumns = {"method", "channel", "regime", "snr_db",
                                           "ratio",  "budget",  "zeta",   "accuracy"};

std::string join(const std::set<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

}  // namespace

ProxyTable ProxyTable::from_rows(const std::vector<ProxyRow>& rows, const std::string& origin) {
  if (rows.empty()) throw FormatError(origin + ": proxy table has no rows");
  ProxyTable t;
  t.method_ = rows[0].method;
  t.channel_ = rows[0].channel;
  t.regime_ = rows[0].regime;
  std::map<std::pair<double, double>, int> decision_of;  // (ratio, budget) → index
  std::map<double, int> ratio_of;
  std::set<double> snrs;
  for (const ProxyRow& r : rows) {
    if (r.method != t.method_ || r.channel != t.channel_ || r.regime != t.regime_) {
      throw FormatError(fmt::format("{}: rows mix ({}, {}, {}) and ({}, {}, {}); filter by method, "
                                    "channel and regime", origin, t.method_, t.channel_, t.regime_,
                                    r.method, r.channel, r.regime));
    }
    if (!(r.accuracy >= 0.0 && r.accuracy <= 1.0)) {
      throw FormatError(fmt::format("{}: accuracy {} at snr_db {}, ratio {}, budget {} is outside "
                                    "[0, 1] (accuracy is a fraction, not a percentage)",
                                    origin, r.accuracy, r.snr_db, r.ratio, r.budget));
    }
    if (!(r.zeta >= 0.0)) throw FormatError(fmt::format("{}: negative zeta {}", origin, r.zeta));
    if (!ratio_of.count(r.ratio)) {
      ratio_of.emplace(r.ratio, static_cast<int>(t.ratios_.size()));
      t.ratios_.push_back(r.ratio);
    }
    if (decision_of.emplace(std::make_pair(r.ratio, r.budget), static_cast<int>(t.decisions_.size())).second) {
      t.decisions_.push_back(Decision{r.budget, ratio_of[r.ratio], r.ratio});
    }
    snrs.insert(r.snr_db);
  }
  t.snr_grid_.assign(snrs.begin(), snrs.end());
  const size_t cells = t.snr_grid_.size() * t.decisions_.size();
  t.accuracy_.assign(cells, std::nan(""));
  t.zeta_.assign(cells, std::nan(""));
  for (const ProxyRow& r : rows) {
    const int s = static_cast<int>(std::lower_bound(t.snr_grid_.begin(), t.snr_grid_.end(), r.snr_db) -
                                   t.snr_grid_.begin());
    const size_t i = s * t.decisions_.size() + decision_of[{r.ratio, r.budget}];
    if (!std::isnan(t.accuracy_[i])) {
      throw FormatError(fmt::format("{}: duplicate entry for snr_db {}, ratio {}, budget {}", origin,
                                    r.snr_db, r.ratio, r.budget));
    }
    t.accuracy_[i] = r.accuracy;
    t.zeta_[i] = r.zeta;
  }
  for (size_t i = 0; i < cells; ++i) {
    if (std::isnan(t.accuracy_[i])) {
      const Decision& d = t.decisions_[i % t.decisions_.size()];
      throw FormatError(fmt::format("{}: missing entry for snr_db {}, ratio {}, budget {} (a proxy "
                                    "table needs every decision at every SNR)", origin,
                                    t.snr_grid_[i / t.decisions_.size()], d.ratio, d.budget));
    }
  }
  return t;
}

const csv::Schema& ProxyTable::schema() {
  static const csv::Schema s = csv::schema("a proxy table (tokcom optimize --write-table)", kHeader,
                                           {"method", "channel", "regime"});
  return s;
}

ProxyTable ProxyTable::read_csv(const std::string& path, const ProxyFilter& filter) {
  // Any CSV holding the columns (a proxy table, a `tokcom sweep` CSV, a table from another system).
  const csv::Table table = csv::read(path, "proxy table '" + path + "'");
  std::vector<std::string> names;
  for (size_t c = 0; c < kColumns.size(); ++c) {
    std::string name = kColumns[c];
    // A `tokcom sweep` CSV names the budget `alpha`: the proxy table is read straight from the
    // sweep (issue "controller": built from the sweep CSV, not a second code path).
    if (name == "budget" && !table.has(name) && table.has("alpha")) name = "alpha";
    if (!table.has(name)) {
      throw FormatError("proxy table '" + path + "': header lacks column '" + kColumns[c] + "' (expected " +
                        kHeader + ", got " + fmt::format("{}", fmt::join(table.header, ",")) + ")");
    }
    names.push_back(name);
  }
  std::vector<ProxyRow> rows;
  std::set<std::string> seen;
  for (size_t i = 0; i < table.rows.size(); ++i) {
    ProxyRow r;
    r.method = table.text(i, names[0]);
    r.channel = table.text(i, names[1]);
    r.regime = table.text(i, names[2]);
    seen.insert(r.method + "/" + r.channel + "/" + r.regime);
    if ((!filter.method.empty() && r.method != filter.method) ||
        (!filter.channel.empty() && r.channel != filter.channel) ||
        (!filter.regime.empty() && r.regime != filter.regime)) {
      continue;
    }
    r.snr_db = table.number(i, names[3]);
    r.ratio = table.number(i, names[4]);
    r.budget = table.number(i, names[5]);
    r.zeta = table.number(i, names[6]);
    r.accuracy = table.number(i, names[7]);
    rows.push_back(std::move(r));
  }
  if (rows.empty()) {
    throw FormatError(fmt::format("proxy table '{}': no rows match method '{}', channel '{}', regime "
                                  "'{}' (the file holds method/channel/regime: {})", path,
                                  filter.method, filter.channel, filter.regime, join(seen)));
  }
  std::set<std::string> kept;
  for (const auto& r : rows) kept.insert(r.method + "/" + r.channel + "/" + r.regime);
  if (kept.size() > 1) {
    throw FormatError("proxy table '" + path + "' holds several method/channel/regime (" + join(kept) +
                      "); choose one with --method, --channel, --regime");
  }
  return from_rows(rows, "proxy table '" + path + "'");
}

std::vector<ProxyRow> ProxyTable::rows() const {
  std::vector<ProxyRow> out;
  for (int s = 0; s < snr_count(); ++s) {
    for (int d = 0; d < decision_count(); ++d) {
      out.push_back(ProxyRow{method_, channel_, regime_, snr_grid_[s], decisions_[d].ratio,
                             decisions_[d].budget, zeta(d, s), accuracy(d, s)});
    }
  }
  return out;
}

void ProxyTable::write_csv(const std::string& path) const {
  csv::Writer out(schema());
  for (const ProxyRow& r : rows()) {
    out.text(r.method).text(r.channel).text(r.regime).number(r.snr_db).number(r.ratio).number(r.budget);
    out.number(r.zeta).number(r.accuracy).end_row();
  }
  out.write(path);
}

int ProxyTable::nearest(double snr_db) const {
  const auto& g = snr_grid_;
  const auto it = std::lower_bound(g.begin(), g.end(), snr_db);  // first point ≥ snr
  if (it == g.begin()) return 0;
  if (it == g.end()) return static_cast<int>(g.size()) - 1;
  const int hi = static_cast<int>(it - g.begin());
  // Ties go to the lower point (METHOD §8.2): the upper wins only when strictly closer.
  return (g[hi] - snr_db < snr_db - g[hi - 1]) ? hi : hi - 1;
}

SnrLookup ProxyTable::lookup(double snr_db, bool interpolate) const {
  if (!interpolate) {
    const int s = nearest(snr_db);
    return SnrLookup{s, s, 0.0};
  }
  const auto& g = snr_grid_;
  if (snr_db <= g.front()) return SnrLookup{0, 0, 0.0};
  if (snr_db >= g.back()) {
    const int last = static_cast<int>(g.size()) - 1;
    return SnrLookup{last, last, 0.0};
  }
  const int hi = static_cast<int>(std::upper_bound(g.begin(), g.end(), snr_db) - g.begin());
  return SnrLookup{hi - 1, hi, (snr_db - g[hi - 1]) / (g[hi] - g[hi - 1])};
}

}  // namespace tokcom

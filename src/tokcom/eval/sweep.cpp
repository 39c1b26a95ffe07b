#include "tokcom/eval/sweep.h"

#include <cmath>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"

namespace tokcom {
namespace {

double parse_number(const std::string& s, const std::string& flag) {
  const std::optional<double> v = parse_double(s);
  if (!v) throw UsageError(fmt::format("{}: '{}' is not a number", flag, s));
  return *v;
}

// The key a row is recognised by in a merge: every grid coordinate of the cell.
std::string cell_key(const std::string& method, const std::string& regime, const std::string& channel,
                     const std::string& snr, const std::string& ratio, const std::string& alpha) {
  return method + "|" + regime + "|" + channel + "|" + snr + "|" + ratio + "|" + alpha;
}

}  // namespace

std::vector<SweepCell> sweep_cells(const SweepGrid& g) {
  std::vector<SweepCell> cells;
  for (const auto& method : g.methods) {
    if (is_digital_method(method)) {
      for (double zeta : g.zetas)
        for (const auto& channel : g.channels) {
          if (channel != "awgn") continue;  // the AWGN capacity (METHOD §6.3)
          for (double snr : g.snrs) {
            SweepCell c;
            c.index = static_cast<int64_t>(cells.size());
            c.method = method;
            c.regime = "none";
            c.channel = channel;
            c.snr_db = snr;
            c.ratio_index = -1;
            c.zeta = zeta;
            cells.push_back(c);
          }
        }
      continue;
    }
    for (const auto& regime : g.regimes)
      for (size_t r = 0; r < g.ratios.size(); ++r)
        for (double alpha : method_has_budget(method) ? g.alphas : std::vector<double>{1.0})
          for (const auto& channel : g.channels)
            for (double snr : g.snrs) {
              SweepCell c;
              c.index = static_cast<int64_t>(cells.size());
              c.method = method;
              c.regime = regime;
              c.channel = channel;
              c.snr_db = snr;
              c.ratio = g.ratios[r];
              c.ratio_index = static_cast<int64_t>(r);
              c.alpha = alpha;
              cells.push_back(c);
            }
  }
  return cells;
}

Shard parse_shard(const std::string& text) {
  const auto parts = split_list(text, '/');
  Shard s;
  try {
    if (parts.size() != 2) throw std::invalid_argument(text);
    size_t a = 0, b = 0;
    s.k = std::stoll(parts[0], &a);
    s.n = std::stoll(parts[1], &b);
    if (a != parts[0].size() || b != parts[1].size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("--shard: '{}' is not k/n (e.g. 0/4 for the first of four shards)", text));
  }
  if (s.n < 1 || s.k < 0 || s.k >= s.n) {
    throw UsageError(fmt::format("--shard: '{}' needs 0 <= k < n (k is Slurm's array index)", text));
  }
  return s;
}

std::pair<int64_t, int64_t> shard_range(int64_t cells, const Shard& s) {
  return {cells * s.k / s.n, cells * (s.k + 1) / s.n};
}

std::vector<double> parse_range(const std::string& text, const std::string& flag) {
  std::vector<double> v;
  if (text.find(':') != std::string::npos) {
    const auto parts = split_list(text, ':');
    if (parts.size() != 3) throw UsageError(fmt::format("{}: '{}' is not start:stop:step", flag, text));
    const double start = parse_number(parts[0], flag), stop = parse_number(parts[1], flag),
                 step = parse_number(parts[2], flag);
    if (step <= 0 || stop < start) throw UsageError(fmt::format("{}: '{}' needs step > 0 and stop >= start", flag, text));
    const auto n = static_cast<int64_t>(std::floor((stop - start) / step + 1e-9));
    if (n > 100000) throw UsageError(fmt::format("{}: '{}' has more than 100000 values", flag, text));
    for (int64_t i = 0; i <= n; ++i) v.push_back(start + static_cast<double>(i) * step);
  } else {
    for (const auto& item : split_list(text, ',')) v.push_back(parse_number(item, flag));
  }
  if (v.empty()) throw UsageError(flag + ": empty list");
  return v;
}

const csv::Schema& sweep_schema() {
  // Open: kept_fraction follows (sweeps written before it existed end at `mode` and still read).
  static const csv::Schema s =
      csv::schema("a sweep CSV written by `tokcom sweep`",
                  "method,regime,channel,snr_db,ratio,alpha,zeta,kept_tokens,symbols,accuracy,n_images,seed,mode",
                  {"method", "regime", "channel", "mode"}, {}, /*open=*/true);
  return s;
}

const std::vector<std::string>& sweep_extra_columns() {
  static const std::vector<std::string> extra = {"kept_fraction"};
  return extra;
}

void add_sweep_row(csv::Writer& out, const SweepRow& r) {
  out.text(r.cell.method).text(r.cell.regime).text(r.cell.channel);  // a channel may hold commas: quoted
  out.number(r.cell.snr_db).number(r.cell.ratio).number(r.cell.alpha).number(r.zeta, 8);
  out.fixed(r.kept_tokens, 4).fixed(r.symbols, 2).fixed(r.accuracy, 6);
  out.integer(r.n_images).integer(static_cast<int64_t>(r.seed)).text(r.mode).fixed(r.kept_fraction, 4).end_row();
}

nlohmann::json grid_to_json(const SweepGrid& g) {
  return {{"methods", g.methods}, {"regimes", g.regimes}, {"channels", g.channels}, {"snrs", g.snrs},
          {"ratios", g.ratios},   {"alphas", g.alphas},   {"zetas", g.zetas},     {"mode", g.mode}};
}

SweepGrid grid_from_json(const nlohmann::json& j, const std::string& origin) {
  try {
    SweepGrid g;
    g.methods = j.at("methods").get<std::vector<std::string>>();
    g.regimes = j.at("regimes").get<std::vector<std::string>>();
    g.channels = j.at("channels").get<std::vector<std::string>>();
    g.snrs = j.at("snrs").get<std::vector<double>>();
    g.ratios = j.at("ratios").get<std::vector<double>>();
    g.alphas = j.at("alphas").get<std::vector<double>>();
    g.zetas = j.value("zetas", std::vector<double>{});
    g.mode = j.at("mode").get<std::string>();
    return g;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: malformed sweep grid: {}", origin, e.what()));
  }
}

void write_sweep(const std::string& path, const SweepGrid& grid, const Shard& shard, uint64_t seed,
                 const std::vector<SweepRow>& rows, const nlohmann::json& extra) {
  csv::Writer csv(sweep_schema(), sweep_extra_columns());
  for (const auto& r : rows) add_sweep_row(csv, r);
  nlohmann::json side = extra;
  side["grid"] = grid_to_json(grid);
  side["cells"] = sweep_cells(grid).size();
  side["shard"] = fmt::format("{}/{}", shard.k, shard.n);
  side["seed"] = seed;
  // Sidecar first: a CSV on disk always has its sidecar.
  write_file_atomic(path + ".json", side.dump(2) + "\n");
  csv.write(path);
}

void merge_sweeps(const std::vector<std::string>& inputs, const std::string& out) {
  if (inputs.empty()) throw UsageError("merge: no input CSVs");
  nlohmann::json first;
  SweepGrid grid;
  std::map<std::string, int64_t> index_of;
  std::vector<SweepCell> cells;
  std::vector<std::vector<std::string>> lines;
  std::vector<std::string> source, header;
  for (const auto& path : inputs) {
    nlohmann::json side;
    try {
      side = nlohmann::json::parse(read_file(path + ".json"));
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(fmt::format("{}.json: not a sweep sidecar: {}", path, e.what()));
    }
    if (first.is_null()) {
      first = side;
      grid = grid_from_json(side.at("grid"), path + ".json");
      cells = sweep_cells(grid);
      lines.assign(cells.size(), {});
      source.assign(cells.size(), "");
      for (const auto& c : cells) {
        std::string key = cell_key(c.method, c.regime, c.channel, csv::format_number(c.snr_db),
                                   csv::format_number(c.ratio), csv::format_number(c.alpha));
        if (is_digital_method(c.method)) key += "|" + fmt::format("{:.8g}", c.zeta);  // ζ is a coordinate
        index_of[key] = c.index;
      }
    } else {
      for (const char* key : {"grid", "seed"}) {
        if (side.value(key, nlohmann::json()) != first.value(key, nlohmann::json())) {
          throw FormatError(fmt::format("merge: {} has a different {} than {} (shards of different sweeps)", path, key,
                                        inputs.front()));
        }
      }
    }
    const csv::Table table = csv::read(path, path, sweep_schema());
    if (header.empty()) {
      header = table.header;
    } else if (table.header != header) {
      throw FormatError(fmt::format("merge: {} has the columns {}, {} has {} (shards of different tokcom versions)", path,
                                    fmt::join(table.header, ","), inputs.front(), fmt::join(header, ",")));
    }
    for (size_t i = 0; i < table.rows.size(); ++i) {
      const std::vector<std::string>& f = table.rows[i];
      // Coordinates compared as numbers (written "0.5", read back the same double).
      std::string key = cell_key(f[0], f[1], f[2], csv::format_number(table.number(i, "snr_db")),
                                 csv::format_number(table.number(i, "ratio")),
                                 csv::format_number(table.number(i, "alpha")));
      if (is_digital_method(f[0])) key += "|" + f[6];
      const auto it = index_of.find(key);
      if (it == index_of.end()) {
        throw FormatError(fmt::format("{}: cell ({}) is not in the sweep's grid", table.where(i), key));
      }
      if (!lines[it->second].empty()) {
        throw FormatError(fmt::format("merge: cell ({}) appears in both {} and {}: overlapping shards", key,
                                      source[it->second], path));
      }
      lines[it->second] = f;
      source[it->second] = path;
    }
  }
  std::vector<std::string> missing;
  for (const auto& c : cells) {
    if (lines[c.index].empty()) {
      missing.push_back(fmt::format("({} {} {} snr {} r {} α {})", c.method, c.regime, c.channel, c.snr_db, c.ratio,
                                    c.alpha));
    }
  }
  if (!missing.empty()) {
    missing.resize(std::min<size_t>(missing.size(), 3));
    throw FormatError(fmt::format("merge: {} of {} cells missing (a shard was not run or not given), first: {}",
                                  std::count_if(lines.begin(), lines.end(), [](const auto& l) { return l.empty(); }), cells.size(),
                                  fmt::join(missing, ", ")));
  }
  csv::Writer csv(sweep_schema(), std::vector<std::string>(header.begin() + static_cast<std::ptrdiff_t>(sweep_schema().columns.size()),
                                                           header.end()));
  for (const auto& l : lines) csv.row(l);
  nlohmann::json side = first;
  side["shard"] = "0/1";
  side["merged_from"] = inputs;
  write_file_atomic(out + ".json", side.dump(2) + "\n");
  csv.write(out);
}

}  // namespace tokcom

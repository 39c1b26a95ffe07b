// eval/sweep.h — the evaluation grid of `tokcom sweep`, its shards, its tidy CSV and `tokcom merge`.
//
// A grid is methods × regimes × ratios × alphas × channels × SNRs (static methods such as vit-ae
// only take α = 1). Digital baselines (resize, jpeg, webp, avif; "/practical" for the 5G NR link)
// take methods × zetas × SNRs on AWGN only (their capacity is the AWGN capacity, METHOD §6.3), with
// regime "none", ratio 0, α = 1 and the ζ setting in the zeta column. Cells are numbered in that nesting order; the number seeds the cell's noise, so
// a cell gives the same row whether it runs alone, in a shard or in the whole grid. A shard k/n
// (k = 0..n−1, Slurm's array index) is a contiguous range of cells, so one shard shares the device
// half's work across its channels and SNRs.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokcom/core/csv.h"
#include "tokcom/split/method.h"

namespace tokcom {

struct SweepGrid {
  std::vector<std::string> methods, regimes, channels;
  std::vector<double> snrs, ratios, alphas;
  std::vector<double> zetas;  // ζ settings of the digital baselines
  std::string mode = "hard";  // soft | hard
};

struct SweepCell {
  int64_t index = 0;
  std::string method, regime, channel;
  double snr_db = 0, ratio = 0, alpha = 1;
  int64_t ratio_index = 0;  // index of `ratio` in the grid's ratios
  double zeta = 0;          // digital baselines: the ζ setting
};

struct Shard {
  int64_t k = 0, n = 1;
};

// A method with a budget (method_has_budget, split/method.h) gets every α, a static one α = 1 only;
// a digital codec gets every ζ instead of every r.
std::vector<SweepCell> sweep_cells(const SweepGrid& grid);
// "k/n" with 0 ≤ k < n; UsageError otherwise.
Shard parse_shard(const std::string& text);
// Cells [begin, end) of shard k of n.
std::pair<int64_t, int64_t> shard_range(int64_t cells, const Shard& shard);
// "-20:20:2.5" (inclusive) or "0,10,20" → values; UsageError naming `flag` otherwise.
std::vector<double> parse_range(const std::string& text, const std::string& flag);

struct SweepRow {
  SweepCell cell;
  double zeta = 0, kept_tokens = 0, symbols = 0, accuracy = 0;
  double kept_fraction = 1;  // kept patch tokens / patches, measured (1 for static and digital methods)
  int64_t n_images = 0;
  uint64_t seed = 0;
  std::string mode;
};

// The sweep CSV: method,regime,channel,snr_db,ratio,alpha,zeta,kept_tokens,symbols,accuracy,n_images,seed,mode,
// then kept_fraction (an open schema: sweeps from before it end at `mode` and still read).
const csv::Schema& sweep_schema();
const std::vector<std::string>& sweep_extra_columns();
// One row of it (channel specs with commas come out quoted).
void add_sweep_row(csv::Writer& out, const SweepRow& row);

nlohmann::json grid_to_json(const SweepGrid& grid);
SweepGrid grid_from_json(const nlohmann::json& j, const std::string& origin);

// Writes <path> (rows in cell order) and <path>.json (grid, shard, seed, `extra`) atomically.
void write_sweep(const std::string& path, const SweepGrid& grid, const Shard& shard, uint64_t seed,
                 const std::vector<SweepRow>& rows, const nlohmann::json& extra);

// Joins shard CSVs (each with its .json sidecar) into `out`: the grids, seeds and modes must
// agree, no cell may appear twice and every cell of the grid must be present (FormatError naming
// the files and the first offending cells). Rows are copied verbatim in cell order, so the result
// equals the unsharded sweep byte for byte.
void merge_sweeps(const std::vector<std::string>& inputs, const std::string& out);

}  // namespace tokcom

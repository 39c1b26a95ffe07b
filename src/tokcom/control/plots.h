// Figures of the control layer, made by gnuplot from the CSVs we wrote (never from memory): a
// generated .gp script lands next to the data and gnuplot renders it to SVG and PNG.
#pragma once
#include <string>
#include <vector>

namespace tokcom {

// True when `gnuplot` is on PATH.
bool gnuplot_available();

// Runs `gnuplot script` (absolute path); false (and a warning) when gnuplot fails.
bool run_gnuplot(const std::string& script);
// A gnuplot string literal: 'text' with every ' doubled.
std::string gnuplot_quote(const std::string& text);
// Writes STEM.gp that draws `body` once per terminal (SVG, then PNG: STEM.svg, STEM.png) and runs it.
bool render_gnuplot(const std::string& stem, const std::string& body);

// Queue Z(t) and ζ(t) over time from a trace.csv: writes STEM.gp, STEM.svg and STEM.png.
// Top: Z before each slot. Bottom: per-slot ζ, its running mean, and ζ_max.
bool plot_trace(const std::string& trace_csv, double zeta_max, const std::string& stem,
                const std::string& title);

// Fig. 8 style (METHOD §9.2): accuracy vs ζ_max, one curve per scenario, controller solid and
// oracle dashed; right panel achieved mean ζ vs ζ_max with the line ζ = ζ_max. `data_csv` holds
// blocks (one per scenario, separated by two blank lines) with columns
// zeta_max,accuracy,zeta,oracle_accuracy; `scenarios` names the blocks in order.
bool plot_fig8(const std::string& data_csv, const std::vector<std::string>& scenarios,
               const std::string& stem, const std::string& title);

}  // namespace tokcom

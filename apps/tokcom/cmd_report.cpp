// `tokcom report DIR [-o OUT]`: report.md and a self-contained report.html of a run folder (Figs 6–8,
// Table II beside the paper's numbers and the oracle bound, token-selection pictures, training
// curves, timing, provenance), made from the run's files only (see docs/report.md).
#include <cstdio>

#include "command.h"
#include "stages.h"
#include "tokcom/report/report.h"

namespace tokcom::cli {
namespace {

struct ReportArgs {
  std::string dir, out;
  bool no_plots = false;
};

void add_report(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "report", "report.md + self-contained report.html of a run folder (figures, tables, provenance) from its files");
  cmd->add_option("dir", a->dir, "Run folder (e.g. the output of `tokcom demo`)")->required();
  cmd->add_option("-o,--out", a->out, "Output folder (default: DIR)");
  cmd->add_flag("--no-plots", a->no_plots, "Tables only, no gnuplot figures");
  cmd->footer("Reads sweep CSVs (+ .json sidecars), control/summary.csv, deploy_summary.csv, epochs.csv, configs\n"
              "and fig9*.png; writes OUT/report.md, OUT/report.html and OUT/report/figures/*.{gp,csv,svg,png}.\n"
              "A missing or malformed CSV is an error naming the file and line.");
  set_action(cmd, [a] {
    const report::RunData run = report::load_run(a->dir);
    report::ReportOptions options = cli_report_options();
    options.out_dir = a->out;
    options.plots = !a->no_plots;
    const report::ReportFiles files = report::write_report(run, options);
    std::printf("Report: %s\n        %s (%zu figures)\n", files.markdown.c_str(), files.html.c_str(),
                files.figures.size());
  });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(62, add_report);
}  // namespace tokcom::cli

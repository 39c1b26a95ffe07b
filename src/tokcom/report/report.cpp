#include "tokcom/report/report.h"

#include <filesystem>

#include "tokcom/control/plots.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/report/document.h"
#include "tokcom/report/sections.h"

namespace tokcom::report {
namespace fs = std::filesystem;

ReportFiles write_report(const RunData& run, const ReportOptions& options) {
  const fs::path out = options.out_dir.empty() ? fs::path(run.dir) : fs::path(options.out_dir);
  const fs::path figdir = out / "report" / "figures";
  fs::create_directories(figdir);
  const bool plots = options.plots && gnuplot_available();
  ReportFiles files;
  files.markdown = (out / "report.md").string();
  files.html = (out / "report.html").string();
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
  ReportContext ctx{run, options, out, figdir, plots, &files};
  for (auto* section : {accuracy_section, controller_section, deployment_section, claims_section, selection_section,
                        budget_section, training_section, timing_section, provenance_section}) {
    section(doc, ctx);
  }
  write_file_atomic(files.markdown, doc.markdown());
  write_file_atomic(files.html, doc.html("tokcom report: " + run_name, out.string()));
  return files;
}

}  // namespace tokcom::report

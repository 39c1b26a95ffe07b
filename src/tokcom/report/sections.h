// report/sections.h — the report's sections, one function each, in the order write_report() calls
// them. A section reads the run, appends its blocks to the document and, when figures are on, has
// report/figures.h draw its figures. Internal to report/.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "tokcom/report/document.h"
#include "tokcom/report/report.h"

namespace tokcom::report {

struct ReportContext {
  const RunData& run;
  const ReportOptions& options;
  std::filesystem::path out, figdir;  // the report's folder; its report/figures/
  bool plots = false;                 // figures asked for and gnuplot found
  ReportFiles* files = nullptr;       // figures shown are added to files->figures

  // The figure block of figdir/<stem>.png when it was drawn (with its .svg), else nullopt.
  std::optional<FigureBlock> figure(const std::string& stem, const std::string& caption) const;
  // `path` relative to the report's folder, as the Markdown links it.
  std::string relative(const std::filesystem::path& path) const;
};

void accuracy_section(Document& doc, ReportContext& ctx);    // Figs 6–7
void claims_section(Document& doc, ReportContext& ctx);      // the paper's claims, cell by cell
void controller_section(Document& doc, ReportContext& ctx);  // Fig. 8
void deployment_section(Document& doc, ReportContext& ctx);  // Table II
void selection_section(Document& doc, ReportContext& ctx);   // Fig. 9
void budget_section(Document& doc, ReportContext& ctx);      // kept fraction vs α
void training_section(Document& doc, ReportContext& ctx);
void timing_section(Document& doc, ReportContext& ctx);
void provenance_section(Document& doc, ReportContext& ctx);

}  // namespace tokcom::report

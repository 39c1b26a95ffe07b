// report/figures.h — the report's gnuplot figures, apart from its text: each writes its data file
// and script into the context's figure folder, renders SVG + PNG (control/plots.h) and returns the
// block to show, or nullopt when nothing was drawn. Internal to report/.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokcom/report/document.h"
#include "tokcom/report/sections.h"

namespace tokcom::report {

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> points;
};

// Accuracy vs ζ (log x): each series' upper envelope as steps, carried on to `right` (the figure's
// largest ζ: a larger budget never lowers the best accuracy), its own points marked.
std::optional<FigureBlock> accuracy_figure(const ReportContext& ctx, const std::string& stem, const std::string& title,
                                           const std::string& caption, const std::vector<Series>& envelopes,
                                           double right);
// Each JSCC link's accuracy as a share of its clean model's (%) against its ratio r (log x), one curve
// per bank and regime, the 97 % line dashed.
std::optional<FigureBlock> link_share_figure(const ReportContext& ctx, const std::vector<Series>& shares);
// Training loss and validation accuracy per epoch, side by side, one curve per series pair.
std::optional<FigureBlock> training_figure(const ReportContext& ctx, const std::vector<Series>& loss,
                                           const std::vector<Series>& val_accuracy);

}  // namespace tokcom::report

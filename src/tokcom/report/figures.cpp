#include "tokcom/report/figures.h"

#include <fmt/format.h>

#include "tokcom/control/plots.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/report/report_util.h"

namespace tokcom::report {

std::optional<FigureBlock> accuracy_figure(const ReportContext& ctx, const std::string& stem, const std::string& title,
                                           const std::string& caption, const std::vector<Series>& envelopes,
                                           double right) {
  const std::string csv_path = (ctx.figdir / (stem + ".csv")).string();
  const std::string file = gnuplot_quote(csv_path);
  std::string data, plot;
  int block = 0;
  for (const Series& s : envelopes) {
    if (s.points.empty()) continue;
    data += (block ? "\n\n# " : "# ") + s.label + " (upper envelope; the last row repeats it at the largest zeta)\n";
    for (const auto& [z, a] : s.points) data += num(z) + "," + num(a) + "\n";
    if (s.points.back().first < right) data += num(right) + "," + num(s.points.back().second) + "\n";
    plot += fmt::format("{}{} index {} using 1:2 with steps lw 2 lc {} title {}, \\\n     "
                        "{} index {} using 1:2 every ::0::{} with points pt 7 ps 0.8 lc {} notitle",
                        block ? ", \\\n     " : "", file, block, block + 1, gnuplot_quote(s.label), file, block,
                        s.points.size() - 1, block + 1);
    ++block;
  }
  if (block == 0) return std::nullopt;
  write_file_atomic(csv_path, data);
  render_gnuplot((ctx.figdir / stem).string(),
                 fmt::format("set title {}\nset logscale x\nset format x '%g'\nset xlabel 'zeta'\nset ylabel "
                             "'accuracy'\nset yrange [0:1]\nset key bottom right\nset grid\nplot {}\n",
                             gnuplot_quote(title), plot));
  return ctx.figure(stem, caption);
}

std::optional<FigureBlock> link_share_figure(const ReportContext& ctx, const std::vector<Series>& shares) {
  const std::string csv_path = (ctx.figdir / "jscc_share_vs_r.csv").string();
  const std::string file = gnuplot_quote(csv_path);
  std::string data, plot;
  int block = 0;
  for (const Series& s : shares) {
    if (s.points.empty()) continue;
    data += (block ? "\n\n# " : "# ") + s.label + " (r, % of the clean model at 20 dB)\n";
    for (const auto& [r, share] : s.points) data += num(r) + "," + num(share) + "\n";
    plot += fmt::format("{}{} index {} using 1:2 with linespoints lw 2 pt 7 title {}", block ? ", \\\n     " : "",
                        file, block, gnuplot_quote(s.label));
    ++block;
  }
  if (block == 0) return std::nullopt;
  write_file_atomic(csv_path, data);
  render_gnuplot((ctx.figdir / "jscc_share_vs_r").string(),
                 fmt::format("set title 'Each JSCC link against its clean model (20 dB AWGN, alpha = 1)'\n"
                             "set logscale x\nset format x '%g'\nset xlabel 'compression ratio r'\n"
                             "set ylabel '% of the clean model accuracy'\nset yrange [0:105]\nset key bottom right\n"
                             "set grid\nset arrow from graph 0, first 97 to graph 1, first 97 nohead dt 2 lw 2 lc "
                             "rgb 'black'\nplot {}\n",
                             plot));
  return ctx.figure("jscc_share_vs_r", "Each JSCC link's validation accuracy at 20 dB as a share of its clean "
                                       "model's, against its ratio r; the dashed line is 97 %");
}

std::optional<FigureBlock> training_figure(const ReportContext& ctx, const std::vector<Series>& loss,
                                           const std::vector<Series>& val_accuracy) {
  if (loss.empty()) return std::nullopt;
  const std::string loss_csv = (ctx.figdir / "training_loss.csv").string();
  const std::string acc_csv = (ctx.figdir / "training_val_accuracy.csv").string();
  std::string loss_data, acc_data, loss_plot, acc_plot;
  for (size_t block = 0; block < loss.size(); ++block) {
    loss_data += (block ? "\n\n# " : "# ") + loss[block].label + "\n";
    for (const auto& [x, y] : loss[block].points) loss_data += num(x) + "," + num(y) + "\n";
    acc_data += (block ? "\n\n# " : "# ") + val_accuracy[block].label + "\n";
    for (const auto& [x, y] : val_accuracy[block].points) acc_data += num(x) + "," + num(y) + "\n";
    if (val_accuracy[block].points.empty()) acc_data += "NaN,NaN\n";  // a stage without validation: no curve
    const std::string sep = block ? ", \\\n     " : "";
    loss_plot += fmt::format("{}{} index {} using 1:2 with linespoints lw 2 pt 7 title {}", sep,
                             gnuplot_quote(loss_csv), block, gnuplot_quote(loss[block].label));
    acc_plot += fmt::format("{}{} index {} using 1:2 with linespoints lw 2 pt 7 notitle", sep, gnuplot_quote(acc_csv),
                            block);
  }
  write_file_atomic(loss_csv, loss_data);
  write_file_atomic(acc_csv, acc_data);
  render_gnuplot((ctx.figdir / "training").string(),
                 fmt::format("set multiplot layout 1,2 title 'Training curves'\nset grid\nset xlabel 'epoch'\n"
                             "set autoscale y\nset ylabel 'training loss'\nset key top right\nplot {}\n"
                             "set ylabel 'validation accuracy (JSCC: mean over its eval SNRs)'\nset yrange [0:1]\nplot {}\n",
                             loss_plot, acc_plot));
  return ctx.figure("training", "Training loss and validation accuracy per epoch, one curve per stage (and per "
                                "JSCC regime and ratio)");
}

}  // namespace tokcom::report

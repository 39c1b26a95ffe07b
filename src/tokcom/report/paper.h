// report/paper.h — the paper's Table II as data, with its source, for the report's "paper" column
// and tables. Each cell is the pair (noiseless-trained, robust-trained) per METHOD §9.1's
// inference; the groups' SNR scenarios were lost (METHOD Q2).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "tokcom/report/document.h"

namespace tokcom::report {

struct PaperCell {
  double noiseless = 0, robust = 0;  // accuracy %
  bool present = true;               // false: the paper has no number ("–")
};

struct PaperRow {
  const char* group;   // G1 … G5
  const char* method;  // the paper's label (split/method.h paper_label)
  PaperCell cells[6];  // at kPaperZetaMax[i]
};

// Where the numbers come from.
extern const char* const kPaperSource;
extern const double kPaperZetaMax[6];
const std::vector<PaperRow>& paper_table2();

// The paper's label of `method` when its Table II has rows for it, else "".
std::string paper_method(const std::string& method);
// "lo–hi" over G1–G5 of the paper's accuracy (%) for (method, regime, ζ_max); "" when it has none.
std::string paper_range(const std::string& method, const std::string& regime, double zeta_max);
// The paper's rows for `label`, cells written "noiseless – robust".
TableBlock paper_rows(const std::string& label);

}  // namespace tokcom::report

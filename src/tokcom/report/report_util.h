// report/report_util.h — small formatting helpers shared by the report's files (internal).
#pragma once
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tokcom/core/csv.h"
#include "tokcom/core/text.h"

namespace tokcom::report {

using tokcom::ends_with;
using tokcom::starts_with;
inline std::string num(double v) { return csv::format_number(v); }
inline std::string pct(double v) { return fmt::format("{:.2f}", 100.0 * v); }
inline std::string zeta_text(double v) { return fmt::format("{:.5g}", v); }
inline std::string slug(const std::string& s) { return csv::file_slug(s); }
inline double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

}  // namespace tokcom::report

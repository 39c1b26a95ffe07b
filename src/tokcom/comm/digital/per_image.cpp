#include "tokcom/comm/digital/per_image.h"

#include <fmt/format.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"

namespace tokcom::digital {
namespace {

// RFC 4180 quoting for the free-text fields (image names may hold commas).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

PerImageRow per_image_row(const std::string& method,
                          const std::string& image,
                          double zeta,
                          double snr_db,
                          const Encoded& encoded) {
  PerImageRow row;
  row.method = method;
  row.image = image;
  row.zeta = zeta;
  row.snr_db = snr_db;
  row.budget_bits = encoded.budget_bits;
  row.choice = encoded.fits ? encoded.choice : -1;
  row.bytes = encoded.size_bytes;
  row.fits = encoded.fits;
  return row;
}

std::string per_image_csv(const std::vector<PerImageRow>& rows) {
  fmt::memory_buffer out;
  fmt::format_to(std::back_inserter(out), "{}\n", kPerImageHeader);
  for (const PerImageRow& r : rows) {
    const std::string choice = r.fits && r.choice >= 0 ? std::to_string(r.choice) : "";
    fmt::format_to(std::back_inserter(out), "{},{},{:.10g},{:.10g},{},{},{},{}\n",
                   csv_field(r.method), csv_field(r.image), r.zeta, r.snr_db, r.budget_bits, choice,
                   r.bytes, r.fits ? 1 : 0);
  }
  return fmt::to_string(out);
}

void write_per_image_csv(const std::string& path, const std::vector<PerImageRow>& rows) {
  write_file_atomic(path, per_image_csv(rows));
}

}  // namespace tokcom::digital

#include "tokcom/comm/digital/per_image.h"

#include <fmt/format.h>


namespace tokcom::digital {
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

const csv::Schema& per_image_schema() {
  static const csv::Schema s =
      csv::schema("a per-image CSV written by `tokcom sweep --per-image`", kPerImageHeader, {"method", "image"}, {"choice"});
  return s;
}

namespace {
csv::Writer per_image_writer(const std::vector<PerImageRow>& rows) {
  csv::Writer out(per_image_schema());
  for (const PerImageRow& r : rows) {
    out.text(r.method).text(r.image).number(r.zeta, 10).number(r.snr_db, 10).integer(r.budget_bits);
    if (r.fits && r.choice >= 0) out.integer(r.choice);
    else out.empty();
    out.integer(r.bytes).integer(r.fits ? 1 : 0).end_row();
  }
  return out;
}
}  // namespace

std::string per_image_csv(const std::vector<PerImageRow>& rows) { return per_image_writer(rows).str(); }

void write_per_image_csv(const std::string& path, const std::vector<PerImageRow>& rows) {
  per_image_writer(rows).write(path);
}

}  // namespace tokcom::digital

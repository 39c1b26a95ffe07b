// comm/digital/per_image.h — the sweep's `--per-image FILE`: one row per (method, image, zeta,
// snr_db) saying what budget a codec had and what it chose, so a user can see why it lost an image.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/comm/digital/codec.h"
#include "tokcom/core/csv.h"

namespace tokcom::digital {

// CSV header, pinned by the tests.
inline constexpr const char* kPerImageHeader =
    "method,image,zeta,snr_db,budget_bits,choice,bytes,fits";

struct PerImageRow {
  std::string method;  // codec name ("jpeg"; a sweep may suffix a link model: "jpeg/practical")
  std::string image;   // index or file name of the image in its split
  double zeta = 0.0;
  double snr_db = 0.0;
  int64_t budget_bits = 0;
  int64_t choice = -1;  // quality or L; written empty when lost
  int64_t bytes = 0;    // Encoded::size_bytes: chosen size, or what the cheapest setting needed
  bool fits = false;    // written 1 / 0
};

PerImageRow per_image_row(const std::string& method,
                          const std::string& image,
                          double zeta,
                          double snr_db,
                          const Encoded& encoded);
const csv::Schema& per_image_schema();  // method and image text, choice empty when lost
// Header line + one line per row ('\n' endings, doubles with up to 10 significant digits).
std::string per_image_csv(const std::vector<PerImageRow>& rows);
// Writes per_image_csv(rows) to `path` atomically (temp file + rename); UsageError on I/O failure.
void write_per_image_csv(const std::string& path, const std::vector<PerImageRow>& rows);

}  // namespace tokcom::digital

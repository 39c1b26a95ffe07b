// `tokcom data prepare`: an ImageFolder (the official Imagenette download, or any
// <split>/<class>/<image> tree) → the tarball layout tokcom reads, resized the way the shipped
// imagenette2-64/-128 tarballs were: Lanczos from the source, JPEG quality 90 (4:2:0), grayscale
// kept as one channel. The same input gives the same bytes (sorted members, fixed timestamps), so
// the SHA256SUMS line written beside the tarball is reproducible.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tokcom {

struct PrepareOptions {
  std::string from;         // folder holding train/ (and val/, test/): <split>/<class>/<image>
  std::string out;          // FILE.tar.gz (or .tgz); the tarball's top folder is FILE's stem
  int size = 128;           // output side S: every image becomes S × S
  std::string fit = "crop"; // crop: the centred square of side min(w, h), then resize; squash: the whole image
  int quality = 90;         // JPEG quality (1..100)
  bool skip_bad = false;    // an unreadable image: DataError naming it (false) or listed and skipped (true)
  int threads = 2;
};

struct PrepareReport {
  std::map<std::string, int64_t> images;  // per split
  std::vector<std::string> classes;       // class folders, sorted (the union over splits)
  int64_t grayscale = 0;                  // images kept with one channel
  std::vector<std::string> skipped;       // with skip_bad: "path: why"
  std::string sha256;                     // of the tarball
  std::string sums_line;                  // "<sha256>  <file name>", as written into SHA256SUMS
};

// Reads every image of options.from, writes options.out atomically (temp file, then rename) and
// adds or replaces its line in SHA256SUMS beside it (other lines kept). Throws UsageError for bad
// options, DataError naming the folder or image for bad input; nothing is written then.
PrepareReport prepare_image_folder(const PrepareOptions& options);

}  // namespace tokcom

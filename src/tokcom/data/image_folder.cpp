// ImageFolder readers: a directory <split>/<class>/<image> or the same layout inside a tarball
// (libarchive). Decoding runs on `threads` threads; results do not depend on the thread count.
#include <archive.h>
#include <archive_entry.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <thread>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/image_codec.h"

namespace tokcom {
namespace fs = std::filesystem;
namespace {

struct Entry {
  std::string origin;  // file path (folder) or "tarball:member" (tar)
  std::string bytes;   // tar: the member's bytes; folder: read lazily by the decoding thread
  std::string class_id;
  bool from_file = false;
};

// Decodes every entry into (N, 3, S, S) uint8; labels from class_ids (sorted order).
ImageDataset decode_entries(std::vector<Entry>& entries, const std::string& source,
                            const FolderReadOptions& options) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.class_id != b.class_id ? a.class_id < b.class_id : a.origin < b.origin;
  });
  ImageDataset ds;
  ds.source = source;
  std::map<std::string, int64_t> class_index;
  for (const Entry& e : entries)
    if (!class_index.count(e.class_id)) {
      class_index[e.class_id] = int64_t(ds.class_ids.size());
      ds.class_ids.push_back(e.class_id);
    }
  if (entries.empty()) throw DataError(source + ": no .jpg/.jpeg/.png images found");
  const int64_t n = int64_t(entries.size());
  const int64_t s = options.image_size;
  torch::Tensor images = torch::empty({n, 3, s, s}, torch::kUInt8);
  uint8_t* out = images.data_ptr<uint8_t>();
  std::vector<std::string> errors(n);
  std::atomic<int64_t> next{0};
  auto work = [&] {
    std::vector<float> scratch, resized(size_t(3 * s * s));
    for (int64_t i = next++; i < n; i = next++) {
      Entry& e = entries[i];
      try {
        const std::string bytes = e.from_file ? read_file(e.origin) : std::move(e.bytes);
        DecodedImage img = decode_image(bytes, e.origin);
        expand_to_rgb(img);
        uint8_t* dst = out + i * 3 * s * s;
        if (img.height == s && img.width == s) {
          std::copy(img.pixels.begin(), img.pixels.end(), dst);
        } else {  // aspect not kept (METHOD §7: "Resize to exactly S x S")
          resample_window(img.pixels.data(), 3, img.height, img.width, 0, 0, img.width, img.height,
                          int(s), int(s), false, resized.data(), scratch);
          for (int64_t k = 0; k < 3 * s * s; ++k)
            dst[k] = uint8_t(std::clamp(std::nearbyint(resized[k]), 0.f, 255.f));
        }
      } catch (const std::exception& ex) {
        errors[i] = ex.what();
        if (errors[i].rfind("DataError: ", 0) == 0) errors[i] = errors[i].substr(11);
      }
      e.bytes.clear();
      e.bytes.shrink_to_fit();
    }
  };
  const int threads = std::max(1, std::min<int>(options.threads, int(n)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  std::vector<int64_t> keep;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      if (!options.skip_bad)
        throw DataError(errors[i] + " (set data.skip_bad=true to skip bad images)");
      spdlog::warn("skipping bad image: {}", errors[i]);
      continue;
    }
    keep.push_back(i);
    labels.push_back(class_index[entries[i].class_id]);
  }
  if (keep.empty()) throw DataError(source + ": every image is unreadable");
  if (int64_t(keep.size()) < n)
    images = images.index_select(0, torch::tensor(keep, torch::kInt64)).contiguous();
  ds.images = images;
  ds.labels = torch::tensor(labels, torch::kInt64);
  ds.class_names = ds.class_ids;  // Imagenette's WordNet ids get their human names
  for (auto& name : ds.class_names) {
    auto it = std::find(imagenette_wnids().begin(), imagenette_wnids().end(), name);
    if (it != imagenette_wnids().end()) name = imagenette_names()[it - imagenette_wnids().begin()];
  }
  return ds;
}

}  // namespace

ImageDataset read_image_folder(const std::string& dir, const FolderReadOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw DataError(dir + ": folder does not exist");
  std::vector<Entry> entries;
  for (const auto& cls : fs::directory_iterator(dir)) {
    if (!cls.is_directory() || cls.path().filename().string()[0] == '.') continue;
    for (const auto& f : fs::directory_iterator(cls.path())) {
      if (!f.is_regular_file() || !is_image_name(f.path().filename().string())) continue;
      Entry e;
      e.origin = f.path().string();
      e.class_id = cls.path().filename().string();
      e.from_file = true;
      entries.push_back(std::move(e));
    }
  }
  if (entries.empty())
    throw DataError(dir + ": no class folders with .jpg/.jpeg/.png images (expected <dir>/<class>/<image>)");
  return decode_entries(entries, dir, options);
}

ImageDataset read_image_tar(const std::string& tar_path, const std::string& split,
                            const FolderReadOptions& options) {
  std::error_code ec;
  if (!fs::is_regular_file(tar_path, ec)) throw DataError(tar_path + ": tarball does not exist");
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_all(a.get());
  if (archive_read_open_filename(a.get(), tar_path.c_str(), 1 << 20) != ARCHIVE_OK)
    throw DataError(tar_path + ": cannot open archive (" + archive_error_string(a.get()) + ")");
  std::vector<Entry> entries;
  archive_entry* entry = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    const fs::path path(archive_entry_pathname(entry));
    std::vector<std::string> parts;
    for (const auto& p : path) parts.push_back(p.string());
    // <top>/<split>/<class>/<file>: the member belongs to this split.
    if (parts.size() < 3 || parts[parts.size() - 3] != split || !is_image_name(parts.back())) continue;
    Entry e;
    e.origin = tar_path + ":" + path.string();
    e.class_id = parts[parts.size() - 2];
    const la_int64_t size = archive_entry_size(entry);
    e.bytes.resize(size_t(std::max<la_int64_t>(size, 0)));
    const la_ssize_t got = archive_read_data(a.get(), e.bytes.data(), e.bytes.size());
    if (got < 0 || got != size)
      throw DataError(e.origin + ": truncated or unreadable member (" +
                      (got < 0 ? archive_error_string(a.get()) : "short read") + ")");
    entries.push_back(std::move(e));
  }
  if (r != ARCHIVE_EOF)
    throw DataError(tar_path + ": corrupt or truncated archive (" + archive_error_string(a.get()) + ")");
  if (entries.empty())
    throw DataError(tar_path + ": no images under <top>/" + split + "/<class>/ in the archive");
  return decode_entries(entries, tar_path, options);
}

}  // namespace tokcom

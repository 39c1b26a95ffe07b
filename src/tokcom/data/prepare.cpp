#include "tokcom/data/prepare.h"

#include <archive.h>
#include <archive_entry.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"
#include "tokcom/core/text.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/image_codec.h"

namespace tokcom {
namespace fs = std::filesystem;
namespace {

// Every member's timestamp (2026-01-01T00:00:00Z, as in the shipped tarballs): the same input gives
// the same bytes.
constexpr time_t kMemberTime = 1767225600;

struct Item {
  std::string source;  // file path
  std::string member;  // <top>/<split>/<class>/<name>
  std::string jpeg;    // the encoded output
  std::string error;
  bool gray = false;
};

// The name inside the tarball: JPEG sources keep theirs, others get ".jpg".
std::string member_name(const fs::path& p) {
  const std::string ext = to_lower(p.extension().string());
  return ext == ".jpg" || ext == ".jpeg" ? p.filename().string() : p.stem().string() + ".jpg";
}

std::string top_folder(const std::string& out) {
  std::string name = fs::path(out).filename().string();
  for (const std::string suffix : {".tar.gz", ".tgz"})
    if (name.size() > suffix.size() && to_lower(name.substr(name.size() - suffix.size())) == suffix)
      return name.substr(0, name.size() - suffix.size());
  throw UsageError("-o " + out + ": expected a file name ending in .tar.gz or .tgz");
}

// Lists the splits' images, sorted by (split, class, name); refuses two sources with one member name.
std::vector<Item> list_items(const PrepareOptions& o, const std::string& top, PrepareReport& report) {
  std::error_code ec;
  if (!fs::is_directory(o.from, ec)) throw DataError("--from " + o.from + ": folder does not exist");
  std::vector<Item> items;
  std::set<std::string> classes;
  for (const std::string split : {"train", "val", "test"}) {
    const fs::path dir = fs::path(o.from) / split;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> class_dirs;
    for (const auto& c : fs::directory_iterator(dir))
      if (c.is_directory() && c.path().filename().string()[0] != '.') class_dirs.push_back(c.path());
    std::sort(class_dirs.begin(), class_dirs.end());
    int64_t count = 0;
    for (const auto& c : class_dirs) {
      std::vector<fs::path> files;
      for (const auto& f : fs::directory_iterator(c))
        if (f.is_regular_file() && is_image_name(f.path().filename().string())) files.push_back(f.path());
      std::sort(files.begin(), files.end());
      std::map<std::string, std::string> seen;
      for (const auto& f : files) {
        const std::string name = member_name(f);
        if (!seen.emplace(name, f.string()).second)
          throw DataError(f.string() + " and " + seen[name] + " would both become " + name + " in the tarball");
        items.push_back(Item{f.string(), top + "/" + split + "/" + c.filename().string() + "/" + name, {}, {}, false});
        ++count;
      }
      if (!files.empty()) classes.insert(c.filename().string());
    }
    if (count > 0) report.images[split] = count;
  }
  if (items.empty() || !report.images.count("train")) {
    std::string hint;
    std::vector<fs::path> inner;
    for (const auto& e : fs::directory_iterator(o.from, ec))
      if (e.is_directory() && fs::is_directory(e.path() / "train", ec)) inner.push_back(e.path());
    if (inner.size() == 1) hint = " (did you mean --from " + inner[0].string() + "?)";
    throw DataError("--from " + o.from + ": no images under train/<class>/ (expected " + o.from +
                    "/{train,val}/<class>/<image>.{JPEG,jpg,png}, the layout of the official Imagenette download)" +
                    hint);
  }
  report.classes.assign(classes.begin(), classes.end());
  return items;
}

void convert(Item& item, const PrepareOptions& o) {
  DecodedImage image = decode_image(read_file(item.source), item.source);
  float x0 = 0, y0 = 0, x1 = float(image.width), y1 = float(image.height);
  if (o.fit == "crop" && image.width != image.height) {
    const int side = std::min(image.width, image.height);
    x0 = float((image.width - side) / 2);
    y0 = float((image.height - side) / 2);
    x1 = x0 + float(side);
    y1 = y0 + float(side);
  }
  const DecodedImage out = resize_lanczos(image, x0, y0, x1, y1, o.size, o.size);
  item.gray = out.channels == 1;
  item.jpeg = encode_jpeg(out.pixels.data(), out.channels, out.height, out.width, o.quality);
}

void add_member(archive* a, const std::string& path, bool directory, const std::string& bytes) {
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), path.c_str());
  archive_entry_set_filetype(e.get(), directory ? AE_IFDIR : AE_IFREG);
  archive_entry_set_perm(e.get(), directory ? 0755 : 0644);
  archive_entry_set_size(e.get(), directory ? 0 : la_int64_t(bytes.size()));
  archive_entry_set_mtime(e.get(), kMemberTime, 0);
  if (archive_write_header(a, e.get()) != ARCHIVE_OK)
    throw DataError(path + ": cannot add to the tarball (" + archive_error_string(a) + ")");
  if (!directory && archive_write_data(a, bytes.data(), bytes.size()) != la_ssize_t(bytes.size()))
    throw DataError(path + ": cannot write into the tarball (" + archive_error_string(a) + ")");
}

la_ssize_t write_to_stream(archive*, void* stream, const void* data, size_t n) {
  auto& out = *static_cast<std::ostream*>(stream);
  out.write(static_cast<const char*>(data), std::streamsize(n));
  return out ? la_ssize_t(n) : -1;
}

// Members in order, each folder before its contents (as tar does).
void write_tarball(std::ostream& out, const std::string& top, const std::vector<Item>& items) {
  std::unique_ptr<archive, int (*)(archive*)> a(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  archive_write_add_filter_gzip(a.get());
  // No time stamp in the gzip header: the same images give the same tarball bytes.
  archive_write_set_filter_option(a.get(), "gzip", "timestamp", nullptr);
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open(a.get(), &out, nullptr, write_to_stream, nullptr) != ARCHIVE_OK)
    throw DataError(std::string("cannot start the tarball: ") + archive_error_string(a.get()));
  std::set<std::string> folders;
  add_member(a.get(), top, true, "");
  for (const Item& item : items) {
    if (!item.error.empty()) continue;
    const fs::path member(item.member);
    const std::string class_dir = member.parent_path().string(), split_dir = member.parent_path().parent_path().string();
    for (const std::string& d : {split_dir, class_dir})
      if (folders.insert(d).second) add_member(a.get(), d, true, "");
    add_member(a.get(), item.member, false, item.jpeg);
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    throw DataError(std::string("cannot finish the tarball: ") + archive_error_string(a.get()));
}

// SHA256SUMS beside the tarball: this file's line added or replaced, the others kept.
void update_sums(const std::string& tarball, const std::string& line) {
  const fs::path sums = fs::path(tarball).parent_path() / "SHA256SUMS";
  const std::string name = fs::path(tarball).filename().string();
  std::string kept;
  std::error_code ec;
  if (fs::exists(sums, ec)) {
    std::istringstream in(read_file(sums.string()));
    for (std::string l; std::getline(in, l);) {
      std::istringstream fields(l);
      std::string digest, file;
      fields >> digest >> file;
      if (!file.empty() && file[0] == '*') file = file.substr(1);
      if (file != name && !l.empty()) kept += l + "\n";
    }
  }
  write_file_atomic(sums.string(), kept + line + "\n");
}

}  // namespace

PrepareReport prepare_image_folder(const PrepareOptions& o) {
  if (o.size < 1 || o.size > 4096) throw UsageError("--size: " + std::to_string(o.size) + " not in 1..4096");
  if (o.quality < 1 || o.quality > 100) throw UsageError("--quality: " + std::to_string(o.quality) + " not in 1..100");
  if (o.fit != "crop" && o.fit != "squash") throw UsageError("--fit: '" + o.fit + "', expected crop or squash");
  const std::string top = top_folder(o.out);
  PrepareReport report;
  std::vector<Item> items = list_items(o, top, report);

  Progress progress(fmt::format("prepare {} at {}x{}", o.from, o.size, o.size), int64_t(items.size()), "img");
  std::mutex progress_mutex;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < items.size(); i = next++) {
      try {
        convert(items[i], o);
      } catch (const std::exception& e) {
        items[i].error = e.what();
        if (items[i].error.rfind("DataError: ", 0) == 0) items[i].error = items[i].error.substr(11);
      }
      std::lock_guard<std::mutex> lock(progress_mutex);
      progress.tick(1);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, std::min<int>(o.threads, int(items.size()))); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  progress.finish();

  for (const Item& item : items) {
    if (item.error.empty()) {
      report.grayscale += item.gray;
      continue;
    }
    if (!o.skip_bad) throw DataError(item.error + " (--skip-bad to leave unreadable images out)");
    report.skipped.push_back(item.error);
    const std::string split = fs::path(item.member).parent_path().parent_path().filename().string();
    --report.images[split];
  }
  for (const auto& s : report.skipped) spdlog::warn("skipped: {}", s);

  std::error_code ec;
  const fs::path parent = fs::path(o.out).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  write_stream_atomic(o.out, [&](std::ostream& out) { write_tarball(out, top, items); });
  report.sha256 = sha256_file(o.out);
  report.sums_line = report.sha256 + "  " + fs::path(o.out).filename().string();
  update_sums(o.out, report.sums_line);
  return report;
}

}  // namespace tokcom

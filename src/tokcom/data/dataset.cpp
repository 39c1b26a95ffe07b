// load_dataset: dispatch on data.dataset, the decoded-image cache and the tarball checksum.
#include "tokcom/data/dataset.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/startup.h"

#ifdef TOKCOM_HAVE_OPENSSL
#include <openssl/evp.h>
#endif

namespace tokcom {
namespace fs = std::filesystem;
namespace {

constexpr const char* kCacheFormat = "tokcom-image-cache-1";

struct FileStamp {
  int64_t size = -1;
  int64_t mtime_ns = -1;
};
FileStamp stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {int64_t(st.st_size), int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

// Signature of a folder split: image count, total bytes, newest mtime (any change → new cache).
FileStamp folder_stamp(const std::string& dir) {
  FileStamp s{0, 0};
  int64_t count = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const FileStamp f = stamp(it->path().string());
    s.size += f.size;
    s.mtime_ns = std::max(s.mtime_ns, f.mtime_ns);
    ++count;
  }
  s.size = s.size * 1000003 + count;
  return s;
}

std::string json_list(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

// Reads a cache file if it matches `want` exactly; nullopt (with a log line) otherwise.
std::optional<ImageDataset> read_cache(const std::string& path,
                                       const std::map<std::string, std::string>& want,
                                       bool skip_bad) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  try {
    Safetensors st = read_safetensors(path);
    for (const auto& [key, value] : want) {
      auto it = st.metadata.find(key);
      if (it == st.metadata.end() || it->second != value) {
        spdlog::info("cache {} is stale ({} changed): rebuilding", path, key);
        return std::nullopt;
      }
    }
    if (!skip_bad && st.metadata.count("skipped") && st.metadata.at("skipped") != "0") {
      spdlog::info("cache {} skipped bad images but data.skip_bad=false: rebuilding", path);
      return std::nullopt;
    }
    ImageDataset ds;
    ds.images = st.tensors.at("images");
    ds.labels = st.tensors.at("labels");
    ds.class_names = nlohmann::json::parse(st.metadata.at("class_names")).get<std::vector<std::string>>();
    ds.class_ids = nlohmann::json::parse(st.metadata.at("class_ids")).get<std::vector<std::string>>();
    if (ds.images.scalar_type() != torch::kUInt8 || ds.images.dim() != 4 ||
        ds.labels.scalar_type() != torch::kInt64 || ds.labels.dim() != 1 ||
        ds.labels.size(0) != ds.images.size(0))
      throw FormatError("tensor shapes or dtypes do not match");
    return ds;
  } catch (const std::exception& e) {
    spdlog::warn("cache {} is unreadable ({}): rebuilding", path, e.what());
    return std::nullopt;
  }
}

std::string resolve_split_dir(const std::string& root, const std::string& split) {
  std::vector<std::string> names = {split};
  if (split == "test") names.push_back("val");
  if (split == "val") names.push_back("test");
  std::error_code ec;
  for (const auto& n : names)
    if (fs::is_directory(fs::path(root) / n, ec)) return (fs::path(root) / n).string();
  if (!fs::is_directory(root, ec)) throw DataError(root + ": folder does not exist");
  throw DataError(root + ": no '" + split + "' split folder (expected " + root + "/" + split +
                  "/<class>/<image>)");
}

}  // namespace

const std::vector<std::string>& imagenette_wnids() {
  static const std::vector<std::string> ids = {"n01440764", "n02102040", "n02979186", "n03000684",
                                               "n03028079", "n03394916", "n03417042", "n03425413",
                                               "n03445777", "n03888257"};
  return ids;
}
const std::vector<std::string>& imagenette_names() {
  static const std::vector<std::string> names = {
      "tench",  "English springer", "cassette player", "chain saw", "church",
      "French horn", "garbage truck", "gas pump", "golf ball", "parachute"};
  return names;
}

std::vector<DataFolder> data_search_path(const Config& cfg) {
  std::vector<DataFolder> places;
  const std::string dir = cfg.get_string("data.dir");
  if (!dir.empty()) places.push_back({dir, "data.dir"});
  if (const char* env = std::getenv("TOKCOM_DATA"); env && *env) places.push_back({env, "$TOKCOM_DATA"});
  const char* shared = std::getenv("TOKCOM_SHARED");
  if (shared && *shared)
    places.push_back({std::string(shared) + "/data", "$TOKCOM_SHARED/data"});
  else
    places.push_back({fs::path(std::string(TOKCOM_SOURCE_DIR) + "/../shared/data").lexically_normal().string(),
                      "the shipped data beside the checkout"});
  return places;
}

std::string find_imagenette_tar(const Config& cfg) {
  const int64_t want = cfg.get_int("data.image_size");
  const std::vector<DataFolder> places = data_search_path(cfg);
  // imagenette2-<N>.tar.gz in each place; the best N: exactly S, else the smallest above S
  // (downscaled on load), else the largest (upscaled, with a warning). Earlier places win ties.
  std::string best;
  int64_t best_n = -1;
  auto better = [want](int64_t n, int64_t than) {
    if (than < 0) return true;
    if ((n == want) != (than == want)) return n == want;
    if ((n > want) != (than > want)) return n > want;
    return n > want ? n < than : n > than;
  };
  for (const DataFolder& place : places) {
    std::error_code ec;
    if (!fs::is_directory(place.path, ec)) continue;
    for (const auto& e : fs::directory_iterator(place.path, ec)) {
      const std::string name = e.path().filename().string();
      const std::string prefix = "imagenette2-", suffix = ".tar.gz";
      if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
      if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      const int64_t n = std::stoll(digits);
      if (better(n, best_n)) {
        best_n = n;
        best = e.path().string();
      }
    }
  }
  if (best.empty()) {
    std::string looked;
    for (const DataFolder& place : places) looked += "\n  " + place.path + "  (" + place.from + ")";
    throw DataError(fmt::format(
        "no Imagenette tarball (imagenette2-<size>.tar.gz) for data.image_size={}; looked in:{}\n"
        "Make one from the official Imagenette download (train/ and val/ folders of JPEGs; tokcom cannot download "
        "it):\n  tokcom data prepare --from imagenette2 --size {} -o DIR/imagenette2-{}.tar.gz\n"
        "then set TOKCOM_DATA=DIR (or data.dir=DIR, or data.imagenette_tar=FILE)",
        want, looked, want, want));
  }
  if (best_n < want)
    spdlog::warn("{}: {} px images upscaled to data.image_size={} (no larger Imagenette tarball found)", best, best_n,
                 want);
  return best;
}

std::string sha256_file(const std::string& path) {
#ifdef TOKCOM_HAVE_OPENSSL
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open for checksum");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), buf.size()) || in.gcount() > 0)
    EVP_DigestUpdate(ctx.get(), buf.data(), size_t(in.gcount()));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
#else
  throw DataError(path + ": cannot verify the checksum: tokcom was built without OpenSSL");
#endif
}

void verify_checksum(const std::string& tar_path, const std::string& cache_dir) {
  const fs::path tar(tar_path);
  const fs::path sums = tar.parent_path() / "SHA256SUMS";
  std::error_code ec;
  if (!fs::exists(sums, ec)) {
    spdlog::warn("{}: no SHA256SUMS beside it; checksum not verified", tar_path);
    return;
  }
  std::string expected;
  std::istringstream lines(read_file(sums.string()));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string digest, name;
    fields >> digest >> name;
    if (!name.empty() && name[0] == '*') name = name.substr(1);  // sha256sum's binary marker
    if (name == tar.filename().string()) expected = digest;
  }
  if (expected.empty()) {
    spdlog::warn("{}: not listed in {}; checksum not verified", tar_path, sums.string());
    return;
  }
  const std::string abs = fs::absolute(tar).lexically_normal().string();
  const FileStamp st = stamp(tar_path);
  const fs::path record = fs::path(cache_dir) / "verified.json";
  nlohmann::json verified = nlohmann::json::object();
  try {
    if (fs::exists(record, ec)) verified = nlohmann::json::parse(read_file(record.string()));
  } catch (const std::exception&) {
    verified = nlohmann::json::object();  // corrupt record: verify again
  }
  if (verified.is_object() && verified.contains(abs)) {
    const auto& r = verified[abs];
    if (r.value("size", int64_t(-2)) == st.size && r.value("mtime_ns", int64_t(-2)) == st.mtime_ns &&
        r.value("sha256", std::string()) == expected)
      return;
  }
  if (!verified.is_object()) verified = nlohmann::json::object();
  spdlog::info("verifying sha256 of {}", tar_path);
  const std::string actual = sha256_file(tar_path);
  if (actual != expected)
    throw DataError(tar_path + ": sha256 mismatch: expected " + expected + " (from " +
                    sums.string() + "), actual " + actual);
  verified[abs] = {{"size", st.size}, {"mtime_ns", st.mtime_ns}, {"sha256", actual}};
  try {
    fs::create_directories(cache_dir);
    write_file_atomic(record.string(), verified.dump(2));
  } catch (const std::exception& e) {
    spdlog::warn("could not record the verified checksum in {}: {}", record.string(), e.what());
  }
}

ImageDataset load_dataset(const tokcom::Config& cfg, const std::string& split) {
  if (split != "train" && split != "val" && split != "test")
    throw DataError("unknown split '" + split + "', expected train, val or test");
  const std::string name = cfg.get_string("data.dataset");
  if (name == "fashion-mnist") return load_fashion_mnist(cfg.get_string("data.fashion_mnist_dir"), split);
  if (name != "imagenette" && name != "folder")
    throw ConfigError("data.dataset: unknown data set '" + name +
                      "', expected fashion-mnist, imagenette or folder");

  FolderReadOptions options;
  options.image_size = cfg.get_int("data.image_size");
  options.skip_bad = cfg.get_bool("data.skip_bad");
  options.threads = std::max(1, core_count());
  if (options.image_size < 1 || options.image_size > 4096)
    throw ConfigError("data.image_size: " + std::to_string(options.image_size) + " out of range 1..4096");
  const std::string root = cfg.get_string("data.root");
  const std::string cache_dir = cfg.get_string("data.cache_dir");
  const std::string split_name = (name == "imagenette" && split == "test") ? "val" : split;

  // Source: a folder split (data.root) or the tarball.
  std::string source, tar;
  FileStamp st;
  if (name == "folder" || !root.empty()) {
    if (root.empty()) throw ConfigError("data.root: required for data.dataset=folder");
    source = resolve_split_dir(root, split_name);
    st = folder_stamp(source);
  } else {
    tar = cfg.get_string("data.imagenette_tar");
    if (tar.empty()) tar = find_imagenette_tar(cfg);
    if (!fs::is_regular_file(tar)) throw DataError(tar + ": Imagenette tarball does not exist");
    verify_checksum(tar, cache_dir);
    source = tar + "#" + split_name;
    st = stamp(tar);
  }
  const std::string abs_source = fs::absolute(source).lexically_normal().string();
  const std::map<std::string, std::string> want = {
      {"format", kCacheFormat},           {"source", abs_source},
      {"source_size", std::to_string(st.size)}, {"source_mtime_ns", std::to_string(st.mtime_ns)},
      {"image_size", std::to_string(options.image_size)}};
  const std::string key = fmt::format("{:016x}", std::hash<std::string>{}(abs_source));
  const std::string cache_path =
      (fs::path(cache_dir) / fmt::format("{}-{}-{}-{}.safetensors", name, split_name,
                                         options.image_size, key.substr(0, 10)))
          .string();
  const bool use_cache = cfg.get_bool("data.cache");

  ImageDataset ds;
  std::optional<ImageDataset> cached;
  if (use_cache) cached = read_cache(cache_path, want, options.skip_bad);
  if (cached) {
    ds = std::move(*cached);
  } else {
    spdlog::info("decoding {} ({} split) at {}x{}", source, split_name, options.image_size, options.image_size);
    ds = tar.empty() ? read_image_folder(source, options) : read_image_tar(tar, split_name, options);
    if (use_cache) {
      std::map<std::string, std::string> meta = want;
      meta["class_names"] = json_list(ds.class_names);
      meta["class_ids"] = json_list(ds.class_ids);
      meta["skipped"] = "0";  // read_image_* throws unless skip_bad; count what was dropped
      if (options.skip_bad) meta["skipped"] = "unknown";
      try {
        fs::create_directories(cache_dir);
        write_safetensors(cache_path, {{"images", ds.images}, {"labels", ds.labels}}, meta);
        spdlog::info("cached {} images in {}", ds.size(), cache_path);
      } catch (const std::exception& e) {
        spdlog::warn("could not write the image cache {}: {}", cache_path, e.what());
      }
    }
  }
  ds.name = name;
  ds.split = split_name;
  ds.source = source;
  if (name == "imagenette" && ds.class_ids != imagenette_wnids())
    throw DataError(source + ": class folders " + json_list(ds.class_ids) +
                    " are not Imagenette's ten WordNet ids");
  return ds;
}

}  // namespace tokcom

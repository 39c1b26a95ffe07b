// Digital baselines (METHOD §6.3): encode-at-budget and decode rates, images/s, on 64×64 RGB
// Imagenette validation images (the first 32 colour ones in archive order; bench/digital_python.py
// reads the same ones with PIL). Budget: 12 000 bits (1 500 bytes), a mid quality for JPEG.
#include <archive.h>
#include <archive_entry.h>
#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <turbojpeg.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tokcom/comm/digital/codec.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/startup.h"

namespace {

constexpr int64_t kBudgetBits = 12000;
constexpr size_t kImages = 32;

std::string tarball() {
  if (const char* p = std::getenv("TOKCOM_SHARED"))
    return std::string(p) + "/data/imagenette2-64.tar.gz";
  return std::string(TOKCOM_SOURCE_DIR) + "/../shared/data/imagenette2-64.tar.gz";
}

// First kImages colour JPEGs under imagenette2-64/val/ in archive order, as uint8 (3, H, W).
const std::vector<at::Tensor>& images() {
  static const std::vector<at::Tensor> cache = [] {
    std::vector<at::Tensor> out;
    archive* a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    if (archive_read_open_filename(a, tarball().c_str(), 1 << 16) != ARCHIVE_OK) {
      throw tokcom::DataError("bench_digital: cannot open " + tarball());
    }
    tjhandle tj = tjInitDecompress();
    archive_entry* entry = nullptr;
    while (out.size() < kImages && archive_read_next_header(a, &entry) == ARCHIVE_OK) {
      const std::string name = archive_entry_pathname(entry);
      if (name.find("/val/") == std::string::npos || name.find(".JPEG") == std::string::npos)
        continue;
      std::string bytes(static_cast<size_t>(archive_entry_size(entry)), '\0');
      archive_read_data(a, bytes.data(), bytes.size());
      int w = 0, h = 0, sub = 0, cs = 0;
      auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
      if (tjDecompressHeader3(tj, data, bytes.size(), &w, &h, &sub, &cs) != 0 || cs == TJCS_GRAY)
        continue;
      at::Tensor hwc = torch::empty({h, w, 3}, torch::kUInt8);
      tjDecompress2(tj, data, bytes.size(), hwc.data_ptr<uint8_t>(), w, 0, h, TJPF_RGB,
                    TJFLAG_ACCURATEDCT);
      out.push_back(hwc.permute({2, 0, 1}).contiguous());
    }
    tjDestroy(tj);
    archive_read_free(a);
    return out;
  }();
  return cache;
}

void bm_encode(benchmark::State& state, const std::string& codec_name, bool bisect) {
  tokcom::digital::CodecOptions options;  // linear = the reference's scan, as PIL's side does
  options.search =
      bisect ? tokcom::digital::QualitySearch::kBisect : tokcom::digital::QualitySearch::kLinear;
  auto codec = tokcom::digital::make_codec(codec_name, options);
  const auto& imgs = images();
  size_t i = 0, fitted = 0;
  double quality = 0;
  for (auto _ : state) {
    const auto e = codec->encode(imgs[i++ % imgs.size()], kBudgetBits);
    fitted += e.fits;
    quality += static_cast<double>(e.choice);
    benchmark::DoNotOptimize(e.bytes.data());
  }
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["fit_fraction"] = static_cast<double>(fitted) / state.iterations();
  state.counters["mean_choice"] = quality / state.iterations();
}

void bm_decode(benchmark::State& state, const std::string& codec_name) {
  auto codec = tokcom::digital::make_codec(codec_name);
  std::vector<tokcom::digital::Encoded> encoded;
  for (const auto& img : images()) encoded.push_back(codec->encode(img, kBudgetBits));
  size_t i = 0;
  for (auto _ : state) {
    const auto& e = encoded[i++ % encoded.size()];
    at::Tensor out = codec->decode(e, 3, 64, 64);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  tokcom::StartupOptions startup;
  startup.threads = 2;
  startup.log_level = "warn";
  tokcom::startup(startup);
  for (const std::string name : {"resize", "jpeg", "webp", "avif"}) {
    benchmark::RegisterBenchmark(("BM_DigitalEncode/" + name).c_str(), bm_encode, name, false)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    if (name != "resize") {
      benchmark::RegisterBenchmark(("BM_DigitalEncodeBisect/" + name).c_str(), bm_encode, name,
                                   true)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark(("BM_DigitalDecode/" + name).c_str(), bm_decode, name)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

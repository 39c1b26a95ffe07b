// JPEG baseline via libjpeg-turbo's TurboJPEG API (METHOD §6.3): qualities 95 … 1, whole file
// counted, 4:2:0 chroma and the accurate integer DCT like PIL's defaults (grayscale: one plane).
#include <fmt/format.h>
#include <torch/torch.h>
#include <turbojpeg.h>

#include <memory>

#include "tokcom/comm/digital/codec_impl.h"
#include "tokcom/core/errors.h"

namespace tokcom::digital::detail {
namespace {

struct TjDeleter {
  void operator()(void* h) const { tjDestroy(h); }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

// One compressor/decompressor per thread: handles are not thread-safe, creating one per call costs.
tjhandle compressor() {
  thread_local TjHandle handle(tjInitCompress());
  if (!handle) throw FormatError("jpeg encode: tjInitCompress failed");
  return handle.get();
}
tjhandle decompressor() {
  thread_local TjHandle handle(tjInitDecompress());
  if (!handle) throw FormatError("jpeg decode: tjInitDecompress failed");
  return handle.get();
}

class JpegCodec final : public QualityCodec {
 public:
  using QualityCodec::QualityCodec;
  std::string name() const override { return "jpeg"; }

  at::Tensor decode(const Encoded& encoded,
                    int64_t channels,
                    int64_t height,
                    int64_t width) const override {
    check_decodable("jpeg decode", encoded, channels, height, width);
    tjhandle h = decompressor();
    auto* data = reinterpret_cast<const unsigned char*>(encoded.bytes.data());
    const auto size = static_cast<unsigned long>(encoded.bytes.size());
    int w = 0, ht = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(h, data, size, &w, &ht, &subsamp, &colorspace) != 0) {
      throw FormatError(fmt::format("jpeg decode: bad header ({})", tjGetErrorStr2(h)));
    }
    if (w != width || ht != height) {
      throw FormatError(
          fmt::format("jpeg decode: file is {}x{}, expected {}x{}", w, ht, width, height));
    }
    std::vector<uint8_t> hwc(static_cast<size_t>(channels * height * width));
    const int format = channels == 3 ? TJPF_RGB : TJPF_GRAY;
    if (tjDecompress2(h, data, size, hwc.data(), w, 0, ht, format, TJFLAG_ACCURATEDCT) != 0) {
      throw FormatError(fmt::format("jpeg decode: {}", tjGetErrorStr2(h)));
    }
    return from_hwc(hwc.data(), channels, height, width);
  }

 protected:
  std::vector<int64_t> qualities() const override {
    std::vector<int64_t> q;
    for (int64_t i = 95; i >= 1; --i) q.push_back(i);  // METHOD §10 P20: 1…95 only
    return q;
  }

  std::string encode_at(const Pixels& p, int64_t quality) const override {
    tjhandle h = compressor();
    unsigned char* out = nullptr;
    unsigned long size = 0;
    const bool rgb = p.channels == 3;
    const int rc = tjCompress2(
        h, p.hwc.data(), static_cast<int>(p.width), static_cast<int>(p.width * p.channels),
        static_cast<int>(p.height), rgb ? TJPF_RGB : TJPF_GRAY, &out, &size,
        rgb ? TJSAMP_420 : TJSAMP_GRAY, static_cast<int>(quality), TJFLAG_ACCURATEDCT);
    if (rc != 0) {
      if (out != nullptr) tjFree(out);
      throw FormatError(fmt::format("jpeg encode at quality {}: {}", quality, tjGetErrorStr2(h)));
    }
    std::string file(reinterpret_cast<const char*>(out), size);
    tjFree(out);
    return file;
  }
};

}  // namespace

std::unique_ptr<DigitalCodec> make_jpeg_codec(const CodecOptions& options) {
  return std::make_unique<JpegCodec>(options);
}

}  // namespace tokcom::digital::detail

// WebP baseline via libwebp (lossy, method 4 like PIL's default): qualities 100 … 0, whole file
// counted. Grayscale is sent as RGB with R = G = B (WebP has no gray mode; PIL does the same) and
// decoded back to one plane with PIL's "L" weights.
#include <fmt/format.h>
#include <torch/torch.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include "tokcom/comm/digital/codec_impl.h"
#include "tokcom/core/errors.h"

namespace tokcom::digital::detail {
namespace {

class WebpCodec final : public QualityCodec {
 public:
  using QualityCodec::QualityCodec;
  std::string name() const override { return "webp"; }

  at::Tensor decode(const Encoded& encoded,
                    int64_t channels,
                    int64_t height,
                    int64_t width) const override {
    check_decodable("webp decode", encoded, channels, height, width);
    auto* data = reinterpret_cast<const uint8_t*>(encoded.bytes.data());
    const size_t size = encoded.bytes.size();
    int w = 0, h = 0;
    if (!WebPGetInfo(data, size, &w, &h)) throw FormatError("webp decode: not a WebP file");
    if (w != width || h != height) {
      throw FormatError(
          fmt::format("webp decode: file is {}x{}, expected {}x{}", w, h, width, height));
    }
    std::vector<uint8_t> rgb(static_cast<size_t>(3 * w * h));
    if (WebPDecodeRGBInto(data, size, rgb.data(), rgb.size(), 3 * w) == nullptr) {
      throw FormatError("webp decode: corrupt bitstream");
    }
    if (channels == 3) return from_hwc(rgb.data(), 3, height, width);
    std::vector<uint8_t> gray(static_cast<size_t>(w * h));
    for (size_t i = 0; i < gray.size(); ++i) {  // PIL convert("L"): ITU-R 601-2 luma, rounded
      const uint32_t r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
      gray[i] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
    }
    return from_hwc(gray.data(), 1, height, width);
  }

 protected:
  std::vector<int64_t> qualities() const override {
    std::vector<int64_t> q;
    for (int64_t i = 100; i >= 0; --i) q.push_back(i);
    return q;
  }

  std::string encode_at(const Pixels& p, int64_t quality) const override {
    WebPConfig config;
    if (!WebPConfigInit(&config)) throw FormatError("webp encode: libwebp version mismatch");
    config.quality = static_cast<float>(quality);
    config.method = 4;  // PIL's default
    std::vector<uint8_t> rgb;
    const uint8_t* src = p.hwc.data();
    if (p.channels == 1) {
      rgb.resize(p.hwc.size() * 3);
      for (size_t i = 0; i < p.hwc.size(); ++i)
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = p.hwc[i];
      src = rgb.data();
    }
    WebPPicture picture;
    if (!WebPPictureInit(&picture)) throw FormatError("webp encode: libwebp version mismatch");
    picture.width = static_cast<int>(p.width);
    picture.height = static_cast<int>(p.height);
    picture.use_argb = 1;  // as PIL: import ARGB, let the encoder convert to YUV
    WebPMemoryWriter writer;
    WebPMemoryWriterInit(&writer);
    picture.writer = WebPMemoryWrite;
    picture.custom_ptr = &writer;
    bool ok = WebPPictureImportRGB(&picture, src, static_cast<int>(3 * p.width)) != 0;
    ok = ok && WebPEncode(&config, &picture) != 0;
    const int error = picture.error_code;
    WebPPictureFree(&picture);
    if (!ok) {
      WebPMemoryWriterClear(&writer);
      throw FormatError(fmt::format("webp encode at quality {}: libwebp error {}", quality, error));
    }
    std::string file(reinterpret_cast<const char*>(writer.mem), writer.size);
    WebPMemoryWriterClear(&writer);
    return file;
  }
};

}  // namespace

std::unique_ptr<DigitalCodec> make_webp_codec(const CodecOptions& options) {
  return std::make_unique<WebpCodec>(options);
}

}  // namespace tokcom::digital::detail

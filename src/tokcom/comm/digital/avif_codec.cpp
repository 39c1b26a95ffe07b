// AVIF baseline via libavif (AV1 intra; encoder = libavif's automatic choice, aom on Debian 12):
// quality 100 … 0 mapped to quantizer 0 … 63 (codec.h avif_quantizer), one rung per distinct
// quantizer, whole file counted. RGB → YUV 4:2:0 (as JPEG); grayscale → YUV 4:0:0 (monochrome).
#include <avif/avif.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <memory>

#include "tokcom/comm/digital/codec_impl.h"
#include "tokcom/core/errors.h"

namespace tokcom::digital::detail {
namespace {

struct AvifDeleter {
  void operator()(avifImage* p) const { avifImageDestroy(p); }
  void operator()(avifEncoder* p) const { avifEncoderDestroy(p); }
  void operator()(avifDecoder* p) const { avifDecoderDestroy(p); }
};
template <typename T>
using AvifPtr = std::unique_ptr<T, AvifDeleter>;

void check_avif(avifResult rc, const std::string& what) {
  if (rc != AVIF_RESULT_OK) throw FormatError(fmt::format("{}: {}", what, avifResultToString(rc)));
}

class AvifCodec final : public QualityCodec {
 public:
  using QualityCodec::QualityCodec;
  std::string name() const override { return "avif"; }

  at::Tensor decode(const Encoded& encoded,
                    int64_t channels,
                    int64_t height,
                    int64_t width) const override {
    check_decodable("avif decode", encoded, channels, height, width);
    AvifPtr<avifDecoder> decoder(avifDecoderCreate());
    AvifPtr<avifImage> image(avifImageCreateEmpty());
    decoder->maxThreads = 1;  // sweeps parallelise over images
    check_avif(avifDecoderReadMemory(decoder.get(), image.get(),
                                     reinterpret_cast<const uint8_t*>(encoded.bytes.data()),
                                     encoded.bytes.size()),
               "avif decode");
    if (static_cast<int64_t>(image->width) != width ||
        static_cast<int64_t>(image->height) != height) {
      throw FormatError(fmt::format("avif decode: file is {}x{}, expected {}x{}", image->width,
                                    image->height, width, height));
    }
    avifRGBImage rgb;
    avifRGBImageSetDefaults(&rgb, image.get());
    rgb.format = AVIF_RGB_FORMAT_RGB;
    rgb.depth = 8;
    std::vector<uint8_t> hwc(static_cast<size_t>(3 * width * height));
    rgb.pixels = hwc.data();
    rgb.rowBytes = static_cast<uint32_t>(3 * width);
    check_avif(avifImageYUVToRGB(image.get(), &rgb), "avif decode: YUV to RGB");
    if (channels == 3) return from_hwc(hwc.data(), 3, height, width);
    std::vector<uint8_t> gray(static_cast<size_t>(width * height));
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = hwc[3 * i];  // 4:0:0 → R = G = B = Y
    return from_hwc(gray.data(), 1, height, width);
  }

 protected:
  std::vector<int64_t> qualities() const override {
    std::vector<int64_t> q;  // the best quality of each quantizer class, best first
    for (int64_t i = 100; i >= 0; --i) {
      if (q.empty() || avif_quantizer(i) != avif_quantizer(q.back())) q.push_back(i);
    }
    return q;
  }

  std::string encode_at(const Pixels& p, int64_t quality) const override {
    const bool rgb_in = p.channels == 3;
    AvifPtr<avifImage> image(
        avifImageCreate(static_cast<uint32_t>(p.width), static_cast<uint32_t>(p.height), 8,
                        rgb_in ? AVIF_PIXEL_FORMAT_YUV420 : AVIF_PIXEL_FORMAT_YUV400));
    image->yuvRange = AVIF_RANGE_FULL;
    std::vector<uint8_t> rgb_buf;
    const uint8_t* src = p.hwc.data();
    if (!rgb_in) {
      rgb_buf.resize(p.hwc.size() * 3);
      for (size_t i = 0; i < p.hwc.size(); ++i) {
        rgb_buf[3 * i] = rgb_buf[3 * i + 1] = rgb_buf[3 * i + 2] = p.hwc[i];
      }
      src = rgb_buf.data();
    }
    avifRGBImage rgb;
    avifRGBImageSetDefaults(&rgb, image.get());
    rgb.format = AVIF_RGB_FORMAT_RGB;
    rgb.depth = 8;
    rgb.pixels = const_cast<uint8_t*>(src);  // read only in RGB → YUV
    rgb.rowBytes = static_cast<uint32_t>(3 * p.width);
    check_avif(avifImageRGBToYUV(image.get(), &rgb), "avif encode: RGB to YUV");

    AvifPtr<avifEncoder> encoder(avifEncoderCreate());
    encoder->maxThreads = 1;
    encoder->speed = options_.avif_speed;
    encoder->minQuantizer = encoder->maxQuantizer = avif_quantizer(quality);
    avifRWData output = AVIF_DATA_EMPTY;
    const avifResult rc = avifEncoderWrite(encoder.get(), image.get(), &output);
    if (rc != AVIF_RESULT_OK) {
      avifRWDataFree(&output);
      throw FormatError(
          fmt::format("avif encode at quality {}: {}", quality, avifResultToString(rc)));
    }
    std::string file(reinterpret_cast<const char*>(output.data), output.size);
    avifRWDataFree(&output);
    return file;
  }
};

}  // namespace

std::unique_ptr<DigitalCodec> make_avif_codec(const CodecOptions& options) {
  if (avifCodecName(AVIF_CODEC_CHOICE_AUTO, AVIF_CODEC_FLAG_CAN_ENCODE) == nullptr) {
    throw ConfigError("digital codec 'avif': libavif was built without an AV1 encoder");
  }
  return std::make_unique<AvifCodec>(options);
}

}  // namespace tokcom::digital::detail

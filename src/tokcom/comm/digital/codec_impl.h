// comm/digital/codec_impl.h — internals shared by the codec implementations (not public API).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/comm/digital/codec.h"

namespace tokcom::digital::detail {

// A validated image as interleaved rows: hwc[(y·W + x)·C + c].
struct Pixels {
  std::vector<uint8_t> hwc;
  int64_t channels = 0, height = 0, width = 0;
};
// Checks uint8 (C, H, W) with C ∈ {1, 3}, H, W ≥ 1 (ShapeError naming `caller`), copies to CPU.
Pixels to_pixels(const std::string& caller, const at::Tensor& image);
// Interleaved uint8 buffer → (C, H, W) uint8 CPU tensor (copied).
at::Tensor from_hwc(const uint8_t* hwc, int64_t channels, int64_t height, int64_t width);
// Throws UsageError when `encoded` was lost, ShapeError when the size request is invalid.
void check_decodable(const std::string& caller,
                     const Encoded& encoded,
                     int64_t channels,
                     int64_t height,
                     int64_t width);

// A codec whose settings form a quality ladder (JPEG, WebP, AVIF): encode() searches the ladder
// (quality_search.h) with every encoding memoised per call.
class QualityCodec : public DigitalCodec {
 public:
  explicit QualityCodec(const CodecOptions& options) : options_(options) {}
  Encoded encode(const at::Tensor& image, int64_t budget_bits) const override;
  std::vector<Encoded> encode_many(const at::Tensor& image,
                                   const std::vector<int64_t>& budgets) const override;
  std::vector<Rung> rate_ladder(const at::Tensor& image) const override;

 protected:
  // Qualities in scan order, best first; each must give a distinct encoder setting.
  virtual std::vector<int64_t> qualities() const = 0;
  // The whole file at `quality`; throws FormatError on an encoder failure.
  virtual std::string encode_at(const Pixels& pixels, int64_t quality) const = 0;
  CodecOptions options_;
};

std::unique_ptr<DigitalCodec> make_resize_codec(const CodecOptions& options);
std::unique_ptr<DigitalCodec> make_jpeg_codec(const CodecOptions& options);
std::unique_ptr<DigitalCodec> make_webp_codec(const CodecOptions& options);
std::unique_ptr<DigitalCodec> make_avif_codec(const CodecOptions& options);

}  // namespace tokcom::digital::detail

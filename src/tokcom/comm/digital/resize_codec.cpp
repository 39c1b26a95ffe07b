// Resize baseline (SPEC 6.3): send the image downsampled to L×L as raw uint8, upsample back.
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>

#include "tokcom/comm/digital/codec.h"
#include "tokcom/comm/digital/codec_impl.h"
#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"

namespace tokcom::digital::detail {
namespace {

namespace F = torch::nn::functional;

// (C, H, W) uint8 → (C, h, w) uint8, bilinear; antialias on downsampling like PIL's BILINEAR
// (SPEC 10 P25: close to, not bit-exact with, PIL). Upsampling: the antialias kernel equals plain
// bilinear there and is much slower in LibTorch 1.13, so it is off.
at::Tensor resample(const at::Tensor& image, int64_t height, int64_t width) {
  at::Tensor x = image.unsqueeze(0).to(torch::kFloat);
  const bool down = height < image.size(1) || width < image.size(2);
  x = F::interpolate(x, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{height, width})
                            .mode(torch::kBilinear)
                            .align_corners(false)
                            .antialias(down));
  return x.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

class ResizeCodec final : public DigitalCodec {
 public:
  explicit ResizeCodec(const CodecOptions& options) : options_(options) {}
  std::string name() const override { return "resize"; }

  Encoded encode(const at::Tensor& image, int64_t budget_bits) const override {
    const Pixels pixels = to_pixels("resize encode", image);  // validates shape and dtype
    const int64_t c = pixels.channels, h = pixels.height, w = pixels.width;
    Encoded e;
    e.budget_bits = budget_bits;
    // Square images in this project; a non-square one is squeezed to L×L (SPEC 6.3: aspect not
    // kept), L at most its shorter side.
    const int64_t side = std::min(h, w);
    const int64_t l = resize_side(static_cast<double>(budget_bits), c, side, options_.reference);
    if (l < 1) {
      e.size_bytes = budget_bits > 0 ? c : 0;  // a 1×1 image would have needed C bytes
      return e;
    }
    const at::Tensor small = (l == h && l == w) ? image.to(torch::kCPU).contiguous()
                                                : resample(image.to(torch::kCPU), l, l);
    e.bytes.assign(reinterpret_cast<const char*>(small.data_ptr<uint8_t>()),
                   static_cast<size_t>(small.numel()));  // CHW
    e.choice = l;
    e.fits = true;
    e.size_bytes = static_cast<int64_t>(e.bytes.size());
    return e;
  }

  std::vector<Rung> rate_ladder(const at::Tensor& image) const override {
    const Pixels p = to_pixels("resize rate_ladder", image);
    std::vector<Rung> out;
    for (int64_t l = std::min(p.height, p.width); l >= 1; --l)
      out.push_back({l, p.channels * l * l});
    return out;
  }

  at::Tensor decode(const Encoded& encoded,
                    int64_t channels,
                    int64_t height,
                    int64_t width) const override {
    check_decodable("resize decode", encoded, channels, height, width);
    const int64_t l = encoded.choice;
    if (static_cast<int64_t>(encoded.bytes.size()) != channels * l * l) {
      throw FormatError(fmt::format("resize decode: {} bytes, expected C*L*L = {}*{}*{} = {}",
                                    encoded.bytes.size(), channels, l, l, channels * l * l));
    }
    at::Tensor small = torch::empty({channels, l, l}, torch::kUInt8);
    std::memcpy(small.data_ptr<uint8_t>(), encoded.bytes.data(), encoded.bytes.size());
    if (l == height && l == width) return small;
    return resample(small, height, width);
  }

 private:
  CodecOptions options_;
};

}  // namespace

std::unique_ptr<DigitalCodec> make_resize_codec(const CodecOptions& options) {
  return std::make_unique<ResizeCodec>(options);
}

}  // namespace tokcom::digital::detail

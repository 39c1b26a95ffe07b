// Resize baseline (METHOD §6.3): send the image downsampled to L×L as raw uint8, upsample back.
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tokcom/comm/digital/codec.h"
#include "tokcom/comm/digital/codec_impl.h"
#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"

namespace tokcom::digital::detail {
namespace {

namespace F = torch::nn::functional;

// (C, H, W) uint8 → (C, h, w) uint8 downsampled: bilinear with antialias like PIL's BILINEAR
// (METHOD §10 P25: close to, not bit-exact with, PIL).
at::Tensor downsample(const at::Tensor& image, int64_t height, int64_t width) {
  at::Tensor x = image.unsqueeze(0).to(torch::kFloat);
  x = F::interpolate(x, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{height, width})
                            .mode(torch::kBilinear)
                            .align_corners(false)
                            .antialias(true));
  return x.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

// Source index and weight of PyTorch's bilinear, align_corners = false (half-pixel centres).
struct Tap {
  int64_t i0, i1;
  float w1;
};
std::vector<Tap> taps(int64_t in, int64_t out) {
  std::vector<Tap> t(static_cast<size_t>(out));
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t o = 0; o < out; ++o) {
    const double src = std::max(0.0, scale * (static_cast<double>(o) + 0.5) - 0.5);
    const auto i0 = std::min(static_cast<int64_t>(src), in - 1);
    t[o] = {i0, std::min(i0 + 1, in - 1), static_cast<float>(src - static_cast<double>(i0))};
  }
  return t;
}

// (C, l, l) uint8 → (C, H, W) uint8 upsampled, = F::interpolate(bilinear, align_corners false)
// (tested); written out because LibTorch's call costs milliseconds for these tiny images.
at::Tensor upsample(const at::Tensor& small, int64_t height, int64_t width) {
  const int64_t c = small.size(0), h_in = small.size(1), w_in = small.size(2);
  const std::vector<Tap> ty = taps(h_in, height), tx = taps(w_in, width);
  at::Tensor out = torch::empty({c, height, width}, torch::kUInt8);
  const uint8_t* src = small.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int64_t k = 0; k < c; ++k) {
    const uint8_t* plane = src + k * h_in * w_in;
    for (int64_t y = 0; y < height; ++y) {
      const uint8_t* r0 = plane + ty[y].i0 * w_in;
      const uint8_t* r1 = plane + ty[y].i1 * w_in;
      const float wy = ty[y].w1;
      for (int64_t x = 0; x < width; ++x) {
        const Tap& t = tx[x];
        const float top = (1.f - t.w1) * r0[t.i0] + t.w1 * r0[t.i1];  // PyTorch's order
        const float bottom = (1.f - t.w1) * r1[t.i0] + t.w1 * r1[t.i1];
        const float v = (1.f - wy) * top + wy * bottom;
        dst[(k * height + y) * width + x] =
            static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.f, 255.f));
      }
    }
  }
  return out;
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
    // Square images in this project; a non-square one is squeezed to L×L (METHOD §6.3: aspect not
    // kept), L at most its shorter side.
    const int64_t side = std::min(h, w);
    const int64_t l = resize_side(static_cast<double>(budget_bits), c, side, options_.reference);
    if (l < 1) {
      e.size_bytes = budget_bits > 0 ? c : 0;  // a 1×1 image would have needed C bytes
      return e;
    }
    const at::Tensor small = (l == h && l == w) ? image.to(torch::kCPU).contiguous()
                                                : downsample(image.to(torch::kCPU), l, l);
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
    return upsample(small, height, width);
  }

 private:
  CodecOptions options_;
};

}  // namespace

std::unique_ptr<DigitalCodec> make_resize_codec(const CodecOptions& options) {
  return std::make_unique<ResizeCodec>(options);
}

}  // namespace tokcom::digital::detail

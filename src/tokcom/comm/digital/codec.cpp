#include "tokcom/comm/digital/codec.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <map>

#include "tokcom/comm/digital/codec_impl.h"
#include "tokcom/comm/digital/quality_search.h"
#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"

namespace tokcom::digital {
namespace detail {

Pixels to_pixels(const std::string& caller, const at::Tensor& image) {
  check_dtype(caller, "image", image, torch::kUInt8);
  check_shape(caller, "image", image, {-1, -1, -1});
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  if ((c != 1 && c != 3) || h < 1 || w < 1) {
    throw ShapeError(
        fmt::format("{}: image has shape {}, expected (C, H, W) with C = 1 or 3 and "
                    "H, W >= 1",
                    caller, shape_string(image.sizes().vec())));
  }
  Pixels p;
  p.channels = c;
  p.height = h;
  p.width = w;
  const at::Tensor hwc = image.to(torch::kCPU).permute({1, 2, 0}).contiguous();  // codec I/O
  const uint8_t* data = hwc.data_ptr<uint8_t>();
  p.hwc.assign(data, data + hwc.numel());
  return p;
}

at::Tensor from_hwc(const uint8_t* hwc, int64_t channels, int64_t height, int64_t width) {
  at::Tensor t = torch::empty({height, width, channels}, torch::kUInt8);
  std::memcpy(t.data_ptr<uint8_t>(), hwc, static_cast<size_t>(t.numel()));
  return t.permute({2, 0, 1}).contiguous();
}

void check_decodable(const std::string& caller,
                     const Encoded& encoded,
                     int64_t channels,
                     int64_t height,
                     int64_t width) {
  if (!encoded.fits || encoded.choice < 0) {
    throw UsageError(fmt::format("{}: the encoding was lost (budget {} bits), nothing to decode",
                                 caller, encoded.budget_bits));
  }
  if ((channels != 1 && channels != 3) || height < 1 || width < 1) {
    throw ShapeError(
        fmt::format("{}: requested output ({}, {}, {}), expected C = 1 or 3 and "
                    "H, W >= 1",
                    caller, channels, height, width));
  }
}

namespace {

// Memoised encodings of one image, shared by every budget of one encode()/encode_many() call.
class LadderCache {
 public:
  LadderCache(const std::vector<int64_t>& qualities,
              const Pixels& pixels,
              const std::function<std::string(const Pixels&, int64_t)>& encode_at)
      : qualities_(qualities), pixels_(pixels), encode_at_(encode_at) {}
  const std::string& at(int64_t rung) {
    auto it = files_.find(rung);
    if (it == files_.end()) it = files_.emplace(rung, encode_at_(pixels_, qualities_[rung])).first;
    return it->second;
  }

 private:
  const std::vector<int64_t>& qualities_;
  const Pixels& pixels_;
  const std::function<std::string(const Pixels&, int64_t)>& encode_at_;
  std::map<int64_t, std::string> files_;
};

}  // namespace

Encoded QualityCodec::encode(const at::Tensor& image, int64_t budget_bits) const {
  return encode_many(image, {budget_bits}).front();
}

std::vector<Encoded> QualityCodec::encode_many(const at::Tensor& image,
                                               const std::vector<int64_t>& budgets) const {
  const Pixels pixels = to_pixels(name() + " encode", image);
  const std::vector<int64_t> ladder = qualities();
  const std::function<std::string(const Pixels&, int64_t)> encode_fn =
      [this](const Pixels& p, int64_t q) { return encode_at(p, q); };
  LadderCache cache(ladder, pixels, encode_fn);
  const auto count = static_cast<int64_t>(ladder.size());
  std::vector<Encoded> out;
  out.reserve(budgets.size());
  for (const int64_t budget : budgets) {
    Encoded e;
    e.budget_bits = budget;
    // METHOD §6.3: whole file, strictly below the budget.
    auto fits = [&](int64_t rung) {
      return budget > 0 && static_cast<int64_t>(cache.at(rung).size()) * 8 < budget;
    };
    const int64_t rung =
        budget > 0 ? search_ladder(count, fits, options_.search, options_.bisect_window) : -1;
    if (rung >= 0) {
      e.bytes = cache.at(rung);
      e.choice = ladder[rung];
      e.fits = true;
      e.size_bytes = static_cast<int64_t>(e.bytes.size());
    } else {
      e.size_bytes = static_cast<int64_t>(cache.at(count - 1).size());  // why it was lost
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<Rung> QualityCodec::rate_ladder(const at::Tensor& image) const {
  const Pixels pixels = to_pixels(name() + " rate_ladder", image);
  std::vector<Rung> out;
  for (const int64_t q : qualities()) {
    out.push_back({q, static_cast<int64_t>(encode_at(pixels, q).size())});
  }
  return out;
}

}  // namespace detail

std::vector<Encoded> DigitalCodec::encode_many(const at::Tensor& image,
                                               const std::vector<int64_t>& budgets) const {
  std::vector<Encoded> out;
  out.reserve(budgets.size());
  for (const int64_t budget : budgets) out.push_back(encode(image, budget));
  return out;
}

int64_t resize_side(double budget_bits, int64_t channels, int64_t side, bool reference) {
  if (channels < 1 || side < 1) {
    throw ShapeError(
        fmt::format("resize_side: channels {} and side {} must be >= 1", channels, side));
  }
  if (!(budget_bits > 0.0)) return 0;
  const double per_pixel = 8.0 * static_cast<double>(channels);
  const double root = std::sqrt(budget_bits / per_pixel);
  if (root >= static_cast<double>(side)) return side;
  int64_t l = 0;
  if (reference) {
    l = static_cast<int64_t>(std::llround(root));  // METHOD §10 P20: may exceed the budget
  } else {
    l = static_cast<int64_t>(std::floor(root));
    // Guard floating error at perfect squares: largest L with 8·C·L² ≤ B exactly.
    while (static_cast<double>((l + 1) * (l + 1)) * per_pixel <= budget_bits) ++l;
    while (l > 0 && static_cast<double>(l * l) * per_pixel > budget_bits) --l;
  }
  return std::min(l, side);
}

int avif_quantizer(int64_t quality) {
  const int64_t q = std::clamp<int64_t>(quality, 0, 100);
  return static_cast<int>(((100 - q) * 63 + 50) / 100);
}

const std::vector<std::string>& codec_names() {
  static const std::vector<std::string> names = {"resize", "jpeg", "webp", "avif"};
  return names;
}

std::unique_ptr<DigitalCodec> make_codec(const std::string& name, bool reference) {
  CodecOptions options;
  options.reference = reference;
  return make_codec(name, options);
}

std::unique_ptr<DigitalCodec> make_codec(const std::string& name, const CodecOptions& given) {
  CodecOptions options = given;
  if (options.reference) options.search = QualitySearch::kLinear;  // the reference's own scan
  if (options.bisect_window < 0 || options.avif_speed < 0 || options.avif_speed > 10) {
    throw ConfigError(
        fmt::format("digital codec options: bisect_window {} must be >= 0 and "
                    "avif_speed {} in 0..10",
                    options.bisect_window, options.avif_speed));
  }
  if (name == "resize") return detail::make_resize_codec(options);
  if (name == "jpeg") return detail::make_jpeg_codec(options);
  if (name == "webp") return detail::make_webp_codec(options);
  if (name == "avif") return detail::make_avif_codec(options);
  throw ConfigError(fmt::format("digital codec '{}' is unknown, expected one of: {}", name,
                                fmt::join(codec_names(), ", ")));
}

}  // namespace tokcom::digital

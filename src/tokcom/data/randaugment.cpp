// RandAugment's op set on planar uint8 images (torchvision's `_apply_op` on tensors, METHOD §7).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "tokcom/data/transforms.h"

namespace tokcom {
namespace {

// Round half up after clamping (no libm call: this runs ~10^5 times per image).
inline uint8_t clamp_u8(float v) { return uint8_t(int(std::clamp(v, 0.f, 255.f) + 0.5f)); }
// Nearest integer of a coordinate that may be negative, without libm.
inline int round_coord(double v) { return int(v + 65536.5) - 65536; }

// out = factor·img + (1 − factor)·other, per pixel (torchvision `_blend`).
void blend(uint8_t* img, const uint8_t* other, size_t n, float factor) {
  for (size_t i = 0; i < n; ++i) img[i] = clamp_u8(factor * img[i] + (1.f - factor) * other[i]);
}

void grayscale(const uint8_t* img, int channels, size_t plane, uint8_t* out) {
  if (channels == 1) {
    std::memcpy(out, img, plane);
    return;
  }
  for (size_t i = 0; i < plane; ++i)  // ITU-R 601-2 luma, as torchvision rgb_to_grayscale
    out[i] = clamp_u8(0.2989f * img[i] + 0.587f * img[plane + i] + 0.114f * img[2 * plane + i]);
}

// Inverse affine map x_in = a·x + b·y + c, y_in = d·x + e·y + f on pixel centres; nearest; fill 0.
void affine(uint8_t* img, int channels, int height, int width, const std::array<double, 6>& m,
            std::vector<uint8_t>& tmp) {
  const size_t plane = size_t(height) * width;
  tmp.assign(img, img + plane * channels);
  std::memset(img, 0, plane * channels);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const int xs = round_coord(m[0] * x + m[1] * y + m[2]);
      const int ys = round_coord(m[3] * x + m[4] * y + m[5]);
      if (xs < 0 || xs >= width || ys < 0 || ys >= height) continue;
      for (int c = 0; c < channels; ++c)
        img[c * plane + size_t(y) * width + x] = tmp[c * plane + size_t(ys) * width + xs];
    }
}

void equalize_plane(uint8_t* p, size_t n) {  // PIL ImageOps.equalize, per channel
  std::array<int64_t, 256> hist{};
  for (size_t i = 0; i < n; ++i) ++hist[p[i]];
  int64_t total = 0, last = 0;
  for (int v = 0; v < 256; ++v)
    if (hist[v]) {
      total += hist[v];
      last = hist[v];
    }
  const int64_t step = (total - last) / 255;
  if (step == 0) return;
  std::array<uint8_t, 256> lut{};
  int64_t acc = step / 2;
  for (int v = 0; v < 256; ++v) {
    lut[v] = uint8_t(std::min<int64_t>(acc / step, 255));
    acc += hist[v];
  }
  for (size_t i = 0; i < n; ++i) p[i] = lut[p[i]];
}

}  // namespace

double randaugment_magnitude(RandOp op, int magnitude, int height, int width) {
  const double t = magnitude / 30.0;  // linspace(0, max, 31)[magnitude]
  switch (op) {
    case RandOp::kShearX:
    case RandOp::kShearY: return 0.3 * t;
    case RandOp::kTranslateX: return 150.0 / 331.0 * width * t;
    case RandOp::kTranslateY: return 150.0 / 331.0 * height * t;
    case RandOp::kRotate: return 30.0 * t;
    case RandOp::kBrightness:
    case RandOp::kColor:
    case RandOp::kContrast:
    case RandOp::kSharpness: return 0.9 * t;
    case RandOp::kPosterize: return 8 - std::nearbyint(magnitude / 7.5);  // 8 − round(m / ((31−1)/4))
    case RandOp::kSolarize: return 255.0 * (1.0 - t);
    default: return 0.0;
  }
}

void apply_rand_op(RandOp op, double magnitude, uint8_t* img, int channels, int height, int width,
                   std::vector<uint8_t>& tmp) {
  const size_t plane = size_t(height) * width, n = plane * channels;
  switch (op) {
    case RandOp::kIdentity: return;
    case RandOp::kShearX:  // torchvision: affine with shear atan(m) degrees about (0, 0)
      return affine(img, channels, height, width, {1, -magnitude, 0, 0, 1, 0}, tmp);
    case RandOp::kShearY:
      return affine(img, channels, height, width, {1, 0, 0, -magnitude, 1, 0}, tmp);
    case RandOp::kTranslateX:  // int(magnitude) pixels
      return affine(img, channels, height, width, {1, 0, -double(int(magnitude)), 0, 1, 0}, tmp);
    case RandOp::kTranslateY:
      return affine(img, channels, height, width, {1, 0, 0, 0, 1, -double(int(magnitude))}, tmp);
    case RandOp::kRotate: {  // counter-clockwise by `magnitude` degrees about the centre
      const double r = magnitude * M_PI / 180.0, c = std::cos(r), s = std::sin(r);
      const double cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
      // x_in = R(+θ)⁻¹ applied around the centre (image y axis points down).
      return affine(img, channels, height, width,
                    {c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy}, tmp);
    }
    case RandOp::kBrightness: {
      tmp.assign(n, 0);
      return blend(img, tmp.data(), n, float(1.0 + magnitude));
    }
    case RandOp::kColor: {
      if (channels == 1) return;
      tmp.resize(n);
      grayscale(img, channels, plane, tmp.data());
      for (int c = 1; c < channels; ++c) std::memcpy(tmp.data() + c * plane, tmp.data(), plane);
      return blend(img, tmp.data(), n, float(1.0 + magnitude));
    }
    case RandOp::kContrast: {
      tmp.resize(n);
      grayscale(img, channels, plane, tmp.data());
      double sum = 0;
      for (size_t i = 0; i < plane; ++i) sum += tmp[i];
      const float mean = float(sum / plane);
      const float f = float(1.0 + magnitude);
      for (size_t i = 0; i < n; ++i) img[i] = clamp_u8(f * img[i] + (1.f - f) * mean);
      return;
    }
    case RandOp::kSharpness: {  // blend with the 3x3 smoothed image ([1 1 1; 1 5 1; 1 1 1]/13)
      tmp.assign(img, img + n);
      for (int c = 0; c < channels; ++c) {
        const uint8_t* p = img + c * plane;
        uint8_t* q = tmp.data() + c * plane;
        for (int y = 1; y + 1 < height; ++y)
          for (int x = 1; x + 1 < width; ++x) {
            int s = 4 * p[size_t(y) * width + x];
            for (int dy = -1; dy <= 1; ++dy)
              for (int dx = -1; dx <= 1; ++dx) s += p[size_t(y + dy) * width + x + dx];
            q[size_t(y) * width + x] = clamp_u8(s / 13.f);
          }
      }
      return blend(img, tmp.data(), n, float(1.0 + magnitude));
    }
    case RandOp::kPosterize: {
      const int bits = std::clamp(int(magnitude), 0, 8);
      const uint8_t mask = uint8_t(~((1 << (8 - bits)) - 1));
      for (size_t i = 0; i < n; ++i) img[i] &= mask;
      return;
    }
    case RandOp::kSolarize:
      for (size_t i = 0; i < n; ++i)
        if (img[i] >= magnitude) img[i] = uint8_t(255 - img[i]);
      return;
    case RandOp::kAutoContrast:
      for (int c = 0; c < channels; ++c) {
        uint8_t* p = img + c * plane;
        const auto [lo, hi] = std::minmax_element(p, p + plane);
        const int mn = *lo, mx = *hi;
        if (mx == mn) continue;
        const float scale = 255.f / float(mx - mn);
        for (size_t i = 0; i < plane; ++i) p[i] = clamp_u8((p[i] - mn) * scale);
      }
      return;
    case RandOp::kEqualize:
      for (int c = 0; c < channels; ++c) equalize_plane(img + c * plane, plane);
      return;
  }
}

}  // namespace tokcom

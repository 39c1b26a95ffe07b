#include "tokcom/data/image_codec.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "tokcom/core/errors.h"

namespace tokcom {
namespace {

// One TurboJPEG handle per thread (handles are not thread-safe; creating one costs ~µs).
struct TjHandle {
  tjhandle decoder = nullptr, encoder = nullptr;
  ~TjHandle() {
    if (decoder) tjDestroy(decoder);
    if (encoder) tjDestroy(encoder);
  }
};
thread_local TjHandle tj_handles;

void interleaved_to_planar(const uint8_t* in, int channels, int pixels, uint8_t* out) {
  if (channels == 1) {
    std::memcpy(out, in, pixels);
    return;
  }
  for (int p = 0; p < pixels; ++p)
    for (int c = 0; c < channels; ++c) out[c * pixels + p] = in[p * channels + c];
}

DecodedImage decode_jpeg(const std::string& bytes, const std::string& origin) {
  if (!tj_handles.decoder) tj_handles.decoder = tjInitDecompress();
  tjhandle h = tj_handles.decoder;
  auto* buf = reinterpret_cast<const unsigned char*>(bytes.data());
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(h, buf, bytes.size(), &width, &height, &subsamp, &colorspace) != 0)
    throw DataError(origin + ": not a readable JPEG (" + tjGetErrorStr2(h) + ")");
  if (width <= 0 || height <= 0 || int64_t(width) * height > (int64_t(1) << 28))
    throw DataError(origin + ": JPEG has unsupported size " + std::to_string(width) + "x" +
                    std::to_string(height));
  DecodedImage image;
  image.channels = colorspace == TJCS_GRAY ? 1 : 3;
  image.height = height;
  image.width = width;
  std::vector<uint8_t> interleaved(size_t(width) * height * image.channels);
  // STOPONWARNING: a truncated file ("Premature end of JPEG file") is an error, not grey rows.
  if (tjDecompress2(h, buf, bytes.size(), interleaved.data(), width, 0, height,
                    image.channels == 1 ? TJPF_GRAY : TJPF_RGB, TJFLAG_STOPONWARNING) != 0)
    throw DataError(origin + ": corrupt or truncated JPEG (" + tjGetErrorStr2(h) + ")");
  image.pixels.resize(interleaved.size());
  interleaved_to_planar(interleaved.data(), image.channels, width * height, image.pixels.data());
  return image;
}

DecodedImage decode_png(const std::string& bytes, const std::string& origin) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()))
    throw DataError(origin + ": not a readable PNG (" + png.message + ")");
  const bool color = (png.format & PNG_FORMAT_FLAG_COLOR) != 0;
  png.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;  // alpha dropped (composited on black)
  if (int64_t(png.width) * png.height > (int64_t(1) << 28)) {
    png_image_free(&png);
    throw DataError(origin + ": PNG has unsupported size");
  }
  DecodedImage image;
  image.channels = color ? 3 : 1;
  image.height = int(png.height);
  image.width = int(png.width);
  std::vector<uint8_t> interleaved(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, interleaved.data(), 0, nullptr))
    throw DataError(origin + ": corrupt or truncated PNG (" + png.message + ")");
  image.pixels.resize(interleaved.size());
  interleaved_to_planar(interleaved.data(), image.channels, image.width * image.height,
                        image.pixels.data());
  return image;
}

std::vector<uint8_t> planar_to_interleaved(const uint8_t* planar, int channels, int pixels) {
  std::vector<uint8_t> out(size_t(pixels) * channels);
  for (int p = 0; p < pixels; ++p)
    for (int c = 0; c < channels; ++c) out[p * channels + c] = planar[c * pixels + p];
  return out;
}

}  // namespace

DecodedImage decode_image(const std::string& bytes, const std::string& origin) {
  static const unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 3 && uint8_t(bytes[0]) == 0xFF && uint8_t(bytes[1]) == 0xD8 &&
      uint8_t(bytes[2]) == 0xFF)
    return decode_jpeg(bytes, origin);
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) return decode_png(bytes, origin);
  throw DataError(origin + ": not a JPEG or PNG image (" + std::to_string(bytes.size()) +
                  " bytes, unknown signature)");
}

void expand_to_rgb(DecodedImage& image) {
  if (image.channels != 1) return;
  const size_t n = image.pixels.size();
  image.pixels.resize(3 * n);
  std::memcpy(image.pixels.data() + n, image.pixels.data(), n);
  std::memcpy(image.pixels.data() + 2 * n, image.pixels.data(), n);
  image.channels = 3;
}

std::string encode_png(const uint8_t* planar, int channels, int height, int width) {
  auto interleaved = planar_to_interleaved(planar, channels, height * width);
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = width;
  png.height = height;
  png.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(png, size, 0, interleaved.data(), 0, nullptr))
    throw UsageError(std::string("PNG encode failed: ") + png.message);
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, interleaved.data(), 0, nullptr))
    throw UsageError(std::string("PNG encode failed: ") + png.message);
  out.resize(size);
  return out;
}

std::string encode_jpeg(const uint8_t* planar, int channels, int height, int width, int quality) {
  if (!tj_handles.encoder) tj_handles.encoder = tjInitCompress();
  auto interleaved = planar_to_interleaved(planar, channels, height * width);
  unsigned char* jpeg = nullptr;
  unsigned long size = 0;
  const int pf = channels == 1 ? TJPF_GRAY : TJPF_RGB;
  const int samp = channels == 1 ? TJSAMP_GRAY : TJSAMP_420;
  if (tjCompress2(tj_handles.encoder, interleaved.data(), width, 0, height, pf, &jpeg, &size, samp,
                  quality, 0) != 0)
    throw UsageError(std::string("JPEG encode failed: ") + tjGetErrorStr2(tj_handles.encoder));
  std::string out(reinterpret_cast<char*>(jpeg), size);
  tjFree(jpeg);
  return out;
}

AxisWeights axis_weights(double start, double length, int in_size, int out_size) {
  // PIL's / ATen's antialiased bilinear: triangle filter, support scaled by max(scale, 1).
  const double scale = length / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;
  AxisWeights a;
  a.max_count = int(std::ceil(support)) * 2 + 1;
  a.first.resize(out_size);
  a.count.resize(out_size);
  a.weights.assign(size_t(out_size) * a.max_count, 0.f);
  for (int i = 0; i < out_size; ++i) {
    const double center = start + (i + 0.5) * scale;
    int lo = std::max(int(std::floor(center - support + 0.5)), 0);
    int hi = std::min(int(std::floor(center + support + 0.5)), in_size);
    hi = std::min(hi, lo + a.max_count);
    double total = 0;
    float* w = &a.weights[size_t(i) * a.max_count];
    for (int x = lo; x < hi; ++x) {
      const double t = std::abs((x - center + 0.5) / filter_scale);
      const double v = t < 1.0 ? 1.0 - t : 0.0;
      w[x - lo] = float(v);
      total += v;
    }
    if (total <= 0) {  // window entirely outside (cannot happen for in-bounds crops): clamp
      lo = std::clamp(int(center), 0, in_size - 1);
      hi = lo + 1;
      w[0] = 1.f;
      total = 1;
    }
    for (int x = 0; x < hi - lo; ++x) w[x] = float(w[x] / total);
    a.first[i] = lo;
    a.count[i] = hi - lo;
  }
  return a;
}

void resample_window(const uint8_t* src, int channels, int height, int width, double x0, double y0,
                     double w, double h, int out_h, int out_w, bool flip, float* dst,
                     std::vector<float>& scratch) {
  const AxisWeights ax = axis_weights(x0, w, width, out_w);
  const AxisWeights ay = axis_weights(y0, h, height, out_h);
  const int row_lo = ay.first.front();
  const int row_hi = ay.first.back() + ay.count.back();
  scratch.resize(size_t(row_hi - row_lo) * out_w);
  for (int c = 0; c < channels; ++c) {
    const uint8_t* plane = src + size_t(c) * height * width;
    for (int y = row_lo; y < row_hi; ++y) {  // horizontal pass over the rows the window needs
      const uint8_t* row = plane + size_t(y) * width;
      float* out = &scratch[size_t(y - row_lo) * out_w];
      for (int i = 0; i < out_w; ++i) {
        const float* wt = &ax.weights[size_t(i) * ax.max_count];
        const uint8_t* px = row + ax.first[i];
        float s = 0.f;
        for (int k = 0; k < ax.count[i]; ++k) s += wt[k] * px[k];
        out[flip ? out_w - 1 - i : i] = s;
      }
    }
    float* plane_out = dst + size_t(c) * out_h * out_w;
    for (int j = 0; j < out_h; ++j) {  // vertical pass
      float* out = plane_out + size_t(j) * out_w;
      const float* wt = &ay.weights[size_t(j) * ay.max_count];
      const float* base = &scratch[size_t(ay.first[j] - row_lo) * out_w];
      std::fill(out, out + out_w, 0.f);
      for (int k = 0; k < ay.count[j]; ++k) {
        const float wk = wt[k];
        const float* r = base + size_t(k) * out_w;
        for (int i = 0; i < out_w; ++i) out[i] += wk * r[i];
      }
    }
  }
}

}  // namespace tokcom

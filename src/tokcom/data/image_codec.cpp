#include "tokcom/data/image_codec.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"

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

// A TurboJPEG 2.1 handle whose header parse failed stays mid-header (the next file then fails
// with "Bogus Huffman table definition"): after any error, take the message and start afresh.
std::string reset_decoder() {
  std::string message = tjGetErrorStr2(tj_handles.decoder);
  tjDestroy(tj_handles.decoder);
  tj_handles.decoder = nullptr;
  return message;
}

DecodedImage decode_jpeg(const std::string& bytes, const std::string& origin) {
  if (!tj_handles.decoder) tj_handles.decoder = tjInitDecompress();
  tjhandle h = tj_handles.decoder;
  auto* buf = reinterpret_cast<const unsigned char*>(bytes.data());
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(h, buf, bytes.size(), &width, &height, &subsamp, &colorspace) != 0)
    throw DataError(origin + ": not a readable JPEG (" + reset_decoder() + ")");
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
    throw DataError(origin + ": corrupt or truncated JPEG (" + reset_decoder() + ")");
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

bool is_image_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  const std::string ext = to_lower(std::filesystem::path(name).extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

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
  // The accurate integer DCT (libjpeg's default, and Pillow's): TurboJPEG's default is the fast one.
  if (tjCompress2(tj_handles.encoder, interleaved.data(), width, 0, height, pf, &jpeg, &size, samp,
                  quality, TJFLAG_ACCURATEDCT) != 0)
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

namespace {

// Pillow's libImaging/Resample.c, transcribed: the same double arithmetic in the same order.
constexpr int kPrecisionBits = 32 - 8 - 2;

double lanczos3(double x) {
  auto sinc = [](double v) {
    if (v == 0.0) return 1.0;
    v *= M_PI;
    return std::sin(v) / v;
  };
  return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

// Per output pixel: first source index and count (bounds), and ksize fixed-point weights.
struct FixedWeights {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;
};

FixedWeights lanczos_weights(int in_size, float in0, float in1, int out_size) {
  double filterscale = double(in1 - in0) / out_size;
  const double scale = filterscale;
  if (filterscale < 1.0) filterscale = 1.0;
  const double support = 3.0 * filterscale;
  FixedWeights w;
  w.ksize = int(std::ceil(support)) * 2 + 1;
  w.first.resize(size_t(out_size));
  w.count.resize(size_t(out_size));
  w.k.assign(size_t(out_size) * w.ksize, 0);
  std::vector<double> pre(size_t(w.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      pre[size_t(x)] = lanczos3((x + xmin - center + 0.5) * ss);
      ww += pre[size_t(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) pre[size_t(x)] /= ww;
      const double v = pre[size_t(x)] * (1 << kPrecisionBits);
      w.k[size_t(xx) * w.ksize + x] = int32_t(v < 0 ? -0.5 + v : 0.5 + v);
    }
    w.first[size_t(xx)] = xmin;
    w.count[size_t(xx)] = xmax;
  }
  return w;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return uint8_t(v >> kPrecisionBits);
}

}  // namespace

DecodedImage resize_lanczos(const DecodedImage& image, float x0, float y0, float x1, float y1, int out_w, int out_h) {
  const int c = image.channels, h = image.height, wd = image.width;
  if ((c != 1 && c != 3) || h < 1 || wd < 1 || image.pixels.size() != size_t(c) * h * wd)
    throw UsageError("resize_lanczos: expected a planar 8-bit image with 1 or 3 channels, got " + std::to_string(c) +
                     "x" + std::to_string(h) + "x" + std::to_string(wd) + " with " +
                     std::to_string(image.pixels.size()) + " bytes");
  if (out_w < 1 || out_h < 1 || !(x0 >= 0 && x1 > x0 && x1 <= wd && y0 >= 0 && y1 > y0 && y1 <= h))
    throw UsageError("resize_lanczos: box (" + std::to_string(x0) + ", " + std::to_string(y0) + ", " +
                     std::to_string(x1) + ", " + std::to_string(y1) + ") not inside the " + std::to_string(wd) + "x" +
                     std::to_string(h) + " image, or an empty output");
  DecodedImage out;
  out.channels = c;
  out.height = out_h;
  out.width = out_w;
  if (out_w == wd && out_h == h && x0 == 0 && y0 == 0 && x1 == wd && y1 == h) {  // Pillow returns a copy
    out.pixels = image.pixels;
    return out;
  }
  const bool need_horizontal = out_w != wd || x0 != 0 || x1 != out_w;
  const bool need_vertical = out_h != h || y0 != 0 || y1 != out_h;
  const FixedWeights horiz = lanczos_weights(wd, x0, x1, out_w);
  FixedWeights vert = lanczos_weights(h, y0, y1, out_h);
  // The horizontal pass covers only the rows the vertical pass reads.
  const int row_first = need_horizontal ? vert.first.front() : 0;
  const int row_last = need_horizontal ? vert.first.back() + vert.count.back() : h;
  const int rows = row_last - row_first;
  const int mid_w = need_horizontal ? out_w : wd;
  std::vector<uint8_t> mid(size_t(rows) * mid_w);
  out.pixels.resize(size_t(c) * out_h * out_w);
  for (int ch = 0; ch < c; ++ch) {
    const uint8_t* plane = image.pixels.data() + size_t(ch) * h * wd;
    if (need_horizontal) {
      for (int y = 0; y < rows; ++y) {
        const uint8_t* row = plane + size_t(y + row_first) * wd;
        for (int xx = 0; xx < out_w; ++xx) {
          const int32_t* k = &horiz.k[size_t(xx) * horiz.ksize];
          const uint8_t* px = row + horiz.first[size_t(xx)];
          int32_t ss = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < horiz.count[size_t(xx)]; ++x) ss += int32_t(px[x]) * k[x];
          mid[size_t(y) * mid_w + xx] = clip8(ss);
        }
      }
    } else {
      std::copy(plane, plane + size_t(h) * wd, mid.begin());
    }
    uint8_t* dst = out.pixels.data() + size_t(ch) * out_h * out_w;
    if (!need_vertical) {  // then rows == out_h == h and the horizontal pass is the result
      std::copy(mid.begin(), mid.end(), dst);
      continue;
    }
    for (int yy = 0; yy < out_h; ++yy) {
      const int32_t* k = &vert.k[size_t(yy) * vert.ksize];
      const int first = vert.first[size_t(yy)] - row_first;
      for (int xx = 0; xx < out_w; ++xx) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int y = 0; y < vert.count[size_t(yy)]; ++y) ss += int32_t(mid[size_t(first + y) * mid_w + xx]) * k[y];
        dst[size_t(yy) * out_w + xx] = clip8(ss);
      }
    }
  }
  return out;
}

}  // namespace tokcom

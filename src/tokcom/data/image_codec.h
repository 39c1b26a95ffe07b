// JPEG (libjpeg-turbo) and PNG (libpng) decoding/encoding of 8-bit images, and the antialiased
// bilinear resampler shared by loading and the transforms.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tokcom {

// A decoded image: 8-bit, planar (C, H, W), C = 1 or 3.
struct DecodedImage {
  int channels = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // C*H*W, planar
};

// Whether a file name is an image the readers decode: .jpg/.jpeg/.png (any case), not hidden.
bool is_image_name(const std::string& name);

// Decodes JPEG or PNG bytes (detected by signature). Grayscale stays 1 channel; gray+alpha and
// RGBA drop alpha; palette PNGs expand. `origin` names the file in the DataError thrown for
// truncated, corrupt or non-image data.
DecodedImage decode_image(const std::string& bytes, const std::string& origin);
// Repeats a 1-channel image into 3 channels (data README: grayscale → 3 channels).
void expand_to_rgb(DecodedImage& image);

// Encoders (tests, `tokcom data show`, `tokcom data prepare`): planar 8-bit (C, H, W), C = 1 or 3.
// JPEG: 4:2:0 (gray: one component), accurate integer DCT: Pillow's save(quality=q), byte for byte.
std::string encode_png(const uint8_t* planar, int channels, int height, int width);
std::string encode_jpeg(const uint8_t* planar, int channels, int height, int width, int quality);

// Separable resampling weights of one axis for the source window [start, start + length) of an
// axis of `in_size` pixels mapped onto `out_size` pixels: a triangle (bilinear) filter whose
// support widens when shrinking (antialias, as PIL / torch antialias=true), align_corners=false,
// edge clamped. For each output pixel: first source index, count, and normalised weights.
struct AxisWeights {
  std::vector<int> first, count;
  std::vector<float> weights;  // out_size * max_count
  int max_count = 0;
};
AxisWeights axis_weights(double start, double length, int in_size, int out_size);

// Resamples a planar uint8 (C, H, W) window (x0, y0, w, h) into a float (C, S_h, S_w) output in
// [0, 255], optionally mirrored horizontally. `scratch` is reused between calls.
void resample_window(const uint8_t* src, int channels, int height, int width, double x0, double y0,
                     double w, double h, int out_h, int out_w, bool flip, float* dst,
                     std::vector<float>& scratch);

// Lanczos (a = 3) resize of the window [x0, x1) × [y0, y1) of an 8-bit planar image to out_w ×
// out_h, computed exactly as Pillow's Image.resize(size, Image.LANCZOS, box=(x0, y0, x1, y1))
// (no reducing_gap): weights in double, then 22-bit fixed point, a horizontal pass rounded to
// 8 bits, then a vertical pass. Bit-identical to Pillow (tested), so a data set prepared here and
// one prepared with Pillow hold the same pixels before JPEG encoding. Channels are kept.
DecodedImage resize_lanczos(const DecodedImage& image, float x0, float y0, float x1, float y1, int out_w, int out_h);

}  // namespace tokcom

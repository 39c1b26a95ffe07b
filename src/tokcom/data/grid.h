// A labelled picture grid (`tokcom data show`): images side by side, each with a caption drawn
// under it in a small built-in 5x7 bitmap font (upper case, digits, a few signs).
#pragma once
#include <torch/types.h>

#include <string>
#include <vector>

namespace tokcom {

// images uint8 (N, C, H, W), C = 1 or 3; captions.size() == N. Each tile is upscaled by an
// integer factor (nearest) to at least `min_tile` px. Returns the grid as RGB planar (3, H, W).
torch::Tensor make_grid(const torch::Tensor& images, const std::vector<std::string>& captions,
                        int columns, int min_tile = 96);
// Float images normalised with mean/std (per channel, [0, 1] units) back to uint8.
torch::Tensor denormalise(const torch::Tensor& images, const std::vector<float>& mean,
                          const std::vector<float>& std);
// Draws `text` (upper-cased; unknown characters as '?') into an RGB planar uint8 (3, H, W) image
// with its top-left corner at (x, y), clipped to the image; returns the width used in pixels.
int draw_text(torch::Tensor& rgb, int x, int y, const std::string& text, uint8_t value);

}  // namespace tokcom

#include "tokcom/data/grid.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "tokcom/core/errors.h"

namespace tokcom {
namespace {

constexpr int kGlyphW = 5, kGlyphH = 7, kAdvance = 6, kLineH = 10;

// Hand-drawn 5x7 glyphs, one string of 7 rows x 5 columns each ('#' = ink).
const std::map<char, const char*>& glyphs() {
  static const std::map<char, const char*> g = {
      {'A', ".###.#...##...#######...##...##...#"}, {'B', "####.#...##...#####.#...##...#####."},
      {'C', ".###.#...##....#....#....#...#.###."}, {'D', "####.#...##...##...##...##...#####."},
      {'E', "######....####.#....#....#....#####"}, {'F', "######....####.#....#....#....#...."},
      {'G', ".###.#...##....#.####...##...#.####"}, {'H', "#...##...#######...##...##...##...#"},
      {'I', ".###...#....#....#....#....#...###."}, {'J', "..###...#....#....#....#.#..#..##.."},
      {'K', "#...##..#.#.#..##...#.#..#..#.#...#"}, {'L', "#....#....#....#....#....#....#####"},
      {'M', "#...###.###.#.##...##...##...##...#"}, {'N', "#...###..##.#.##..###...##...##...#"},
      {'O', ".###.#...##...##...##...##...#.###."}, {'P', "####.#...##...#####.#....#....#...."},
      {'Q', ".###.#...##...##...##.#.##..#..##.#"}, {'R', "####.#...##...#####.#.#..#..#.#...#"},
      {'S', ".#####....#.....###.....#....#####."}, {'T', "#####..#....#....#....#....#....#.."},
      {'U', "#...##...##...##...##...##...#.###."}, {'V', "#...##...##...##...##...#.#.#...#.."},
      {'W', "#...##...##...##.#.##.#.##.#.#.#.#."}, {'X', "#...##...#.#.#...#...#.#.#...##...#"},
      {'Y', "#...##...#.#.#...#....#....#....#.."}, {'Z', "#####....#...#...#...#...#....#####"},
      {'0', ".###.#...##..###.#.###..##...#.###."}, {'1', "..#...##....#....#....#....#...###."},
      {'2', ".###.#...#....#...#...#...#...#####"}, {'3', "####.....#....#.###.....#....#####."},
      {'4', "...#...##..#.#.#..#.#####...#....#."}, {'5', "######....####.....#....##...#.###."},
      {'6', "..##..#...#....####.#...##...#.###."}, {'7', "#####....#...#...#...#....#....#..."},
      {'8', ".###.#...##...#.###.#...##...#.###."}, {'9', ".###.#...##...#.####....#...#..##.."},
      {' ', "..................................."}, {'-', "...............###................."},
      {'/', "....#....#...#...#...#...#....#...."}, {'.', "..............................##..."},
      {':', ".....##...##........##...##........"}, {'(', "...#...#...#....#....#.....#.....#."},
      {')', ".#.....#.....#....#....#...#...#..."}, {'?', ".###.#...#....#...#...#.........#.."},
      {'_', "..............................#####"}, {'\'', "..#....#...#......................."},
  };
  return g;
}

}  // namespace

int draw_text(torch::Tensor& rgb, int x, int y, const std::string& text, uint8_t value) {
  const int h = int(rgb.size(1)), w = int(rgb.size(2));
  uint8_t* p = rgb.data_ptr<uint8_t>();
  int cx = x;
  for (char raw : text) {
    const char ch = char(std::toupper(static_cast<unsigned char>(raw)));
    auto it = glyphs().find(ch);
    const char* bits = it != glyphs().end() ? it->second : glyphs().at('?');
    for (int r = 0; r < kGlyphH; ++r)
      for (int c = 0; c < kGlyphW; ++c) {
        if (bits[r * kGlyphW + c] != '#') continue;
        const int px = cx + c, py = y + r;
        if (px < 0 || px >= w || py < 0 || py >= h) continue;
        for (int k = 0; k < 3; ++k) p[(size_t(k) * h + py) * w + px] = value;
      }
    cx += kAdvance;
  }
  return cx - x;
}

torch::Tensor denormalise(const torch::Tensor& images, const std::vector<float>& mean,
                          const std::vector<float>& std) {
  torch::Tensor x = images.to(torch::kCPU, torch::kFloat32);
  if (!mean.empty()) {
    const int64_t c = x.size(1);
    auto m = torch::tensor(std::vector<float>(mean.begin(), mean.begin() + c)).view({1, c, 1, 1});
    auto s = torch::tensor(std::vector<float>(std.begin(), std.begin() + c)).view({1, c, 1, 1});
    x = x * s + m;
  }
  return (x * 255.0).round().clamp(0, 255).to(torch::kUInt8);
}

torch::Tensor make_grid(const torch::Tensor& images, const std::vector<std::string>& captions,
                        int columns, int min_tile) {
  if (images.dim() != 4 || images.scalar_type() != torch::kUInt8)
    throw ShapeError("make_grid: images must be uint8 (N, C, H, W)");
  if (int64_t(captions.size()) != images.size(0))
    throw ShapeError("make_grid: " + std::to_string(images.size(0)) + " images but " +
                     std::to_string(captions.size()) + " captions");
  const int n = int(images.size(0)), h = int(images.size(2)), w = int(images.size(3));
  const int scale = std::max(1, (min_tile + std::max(h, w) - 1) / std::max(h, w));
  const int tw = w * scale, th = h * scale, pad = 6;
  const int cols = std::max(1, std::min(columns, n)), rows = (n + cols - 1) / cols;
  const int cell_w = std::max(tw, 16 * kAdvance) + pad, cell_h = th + kLineH + pad + 2;
  torch::Tensor rgb = torch::full({3, rows * cell_h + pad, cols * cell_w + pad}, 255, torch::kUInt8);
  torch::Tensor src = images.cpu();
  if (src.size(1) == 1) src = src.expand({n, 3, h, w});
  for (int i = 0; i < n; ++i) {
    const int x0 = pad + (i % cols) * cell_w + (cell_w - pad - tw) / 2;
    const int y0 = pad + (i / cols) * cell_h;
    torch::Tensor tile = src[i].repeat_interleave(scale, 1).repeat_interleave(scale, 2);
    rgb.index_put_({torch::indexing::Slice(), torch::indexing::Slice(y0, y0 + th),
                    torch::indexing::Slice(x0, x0 + tw)},
                   tile);
    std::string text = captions[i];
    const int max_chars = (cell_w - pad) / kAdvance;
    if (int(text.size()) > max_chars) text = text.substr(0, max_chars);
    const int text_w = int(text.size()) * kAdvance - 1;
    const int tx = pad + (i % cols) * cell_w + (cell_w - pad - text_w) / 2;
    draw_text(rgb, tx, y0 + th + 3, text, 0);
  }
  return rgb;
}

}  // namespace tokcom

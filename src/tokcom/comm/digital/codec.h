// comm/digital/codec.h — digital baselines: compress an image so it fits a bit budget (METHOD §6.3).
// A received image is perfect when its encoding fits the budget; otherwise it is lost (the sweep
// counts it misclassified). Codecs are stateless const objects: one instance serves all threads.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tokcom::digital {

struct Encoded {
  std::string bytes;    // the chosen encoding (empty when lost); resize: raw L·L·C uint8 (CHW)
  int64_t choice = -1;  // quality (jpeg/webp/avif) or side L (resize); −1 = lost
  bool fits = false;    // received perfectly
  int64_t budget_bits = 0;  // the budget it was chosen for
  // Size of `bytes` when it fits; when lost, the size the cheapest setting needed (why it was
  // lost: quality 1, or a 1×1 image), 0 when nothing could be tried (budget ≤ 0 for resize).
  int64_t size_bytes = 0;
};

// How quality codecs search their ladder. kLinear is the reference's scan (METHOD §6.3: from the best
// quality down, first that fits). kBisect bisects as if size fell with quality, then checks
// `bisect_window` rungs above the boundary; sizes are not monotone, but with a window ≥ 2 it made
// the scan's choice at every budget on every image checked (tests, docs/digital.md).
enum class QualitySearch { kLinear, kBisect };

struct CodecOptions {
  bool reference = false;  // METHOD §10 P20: resize rounds L to nearest; quality codecs scan linearly
  QualitySearch search = QualitySearch::kBisect;
  int bisect_window = 8;  // qualities checked above the bisected boundary
  int avif_speed = 6;     // libavif speed 0 (slowest) … 10 (fastest)
};

// One setting of a codec and the size of the image's whole encoding at that setting.
struct Rung {
  int64_t choice = 0;  // quality or L
  int64_t bytes = 0;
};

class DigitalCodec {
 public:
  virtual ~DigitalCodec() = default;
  virtual std::string name() const = 0;  // "resize", "jpeg", "webp", "avif"
  // image: uint8 (C, H, W), C = 1 or 3, any device. Chooses the best setting whose encoding is
  // strictly below budget_bits (resize: 8·C·L² ≤ budget_bits, the paper's rule). Budget ≤ 0 → lost.
  virtual Encoded encode(const at::Tensor& image, int64_t budget_bits) const = 0;
  // One encoding per budget; quality codecs share encodings across budgets (a sweep's ζ × SNR grid
  // costs at most one encode per quality). Same results as calling encode() per budget.
  virtual std::vector<Encoded> encode_many(const at::Tensor& image,
                                           const std::vector<int64_t>& budgets) const;
  // Every setting in scan order (best first) with its size: the image's rate curve, for users and
  // for brute-force checks of the chooser (encodes every setting).
  virtual std::vector<Rung> rate_ladder(const at::Tensor& image) const = 0;
  // uint8 (C, H, W) on CPU at the ORIGINAL size (resize: bilinear upsampling back). A lost
  // encoding → UsageError (nothing was received); corrupt bytes → FormatError.
  virtual at::Tensor decode(const Encoded& encoded,
                            int64_t channels,
                            int64_t height,
                            int64_t width) const = 0;
};

// "resize" | "jpeg" | "webp" | "avif"; unknown → ConfigError listing the names.
std::unique_ptr<DigitalCodec> make_codec(const std::string& name, bool reference = false);
std::unique_ptr<DigitalCodec> make_codec(const std::string& name, const CodecOptions& options);
const std::vector<std::string>& codec_names();

// Resize side L (METHOD §6.3, 10 P20). Paper (reference = false): largest L with 8·C·L² ≤ budget,
// i.e. ⌊√(B/(8C))⌋. Reference: round(√(B/(8C))), which for C = 3 and n = 3·H·W equals the
// reference's round(√(ζ·log₂(1+snr)·H·W/8)) and may exceed the budget. Clipped to `side`;
// 0 means nothing fits (lost). budget_bits is real-valued so a sweep can pass B exactly.
int64_t resize_side(double budget_bits, int64_t channels, int64_t side, bool reference);

// AVIF quality scale 0…100 → AV1 quantizer 63…0 (libavif ≥ 1.0's avifQualityToQuantizer).
int avif_quantizer(int64_t quality);

}  // namespace tokcom::digital

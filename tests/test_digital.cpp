// Digital baselines (METHOD §6.3, 10 P20): capacity, resize side, quality choosers vs brute force,
// round trips, lost images, per-image CSV.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "common/helpers.h"
#include "common/tiny_vit.h"
#include "tokcom/comm/digital/capacity.h"
#include "tokcom/comm/digital/codec.h"
#include "tokcom/comm/digital/options.h"
#include "tokcom/comm/digital/per_image.h"
#include "tokcom/comm/digital/quality_search.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/data/transforms.h"
#include "tokcom/eval/digital_eval.h"

using namespace tokcom;
using tokcom::test::error_of;
using namespace tokcom::digital;

namespace {

// A "natural-ish" uint8 (C, H, W) image: smooth gradients + a low-frequency wave + shapes + noise,
// so codecs see both flat areas and edges. Deterministic per seed.
at::Tensor natural_image(uint32_t seed, int64_t c, int64_t h, int64_t w) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, 4.0 + 8.0 * u(rng));
  at::Tensor img = torch::empty({c, h, w}, torch::kUInt8);
  auto a = img.accessor<uint8_t, 3>();
  double base[3], gx[3], gy[3];
  for (int k = 0; k < 3; ++k) {
    base[k] = 40 + 150 * u(rng);
    gx[k] = (u(rng) - 0.5) * 120;
    gy[k] = (u(rng) - 0.5) * 120;
  }
  const double fx = 1 + 5 * u(rng), fy = 1 + 5 * u(rng), amp = 10 + 30 * u(rng);
  const double cx = w * u(rng), cy = h * u(rng), r = (0.15 + 0.3 * u(rng)) * w;
  const double rx0 = w * u(rng) * 0.5, ry0 = h * u(rng) * 0.5, shade = 60 + 120 * u(rng);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const double xn = static_cast<double>(x) / w, yn = static_cast<double>(y) / h;
      const double wave = amp * std::sin(2 * M_PI * fx * xn) * std::cos(2 * M_PI * fy * yn);
      const bool disc = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
      const bool rect = x > rx0 && x < rx0 + w / 3 && y > ry0 && y < ry0 + h / 4;
      for (int64_t k = 0; k < c; ++k) {
        double v = base[k] + gx[k] * xn + gy[k] * yn + wave + noise(rng);
        if (disc) v = 0.5 * v + 0.5 * (255 - base[(k + 1) % 3]);
        if (rect) v = shade + 0.2 * v;
        a[k][y][x] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return img;
}

double psnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(torch::kDouble) - b.to(torch::kDouble)).square().mean().item<double>();
  return mse == 0 ? std::numeric_limits<double>::infinity() : 10 * std::log10(255.0 * 255.0 / mse);
}

// Brute force over every setting (METHOD §6.3): lost unless the cheapest fits, else the best
// quality whose whole file is strictly below the budget.
int64_t brute_force_choice(const std::vector<Rung>& ladder, int64_t budget) {
  if (budget <= 0 || ladder.back().bytes * 8 >= budget) return -1;
  int64_t best = -1;
  for (const Rung& r : ladder) {
    if (r.bytes * 8 < budget) best = std::max(best, r.choice);
  }
  return best;
}

// Budgets on both sides of every size the ladder contains, plus extremes.
std::vector<int64_t> boundary_budgets(const std::vector<Rung>& ladder) {
  std::vector<int64_t> budgets = {0, -3, 1, std::numeric_limits<int32_t>::max()};
  for (const Rung& r : ladder) {
    budgets.push_back(r.bytes * 8);
    budgets.push_back(r.bytes * 8 + 1);
  }
  return budgets;
}

// The named JPEGs of the shared Imagenette-64 tarball, decoded with TurboJPEG to uint8 (3, H, W).
std::map<std::string, at::Tensor> tarball_images(const std::string& tar,
                                                 const std::vector<std::string>& names) {
  std::map<std::string, at::Tensor> out;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  if (archive_read_open_filename(a, tar.c_str(), 1 << 16) != ARCHIVE_OK) return out;
  tjhandle tj = tjInitDecompress();
  archive_entry* entry = nullptr;
  while (out.size() < names.size() && archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    const std::string name = archive_entry_pathname(entry);
    if (std::find(names.begin(), names.end(), name) == names.end()) continue;
    std::string bytes(static_cast<size_t>(archive_entry_size(entry)), '\0');
    archive_read_data(a, bytes.data(), bytes.size());
    auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    int w = 0, h = 0, sub = 0, cs = 0;
    if (tjDecompressHeader3(tj, data, bytes.size(), &w, &h, &sub, &cs) != 0) continue;
    at::Tensor hwc = torch::empty({h, w, 3}, torch::kUInt8);
    if (tjDecompress2(tj, data, bytes.size(), hwc.data_ptr<uint8_t>(), w, 0, h, TJPF_RGB,
                      TJFLAG_ACCURATEDCT) == 0) {
      out[name] = hwc.permute({2, 0, 1}).contiguous();
    }
  }
  tjDestroy(tj);
  archive_read_free(a);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- capacity (METHOD §6.3)

TEST(Capacity, KnownAnswers) {
  // 0.01 · 150528 · log2(11) = 1505.28 · 3.459431619 = 5207.4132
  EXPECT_NEAR(capacity_bits(0.01, 150528, 10.0), 5207.4132, 1e-3);
  EXPECT_NEAR(capacity_bits(1.0, 150528, 0.0), 150528.0, 1e-6);     // log2(2) = 1
  EXPECT_NEAR(capacity_bits(0.5, 150528, 20.0), 501123.629, 1e-3);  // log2(101)
  // log2(1 + 1e-5) = (1e-5 − 5e-11 + …) / ln 2: the log1p regime
  EXPECT_NEAR(capacity_bits(0.1, 3 * 28 * 28, -50.0), 235.2 * (1e-5 - 5e-11) / std::log(2.0),
              1e-12);
  EXPECT_EQ(capacity_bits(0.3, 150528, -std::numeric_limits<double>::infinity()), 0.0);
  EXPECT_EQ(capacity_bits(0.0, 150528, 20.0), 0.0);
  EXPECT_EQ(capacity_bits(0.3, 0, 20.0), 0.0);
}

TEST(Capacity, NegativeZetaIsAConfigError) {
  const std::string msg = error_of([] { capacity_bits(-0.1, 150528, 10.0); });
  EXPECT_NE(msg.find("ConfigError"), std::string::npos) << msg;
  EXPECT_NE(msg.find("zeta"), std::string::npos) << msg;
  EXPECT_THROW(practical_bits(0.1, -5, 10.0), ConfigError);
  EXPECT_THROW(capacity_bits(0.1, 10, std::nan("")), ConfigError);
}

TEST(Capacity, BudgetBitsFloorsAndClamps) {
  EXPECT_EQ(budget_bits_of(5207.41), 5207);
  EXPECT_EQ(budget_bits_of(24.0), 24);
  EXPECT_EQ(budget_bits_of(0.0), 0);
  EXPECT_EQ(budget_bits_of(-3.5), 0);
  EXPECT_EQ(budget_bits_of(std::nan("")), 0);
  EXPECT_EQ(budget_bits_of(1e30), std::numeric_limits<int64_t>::max());
}

TEST(Practical, CqiTableMatchesTs38214) {
  const auto& t = nr_cqi_table();
  ASSERT_EQ(t.size(), 15u);
  EXPECT_DOUBLE_EQ(t.front().spectral_efficiency, 0.1523);
  EXPECT_DOUBLE_EQ(t.back().spectral_efficiency, 5.5547);
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].cqi, static_cast<int>(i) + 1);
    const double bits = t[i].modulation == "QPSK" ? 2 : t[i].modulation == "16QAM" ? 4 : 6;
    // efficiency = bits per symbol · code rate (the table rounds to 4 decimals)
    EXPECT_NEAR(t[i].spectral_efficiency, bits * t[i].code_rate_x1024 / 1024, 6e-4) << t[i].cqi;
    if (i > 0) {
      EXPECT_GT(t[i].spectral_efficiency, t[i - 1].spectral_efficiency);
      EXPECT_GT(t[i].min_snr_db, t[i - 1].min_snr_db);
    }
  }
}

TEST(Practical, CliffMonotoneAndBelowShannon) {
  EXPECT_EQ(practical_bits(0.5, 150528, -6.71), 0.0);  // below CQI 1: nothing gets through
  EXPECT_EQ(practical_bits(0.5, 150528, -30.0), 0.0);
  EXPECT_NEAR(practical_bits(0.5, 150528, -6.7), 0.5 * 150528 * 0.1523, 1e-6);
  EXPECT_NEAR(practical_bits(0.5, 150528, 10.0), 0.5 * 150528 * 1.9141, 1e-6);  // CQI 8
  EXPECT_NEAR(practical_bits(0.5, 150528, 40.0), 0.5 * 150528 * 5.5547, 1e-6);
  double previous = 0.0;
  for (double snr = -20.0; snr <= 40.0; snr += 0.05) {
    const double p = practical_bits(0.2, 150528, snr);
    EXPECT_GE(p, previous) << snr;
    EXPECT_LT(p, capacity_bits(0.2, 150528, snr)) << snr;  // a real radio never beats Shannon
    previous = p;
  }
  EXPECT_EQ(link_bits(parse_capacity_model("practical"), 0.5, 150528, 10.0),
            practical_bits(0.5, 150528, 10.0));
  EXPECT_THROW(parse_capacity_model("turbo"), ConfigError);
}

// ---------------------------------------------------------------- resize (METHOD §6.3, 10 P20)

TEST(ResizeSide, PaperFloorKnownAnswers) {
  for (int64_t l = 1; l <= 224; ++l) {
    EXPECT_EQ(resize_side(24.0 * l * l, 3, 224, false), l) << l;
    EXPECT_EQ(resize_side(24.0 * l * l - 1, 3, 224, false), l - 1) << l;
    EXPECT_EQ(resize_side(8.0 * l * l, 1, 224, false), l) << l;  // grayscale: 8 bits per pixel
    EXPECT_EQ(resize_side(8.0 * l * l - 1, 1, 224, false), l - 1) << l;
  }
  EXPECT_EQ(resize_side(23.0, 3, 224, false), 0);
  EXPECT_EQ(resize_side(0.0, 3, 224, false), 0);
  EXPECT_EQ(resize_side(-5.0, 3, 224, false), 0);
  EXPECT_EQ(resize_side(1e9, 3, 64, false), 64);  // clipped to the image side
}

TEST(ResizeSide, ReferenceRoundsToNearest) {
  // ζ = 0.1, SNR 5 dB, 224×224: √(ζ·log2(1+snr)·224²/8) = 35.92 → reference 36 (exceeds B),
  // paper 35.
  const double bits = capacity_bits(0.1, 3 * 224 * 224, 5.0);
  EXPECT_EQ(resize_side(bits, 3, 224, true), 36);
  EXPECT_EQ(resize_side(bits, 3, 224, false), 35);
  EXPECT_GT(24.0 * 36 * 36, bits);
  for (double zeta : {0.01, 0.07, 0.3}) {
    for (double snr : {-10.0, 0.0, 7.5}) {
      const double snr_lin = std::pow(10.0, snr / 10);
      const auto expected =
          std::lround(std::sqrt(zeta * std::log2(1 + snr_lin) * 224 * 224 / 8));  // reference code
      EXPECT_EQ(resize_side(capacity_bits(zeta, 3 * 224 * 224, snr), 3, 224, true),
                std::min<int64_t>(expected, 224));
    }
  }
  EXPECT_EQ(resize_side(24.0 * 0.2, 3, 224, true), 0);  // √0.2 rounds to 0: lost
}

TEST(ResizeCodec, SendsRawLxLAndUpsamplesBack) {
  auto codec = make_codec("resize");
  const at::Tensor img = natural_image(3, 3, 64, 64);
  const Encoded e = codec->encode(img, 24 * 20 * 20 + 5);
  ASSERT_TRUE(e.fits);
  EXPECT_EQ(e.choice, 20);
  EXPECT_EQ(e.size_bytes, 3 * 20 * 20);
  EXPECT_EQ(static_cast<int64_t>(e.bytes.size()), 3 * 20 * 20);
  const at::Tensor back = codec->decode(e, 3, 64, 64);
  EXPECT_EQ(back.sizes(), img.sizes());
  EXPECT_EQ(back.dtype(), torch::kUInt8);
  EXPECT_GT(psnr(back, img), 15.0);
  // Enough bits for the raw image: sent as is, bit exact.
  const Encoded full = codec->encode(img, 24 * 64 * 64);
  EXPECT_EQ(full.choice, 64);
  EXPECT_TRUE(torch::equal(codec->decode(full, 3, 64, 64), img));
  // Grayscale, 28×28 (Fashion-MNIST).
  const at::Tensor gray = natural_image(4, 1, 28, 28);
  const Encoded g = codec->encode(gray, 8 * 10 * 10);
  EXPECT_EQ(g.choice, 10);
  EXPECT_EQ(codec->decode(g, 1, 28, 28).sizes(), gray.sizes());
}

TEST(ResizeCodec, UpsamplingEqualsLibTorchBilinear) {
  namespace F = torch::nn::functional;
  auto codec = make_codec("resize");
  for (const int64_t c : {3, 1}) {
    const at::Tensor img = natural_image(7 + c, c, 64, 64);
    for (const int64_t l : {1, 7, 22, 63}) {
      const Encoded e = codec->encode(img, 8 * c * l * l);
      ASSERT_EQ(e.choice, l);
      at::Tensor small = torch::empty({c, l, l}, torch::kUInt8);
      std::memcpy(small.data_ptr<uint8_t>(), e.bytes.data(), e.bytes.size());
      const at::Tensor expected = F::interpolate(small.unsqueeze(0).to(torch::kFloat),
                                                 F::InterpolateFuncOptions()
                                                     .size(std::vector<int64_t>{64, 64})
                                                     .mode(torch::kBilinear)
                                                     .align_corners(false))
                                      .squeeze(0)
                                      .round()
                                      .clamp(0, 255)
                                      .to(torch::kUInt8);
      const at::Tensor got = codec->decode(e, c, 64, 64);
      const at::Tensor diff = (got.to(torch::kInt) - expected.to(torch::kInt)).abs();
      EXPECT_LE(diff.max().item<int>(), 1) << "L " << l;  // float rounding at exact halves only
      EXPECT_LT(diff.to(torch::kFloat).mean().item<float>(), 1e-3) << "L " << l;
    }
  }
}

TEST(ResizeCodec, ReferenceModeMayExceedTheBudget) {
  const at::Tensor img = natural_image(5, 3, 64, 64);
  const int64_t budget = 24 * 10 * 10 + 24 * 11;  // √(B/24) = 10.54 → reference 11, paper 10
  const Encoded paper = make_codec("resize")->encode(img, budget);
  const Encoded reference = make_codec("resize", /*reference=*/true)->encode(img, budget);
  EXPECT_EQ(paper.choice, 10);
  EXPECT_EQ(reference.choice, 11);
  EXPECT_TRUE(reference.fits);  // METHOD §10 P20: the reference counts it received
  EXPECT_GT(reference.size_bytes * 8, budget);
}

// ---------------------------------------------------------------- ladder search (synthetic)

TEST(SearchLadder, MatchesScanOnMonotoneAndFindsHiddenRungLinearly) {
  // sizes by rung (best first); fits = size < budget.
  const std::vector<int> monotone = {90, 80, 70, 60, 50, 40, 30, 20, 10, 5};
  for (int budget = 0; budget <= 100; ++budget) {
    auto fits = [&](int64_t i) { return monotone[i] < budget; };
    int64_t expected = -1;
    if (monotone.back() < budget) {
      for (size_t i = 0; i < monotone.size(); ++i) {
        if (monotone[i] < budget) {
          expected = static_cast<int64_t>(i);
          break;
        }
      }
    }
    EXPECT_EQ(search_ladder(10, fits, QualitySearch::kLinear, 2), expected) << budget;
    EXPECT_EQ(search_ladder(10, fits, QualitySearch::kBisect, 2), expected) << budget;
  }
  // Rung 1 fits but rungs 2…7 do not: the scan finds it; bisect with a window of 2 cannot.
  const std::vector<int> bumpy = {90, 30, 70, 70, 70, 70, 70, 70, 20, 10};
  auto fits = [&](int64_t i) { return bumpy[i] < 50; };
  EXPECT_EQ(search_ladder(10, fits, QualitySearch::kLinear, 2), 1);
  EXPECT_EQ(search_ladder(10, fits, QualitySearch::kBisect, 2), 8);
  EXPECT_EQ(search_ladder(10, fits, QualitySearch::kBisect, 7), 1);
  // Cheapest rung does not fit → lost even though rung 0 would (METHOD §6.3 checks quality 1 first).
  const std::vector<int> odd = {10, 90, 90};
  auto fits_odd = [&](int64_t i) { return odd[i] < 50; };
  EXPECT_EQ(search_ladder(3, fits_odd, QualitySearch::kLinear, 2), -1);
}

// ---------------------------------------------------------------- quality codecs

class QualityCodecTest : public ::testing::TestWithParam<std::string> {};

// The chooser returns exactly the brute-force choice at every budget boundary of the image's own
// rate curve, for RGB 64×64 and grayscale 28×28; encode_many agrees with encode.
TEST_P(QualityCodecTest, ChooserMatchesBruteForce) {
  for (const bool reference : {false, true}) {  // default search and the reference's linear scan
    auto codec = make_codec(GetParam(), reference);
    std::vector<at::Tensor> images = {natural_image(11, 3, 64, 64), natural_image(13, 1, 28, 28)};
    if (GetParam() != "avif") {  // AV1 encodes cost ~10 ms: two images for avif
      images.push_back(natural_image(12, 3, 64, 64));
      images.push_back(natural_image(14, 1, 28, 28));
    }
    for (size_t n = 0; n < images.size(); ++n) {
      const std::vector<Rung> ladder = codec->rate_ladder(images[n]);
      const std::vector<int64_t> budgets = boundary_budgets(ladder);
      const std::vector<Encoded> got = codec->encode_many(images[n], budgets);
      ASSERT_EQ(got.size(), budgets.size());
      for (size_t b = 0; b < budgets.size(); ++b) {
        const int64_t expected = brute_force_choice(ladder, budgets[b]);
        ASSERT_EQ(got[b].choice, expected)
            << GetParam() << " image " << n << " budget " << budgets[b];
        EXPECT_EQ(got[b].fits, expected >= 0);
        EXPECT_EQ(got[b].budget_bits, budgets[b]);
        if (got[b].fits) {
          EXPECT_LT(static_cast<int64_t>(got[b].bytes.size()) * 8, budgets[b]);
          EXPECT_EQ(got[b].size_bytes, static_cast<int64_t>(got[b].bytes.size()));
        } else {
          EXPECT_TRUE(got[b].bytes.empty());
          EXPECT_EQ(got[b].size_bytes, ladder.back().bytes);  // what the cheapest setting needed
        }
      }
      // Single-budget encode() is the same chooser.
      const int64_t mid = ladder[ladder.size() / 2].bytes * 8 + 1;
      EXPECT_EQ(codec->encode(images[n], mid).choice, brute_force_choice(ladder, mid));
    }
  }
}

TEST_P(QualityCodecTest, ZeroOrNegativeBudgetIsLostWithoutCrash) {
  auto codec = make_codec(GetParam());
  for (const int64_t budget : {int64_t{0}, int64_t{-1}, int64_t{-1000000}, int64_t{8}}) {
    const Encoded e = codec->encode(natural_image(21, 3, 64, 64), budget);
    EXPECT_FALSE(e.fits);
    EXPECT_EQ(e.choice, -1);
    EXPECT_TRUE(e.bytes.empty());
    const std::string msg = error_of([&] { codec->decode(e, 3, 64, 64); });
    EXPECT_NE(msg.find("lost"), std::string::npos) << msg;
  }
}

TEST_P(QualityCodecTest, HighBudgetRoundTripKeepsShapeAndQuality) {
  auto codec = make_codec(GetParam());
  for (const int64_t c : {3, 1}) {
    const int64_t side = c == 3 ? 64 : 28;
    const at::Tensor img = natural_image(31 + c, c, side, side);
    const Encoded e = codec->encode(img, int64_t{1} << 30);
    ASSERT_TRUE(e.fits);
    EXPECT_EQ(e.choice, GetParam() == "jpeg" ? 95 : 100);  // the best rung
    const at::Tensor back = codec->decode(e, c, side, side);
    EXPECT_EQ(back.sizes(), img.sizes());
    EXPECT_EQ(back.dtype(), torch::kUInt8);
    EXPECT_GT(psnr(back, img), 30.0) << GetParam() << " C=" << c;
  }
}

TEST_P(QualityCodecTest, BadImagesAreShapeErrors) {
  auto codec = make_codec(GetParam());
  EXPECT_THROW(codec->encode(torch::zeros({2, 8, 8}, torch::kUInt8), 1000), ShapeError);
  EXPECT_THROW(codec->encode(torch::zeros({3, 8, 8}, torch::kFloat), 1000), ShapeError);
  const std::string msg = error_of([&] { codec->encode(torch::zeros({8, 8}, torch::kUInt8), 1); });
  EXPECT_NE(msg.find("image"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Digital,
                         QualityCodecTest,
                         ::testing::Values("jpeg", "webp", "avif"),
                         [](const auto& info) { return info.param; });

// The default kBisect shortcut against brute force on many images at every budget boundary:
// the shortcut is the default only because this holds (METHOD §6.3 semantics = the linear scan).
TEST(QualityCodecBisect, SameChoicesAsBruteForceOnManyImages) {
  CodecOptions options;
  options.search = QualitySearch::kBisect;
  for (const std::string name : {"jpeg", "webp"}) {
    auto fast = make_codec(name, options);
    int checked = 0;
    for (uint32_t seed = 100; seed < (name == "jpeg" ? 160 : 120); ++seed) {
      const int64_t c = seed % 3 == 0 ? 1 : 3;
      const int64_t side = c == 1 ? 28 : (seed % 2 ? 64 : 48);
      const at::Tensor img = natural_image(seed, c, side, side);
      const std::vector<Rung> ladder = fast->rate_ladder(img);
      const std::vector<int64_t> budgets = boundary_budgets(ladder);
      const std::vector<Encoded> got = fast->encode_many(img, budgets);  // memoised, same choices
      for (size_t b = 0; b < budgets.size(); ++b) {
        ASSERT_EQ(got[b].choice, brute_force_choice(ladder, budgets[b]))
            << name << " seed " << seed << " budget " << budgets[b];
        ++checked;
      }
    }
    EXPECT_GT(checked, 1000);
  }
}

TEST(JpegCodec, BytesAreTurboJpegAtTheChosenQuality) {
  // Independent encoder call: tjCompress2, 4:2:0, accurate DCT, at the chosen quality.
  const at::Tensor img = natural_image(41, 3, 64, 64);
  const Encoded e = make_codec("jpeg")->encode(img, 8 * 1500);
  ASSERT_TRUE(e.fits);
  const at::Tensor hwc = img.permute({1, 2, 0}).contiguous();
  tjhandle h = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(h, hwc.data_ptr<uint8_t>(), 64, 64 * 3, 64, TJPF_RGB, &out, &size,
                        TJSAMP_420, static_cast<int>(e.choice), TJFLAG_ACCURATEDCT),
            0);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), size), e.bytes);
  tjFree(out);
  tjDestroy(h);
}

// Parity with PIL (the reference's encoder): on real Imagenette-64 images our JPEG and WebP files
// have exactly PIL's size at every quality (fixture made by bench/digital_python.py), and the
// chooser matches brute force on these real rate curves too.
TEST(PilParity, JpegAndWebpSizesEqualPilAtEveryQuality) {
  const std::string tar = test::shared_dir() + "/data/imagenette2-64.tar.gz";
  if (!std::filesystem::exists(tar)) TOKCOM_SKIP_MISSING("no " << tar);
  const auto fixture =
      nlohmann::json::parse(read_file(std::string(TOKCOM_TEST_DATA) + "/digital_pil_ladders.json"));
  for (const std::string codec_name : {"jpeg", "webp"}) {
    auto codec = make_codec(codec_name);
    std::vector<std::string> names;
    for (const auto& item : fixture.at(codec_name).items()) names.push_back(item.key());
    const auto images = tarball_images(tar, names);
    ASSERT_EQ(images.size(), names.size()) << "images missing from " << tar;
    for (const auto& [name, image] : images) {
      const std::vector<int64_t> pil = fixture.at(codec_name).at(name).get<std::vector<int64_t>>();
      const std::vector<Rung> ladder = codec->rate_ladder(image);
      ASSERT_EQ(ladder.size(), pil.size());
      for (size_t i = 0; i < ladder.size(); ++i) {
        EXPECT_EQ(ladder[i].bytes, pil[i])
            << codec_name << " " << name << " quality " << ladder[i].choice;
      }
      const std::vector<int64_t> budgets = boundary_budgets(ladder);
      const std::vector<Encoded> got = codec->encode_many(image, budgets);
      for (size_t b = 0; b < budgets.size(); ++b) {
        EXPECT_EQ(got[b].choice, brute_force_choice(ladder, budgets[b])) << name;
      }
    }
  }
}

TEST(AvifCodec, QualityMapsToQuantizer) {
  EXPECT_EQ(avif_quantizer(100), 0);
  EXPECT_EQ(avif_quantizer(0), 63);
  EXPECT_EQ(avif_quantizer(50), 32);  // (50·63 + 50) / 100
  EXPECT_EQ(make_codec("avif")->rate_ladder(natural_image(51, 1, 16, 16)).size(), 64u);
}

TEST(MakeCodec, UnknownNameListsTheKnownOnes) {
  const std::string msg = error_of([] { make_codec("png"); });
  EXPECT_NE(msg.find("ConfigError"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'png'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("resize, jpeg, webp, avif"), std::string::npos) << msg;
  for (const std::string& name : codec_names()) EXPECT_EQ(make_codec(name)->name(), name);
}

// ---------------------------------------------------------------- per-image CSV

TEST(PerImage, CsvRowsAndAtomicWrite) {
  Encoded kept;
  kept.choice = 37;
  kept.fits = true;
  kept.budget_bits = 5207;
  kept.size_bytes = 640;
  Encoded lost;
  lost.budget_bits = 120;
  lost.size_bytes = 331;
  const std::vector<PerImageRow> rows = {per_image_row("jpeg", "17", 0.01, 10.0, kept),
                                         per_image_row("webp", "a,b.png", 0.25, -17.5, lost)};
  const std::string expected =
      "method,image,zeta,snr_db,budget_bits,choice,bytes,fits\n"
      "jpeg,17,0.01,10,5207,37,640,1\n"
      "webp,\"a,b.png\",0.25,-17.5,120,,331,0\n";
  EXPECT_EQ(per_image_csv(rows), expected);
  const std::string path = test::temp_dir("digital") + "/per_image.csv";
  write_per_image_csv(path, rows);
  EXPECT_EQ(read_file(path), expected);
}

// ---------------------------------------------------------------- the grid over a split

// evaluate_digital classifies each image's distinct decoded settings in one batch. Each cell must be
// what one codec, one budget and one batch-1 forward of that image give, computed here independently.
TEST(DigitalEval, EachCellIsTheBackbonesAnswerOnItsOwnDecodedImage) {
  std::vector<std::string> overrides = test::tiny_vit_overrides(test::temp_dir("digital-eval"), "none");
  for (const char* o : {"data.image_size=32", "model.image_size=32", "model.patch_size=8", "model.in_chans=3"}) {
    overrides.push_back(o);
  }
  const Config config = Config::load("", overrides);
  Vit vit = test::random_tiny_vit(config, 3);
  ImageDataset data;
  data.name = "folder";
  data.split = "val";
  const int64_t n = 12;
  std::vector<at::Tensor> images;
  for (int64_t i = 0; i < n; ++i) images.push_back(natural_image(static_cast<uint32_t>(40 + i), 3, 32, 32));
  data.images = torch::stack(images);
  // Labels the model answers right for about half the images, so a wrong row of the batch shows.
  {
    torch::NoGradGuard no_grad;
    const at::Tensor pred = vit->forward(eval_transform(data.images, transform_options(config, data))).logits.argmax(1);
    data.labels = torch::where(torch::arange(n) % 2 == 0, pred, (pred + 1) % 10);
  }
  std::vector<DigitalPoint> points;
  for (const char* codec : {"resize", "jpeg", "webp"}) {
    for (double zeta : {0.01, 0.05, 0.1, 0.3, 1.0}) {
      for (double snr : {0.0, 10.0}) points.push_back(DigitalPoint{codec, CapacityModel::kShannon, zeta, snr});
    }
  }
  DigitalEvalOptions o;
  o.input_values = 3 * 32 * 32;
  const CodecOptions codec_options;
  std::vector<PerImageRow> rows;
  const std::vector<LinkResult> got = evaluate_digital(vit, points, data, config, codec_options, o, &rows);
  ASSERT_EQ(got.size(), points.size());
  ASSERT_EQ(rows.size(), points.size() * n);
  const TransformOptions transform = transform_options(config, data);
  int64_t decoded = 0, lost = 0;
  for (size_t i = 0; i < points.size(); ++i) {
    const std::unique_ptr<DigitalCodec> codec = make_codec(points[i].codec, codec_options);
    const int64_t budget = budget_bits_of(link_bits(points[i].capacity, points[i].zeta, o.input_values,
                                                    points[i].snr_db));
    int64_t correct = 0;
    for (int64_t k = 0; k < n; ++k) {
      const Encoded e = codec->encode_many(data.images[k], {budget}).at(0);
      if (!e.fits) {
        ++lost;
        continue;
      }
      ++decoded;
      torch::NoGradGuard no_grad;
      const at::Tensor x = eval_transform(codec->decode(e, 3, 32, 32).unsqueeze(0), transform);
      correct += vit->forward(x).logits.argmax(1).item<int64_t>() == data.labels[k].item<int64_t>();
    }
    EXPECT_EQ(got[i].correct, correct) << points[i].codec << " zeta " << points[i].zeta << " snr " << points[i].snr_db;
    EXPECT_EQ(got[i].n_images, n);
  }
  // The grid has both lost and received cells, and images the model gets right and wrong.
  EXPECT_GT(decoded, 0);
  EXPECT_GT(lost, 0);
}

// ---------------------------------------------------------------- config section

TEST(DigitalSettings, DefaultsAndBadValues) {
  const DigitalSettings s = digital_settings(
      Config::load("", {"digital.methods=[jpeg, avif]", "digital.capacity=practical"}));
  EXPECT_EQ(s.methods, (std::vector<std::string>{"jpeg", "avif"}));
  EXPECT_EQ(s.capacity, CapacityModel::kPractical);
  EXPECT_EQ(s.codec.search, QualitySearch::kBisect);
  EXPECT_EQ(s.codec.bisect_window, 8);
  const std::string msg =
      error_of([] { digital_settings(Config::load("", {"digital.methods=[jpeg, png]"})); });
  EXPECT_NE(msg.find("digital.methods"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'png'"), std::string::npos) << msg;
  EXPECT_THROW(digital_settings(Config::load("", {"digital.search=random"})), ConfigError);
  EXPECT_THROW(digital_settings(Config::load("", {"digital.avif_speed=11"})), ConfigError);
}

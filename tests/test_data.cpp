// Data pipeline: readers (IDX, folder, tarball), cache, transforms, loader, `tokcom data`.
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/data/dataset.h"
#include "tokcom/data/grid.h"
#include "tokcom/data/image_codec.h"
#include "tokcom/data/loader.h"
#include "tokcom/data/prepare.h"
#include "tokcom/data/transforms.h"

namespace tokcom {
namespace {
namespace fs = std::filesystem;
using test::temp_dir;

const char* kFashionDir = "/usr/share/datasets/fashion-mnist";

std::string tarball() { return test::shared_dir() + "/data/imagenette2-64.tar.gz"; }

// One cache folder for the whole binary: Imagenette is decoded once, later loads hit the cache.
const std::string& cache_dir() {
  static const std::string dir = temp_dir("cache");
  return dir;
}
Config imagenette_config(std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"data.dataset=imagenette", "data.image_size=64",
                                "data.imagenette_tar=" + tarball(), "data.cache_dir=" + cache_dir()};
  o.insert(o.end(), extra.begin(), extra.end());
  return Config::load("", o);
}
const ImageDataset& imagenette(const std::string& split) {
  static std::map<std::string, ImageDataset> sets;
  if (!sets.count(split)) sets[split] = load_dataset(imagenette_config(), split);
  return sets.at(split);
}
const ImageDataset& fashion_train() {
  static const ImageDataset ds = load_fashion_mnist(kFashionDir, "train");
  return ds;
}

template <typename F>
void expect_data_error(F&& f, const std::vector<std::string>& substrings) {
  try {
    f();
    ADD_FAILURE() << "expected DataError";
  } catch (const DataError& e) {
    for (const auto& s : substrings) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}
std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

// ---------------------------------------------------------------- Fashion-MNIST

// Known answers read independently with /usr/bin/python3:
//   gzip.open('train-labels-idx1-ubyte.gz').read()[8]   → 9 (Ankle boot)
//   im = gzip.open('train-images-idx3-ubyte.gz').read()[16:16+784]
//   im[14*28+14] = 217, im[20*28+5] = 205, im[3*28+12] = 1, im[0] = 0, sum(im) = 76247
//   t10k labels [8:13] → 9, 2, 1, 1, 6
TEST(FashionMnist, CountsFirstLabelAndPixels) {
  const ImageDataset& train = fashion_train();
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(train.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(train.labels[0].item<int64_t>(), 9);
  EXPECT_EQ(train.class_names[9], "Ankle boot");
  EXPECT_EQ(train.class_names[0], "T-shirt/top");
  const torch::Tensor im = train.images[0][0].to(torch::kInt64);
  EXPECT_EQ(im[14][14].item<int64_t>(), 217);
  EXPECT_EQ(im[20][5].item<int64_t>(), 205);
  EXPECT_EQ(im[3][12].item<int64_t>(), 1);
  EXPECT_EQ(im[0][0].item<int64_t>(), 0);
  EXPECT_EQ(im.sum().item<int64_t>(), 76247);
  const ImageDataset test = load_dataset(Config::load("", {"data.dataset=fashion-mnist"}), "val");
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.split, "test");  // "val" = "test" for Fashion-MNIST
  EXPECT_TRUE(torch::equal(test.labels.slice(0, 0, 5), torch::tensor({9, 2, 1, 1, 6}, torch::kInt64)));
  EXPECT_EQ(torch::bincount(train.labels).min().item<int64_t>(), 6000);  // balanced classes
}

TEST(FashionMnist, BadIdxFilesNameFileAndProblem) {
  const std::string dir = temp_dir("idx");
  const std::string labels = be32(2049) + be32(3) + std::string("\x01\x02\x03", 3);
  std::string images = be32(2051) + be32(3) + be32(28) + be32(28) + std::string(3 * 784, '\x07');
  write_gz(dir + "/train-labels-idx1-ubyte.gz", labels);
  write_gz(dir + "/train-images-idx3-ubyte.gz", images);
  EXPECT_EQ(load_fashion_mnist(dir, "train").size(), 3);  // the well-formed file reads

  write_gz(dir + "/train-images-idx3-ubyte.gz", be32(2049) + images.substr(4));
  expect_data_error([&] { load_fashion_mnist(dir, "train"); },
                    {"train-images-idx3-ubyte.gz", "magic 2049", "expected 2051"});
  write_gz(dir + "/train-images-idx3-ubyte.gz", images.substr(0, images.size() - 10));
  expect_data_error([&] { load_fashion_mnist(dir, "train"); },
                    {"train-images-idx3-ubyte.gz", "IDX length 2358 bytes, expected 2368"});
  write_gz(dir + "/train-images-idx3-ubyte.gz", images);
  write_gz(dir + "/train-labels-idx1-ubyte.gz", be32(2049) + be32(4) + "\x01\x02\x03\x04");
  expect_data_error([&] { load_fashion_mnist(dir, "train"); }, {"3 images", "4 labels"});
  expect_data_error([&] { load_fashion_mnist(dir + "/nope", "train"); }, {"nope/train-images", "does not exist"});
}

// ---------------------------------------------------------------- Imagenette

TEST(Imagenette, CountsClassOrderAndNames) {
  const ImageDataset& train = imagenette("train");
  const ImageDataset& val = imagenette("val");
  EXPECT_EQ(train.size(), 9469);
  EXPECT_EQ(val.size(), 3925);
  EXPECT_EQ(val.images.sizes(), (std::vector<int64_t>{3925, 3, 64, 64}));
  EXPECT_EQ(train.class_ids, imagenette_wnids());
  EXPECT_EQ(train.class_ids[0], "n01440764");
  EXPECT_EQ(train.class_names[0], "tench");
  EXPECT_EQ(train.class_names[9], "parachute");
  EXPECT_EQ(val.class_names[1], "English springer");
  // Rows are grouped by class in sorted order, every class present.
  EXPECT_TRUE(torch::equal(std::get<0>(torch::sort(val.labels)), val.labels));
  EXPECT_EQ(std::get<0>(torch::unique_consecutive(val.labels)).numel(), 10);
  EXPECT_EQ(load_dataset(imagenette_config(), "test").size(), 3925);  // "test" = "val"
}

// Parity with PIL (/usr/bin/python3, tarfile + PIL.Image, same libjpeg-turbo ISLOW decode):
//   val row 0 = val/n01440764/ILSVRC2012_val_00009111.JPEG: pixel (0,0) = (128,139,157),
//   (31,17) = (53,51,38), (63,63) = (78,90,40), sum of all RGB values = 1430101;
//   val row 132 = n01440764_15560.JPEG (grayscale 'L'): (10,20) = 142, sum = 437798 (x3 in RGB);
//   75 val images have three equal channels (69 grayscale JPEGs + 6 gray RGB ones).
TEST(Imagenette, DecodeMatchesPil) {
  const ImageDataset& val = imagenette("val");
  const torch::Tensor im = val.images[0].to(torch::kInt64);
  EXPECT_TRUE(torch::equal(im.index({torch::indexing::Slice(), 0, 0}), torch::tensor({128, 139, 157})));
  EXPECT_TRUE(torch::equal(im.index({torch::indexing::Slice(), 31, 17}), torch::tensor({53, 51, 38})));
  EXPECT_TRUE(torch::equal(im.index({torch::indexing::Slice(), 63, 63}), torch::tensor({78, 90, 40})));
  EXPECT_EQ(im.sum().item<int64_t>(), 1430101);
  const torch::Tensor gray = val.images[132].to(torch::kInt64);
  EXPECT_EQ(gray[0][10][20].item<int64_t>(), 142);
  EXPECT_EQ(gray.sum().item<int64_t>(), 3 * 437798);
  const torch::Tensor v = val.images.to(torch::kInt16);
  const torch::Tensor equal_channels = ((v.select(1, 0) == v.select(1, 1)) & (v.select(1, 1) == v.select(1, 2)))
                                           .flatten(1).all(1);
  EXPECT_EQ(equal_channels.sum().item<int64_t>(), 75);
}

// The folder reader on files extracted from the tarball gives the tarball reader's tensors.
TEST(Imagenette, TarballAndFolderReadersAgree) {
  const std::string root = temp_dir("folder");
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_all(a.get());
  ASSERT_EQ(archive_read_open_filename(a.get(), tarball().c_str(), 1 << 16), ARCHIVE_OK);
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> members;  // class → (name, bytes)
  archive_entry* e;
  while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
    const fs::path p(archive_entry_pathname(e));
    if (archive_entry_filetype(e) != AE_IFREG || p.parent_path().parent_path().filename() != "val") continue;
    std::string bytes(size_t(archive_entry_size(e)), '\0');
    archive_read_data(a.get(), bytes.data(), bytes.size());
    members[p.parent_path().filename().string()].emplace_back(p.filename().string(), bytes);
  }
  // The first 3 files (sorted) of classes 0, 4 and 9; both readers sort by name within a class.
  std::vector<int64_t> rows;
  const ImageDataset& val = imagenette("val");
  for (int cls : {0, 4, 9}) {
    auto files = members[imagenette_wnids()[cls]];
    std::sort(files.begin(), files.end());
    const int64_t offset = (val.labels < cls).sum().item<int64_t>();
    fs::create_directories(root + "/val/" + imagenette_wnids()[cls]);
    for (int k = 0; k < 3; ++k) {
      write_file_atomic(root + "/val/" + imagenette_wnids()[cls] + "/" + files[k].first, files[k].second);
      rows.push_back(offset + k);
    }
  }
  const ImageDataset folder = load_dataset(
      Config::load("", {"data.dataset=folder", "data.root=" + root, "data.image_size=64",
                        "data.cache_dir=" + temp_dir("folder_cache")}), "val");
  ASSERT_EQ(folder.size(), 9);
  EXPECT_EQ(folder.class_ids, (std::vector<std::string>{imagenette_wnids()[0], imagenette_wnids()[4], imagenette_wnids()[9]}));
  EXPECT_EQ(folder.class_names[1], "church");  // known WordNet ids get their Imagenette names
  const torch::Tensor idx = torch::tensor(rows, torch::kInt64);
  EXPECT_TRUE(torch::equal(folder.images, val.images.index_select(0, idx)));
  EXPECT_TRUE(torch::equal(folder.labels, torch::tensor({0, 0, 0, 1, 1, 1, 2, 2, 2}, torch::kInt64)));
}

// ---------------------------------------------------------------- folders, bad input, cache

// A planar uint8 test pattern (C, H, W) with distinct values.
std::vector<uint8_t> pattern(int c, int h, int w, int salt) {
  std::vector<uint8_t> v(size_t(c) * h * w);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t((i * 7 + salt * 31) % 251);
  return v;
}

// root/<split>/{cat,dog}: 2 PNGs (one grayscale, one 20x30) + 2 JPEGs per class.
std::string make_folder(const std::string& tag, const std::string& split = "train") {
  const std::string root = temp_dir(tag);
  for (std::string cls : {"cat", "dog"}) {
    const std::string dir = root + "/" + split + "/" + cls;
    fs::create_directories(dir);
    auto rgb = pattern(3, 16, 16, cls == "cat" ? 1 : 2);
    write_file_atomic(dir + "/a.png", encode_png(rgb.data(), 3, 16, 16));
    auto gray = pattern(1, 16, 16, 3);
    write_file_atomic(dir + "/b.PNG", encode_png(gray.data(), 1, 16, 16));
    auto big = pattern(3, 20, 30, 4);
    write_file_atomic(dir + "/c.jpg", encode_jpeg(big.data(), 3, 20, 30, 95));
    write_file_atomic(dir + "/d.JPEG", encode_jpeg(rgb.data(), 3, 16, 16, 95));
    write_file_atomic(dir + "/notes.txt", "ignored: not an image extension");
  }
  return root;
}
Config folder_config(const std::string& root, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"data.dataset=folder", "data.root=" + root, "data.image_size=16",
                                "data.cache=false"};
  o.insert(o.end(), extra.begin(), extra.end());
  return Config::load("", o);
}

TEST(ImageFolder, DecodesPngJpegGrayAndResizes) {
  const std::string root = make_folder("mixed");
  const ImageDataset ds = load_dataset(folder_config(root), "train");
  ASSERT_EQ(ds.size(), 8);
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_TRUE(torch::equal(ds.labels, torch::tensor({0, 0, 0, 0, 1, 1, 1, 1}, torch::kInt64)));
  // PNG is lossless: row 0 (cat/a.png) is the pattern exactly.
  auto rgb = pattern(3, 16, 16, 1);
  EXPECT_TRUE(torch::equal(ds.images[0], torch::from_blob(rgb.data(), {3, 16, 16}, torch::kUInt8)));
  // Grayscale (cat/b.PNG) is expanded to three equal channels.
  auto gray = pattern(1, 16, 16, 3);
  const torch::Tensor g = torch::from_blob(gray.data(), {1, 16, 16}, torch::kUInt8);
  EXPECT_TRUE(torch::equal(ds.images[1], g.expand({3, 16, 16})));
  // The 20x30 JPEG is resized to 16x16: close to the antialiased resize of the source.
  auto big = pattern(3, 20, 30, 4);
  const torch::Tensor src = torch::from_blob(big.data(), {1, 3, 20, 30}, torch::kUInt8).to(torch::kFloat32);
  EXPECT_EQ(ds.images[2].sizes(), (std::vector<int64_t>{3, 16, 16}));
  // JPEG's 4:2:0 chroma loss on a high-frequency pattern is large; only the mean is compared.
  const double mean_src = src.mean().item<double>(), mean_got = ds.images[2].to(torch::kFloat32).mean().item<double>();
  EXPECT_NEAR(mean_got, mean_src, 4.0);
}

TEST(ImageFolder, BadInputNamesTheFile) {
  expect_data_error([] { load_dataset(folder_config("/nonexistent/tokcom"), "train"); },
                    {"/nonexistent/tokcom", "does not exist"});
  const std::string root = make_folder("bad");
  // A truncated JPEG and a text file named .JPEG.
  auto rgb = pattern(3, 16, 16, 5);
  const std::string jpeg = encode_jpeg(rgb.data(), 3, 16, 16, 90);
  write_file_atomic(root + "/train/cat/truncated.jpg", jpeg.substr(0, jpeg.size() / 2));
  expect_data_error([&] { load_dataset(folder_config(root), "train"); }, {"truncated.jpg", "JPEG"});
  // A failed header parse must not poison the thread's decoder for the next, good file.
  EXPECT_THROW(decode_image(jpeg.substr(0, jpeg.size() / 2), "t.jpg"), DataError);
  EXPECT_EQ(decode_image(jpeg, "good.jpg").width, 16);
  fs::remove(root + "/train/cat/truncated.jpg");
  write_file_atomic(root + "/train/dog/text.JPEG", "this is not an image\n");
  expect_data_error([&] { load_dataset(folder_config(root), "train"); },
                    {"dog/text.JPEG", "not a JPEG or PNG", "data.skip_bad=true"});
  write_file_atomic(root + "/train/cat/truncated.jpg", jpeg.substr(0, jpeg.size() / 2));
  const ImageDataset skipped = load_dataset(folder_config(root, {"data.skip_bad=true"}), "train");
  EXPECT_EQ(skipped.size(), 8);  // the two bad files are skipped, the 8 good ones kept
  expect_data_error([&] { load_dataset(folder_config(root), "val"); }, {"no 'val' split folder"});
}

TEST(ImageFolder, CacheIsReusedAndRebuiltWhenStaleOrCorrupt) {
  const std::string root = make_folder("cached");
  const std::string cache = temp_dir("cache2");
  const Config cfg = folder_config(root, {"data.cache=true", "data.cache_dir=" + cache});
  const ImageDataset first = load_dataset(cfg, "train");
  std::vector<fs::path> files;
  for (const auto& f : fs::directory_iterator(cache)) files.push_back(f.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].extension(), ".safetensors");
  // Second load comes from the cache: same tensors and names.
  const ImageDataset again = load_dataset(cfg, "train");
  EXPECT_TRUE(torch::equal(again.images, first.images));
  EXPECT_EQ(again.class_names, first.class_names);
  write_file_atomic(files[0].string(), "garbage, not safetensors");
  const ImageDataset rebuilt = load_dataset(cfg, "train");  // corrupt cache → rebuilt, no crash
  EXPECT_TRUE(torch::equal(rebuilt.images, first.images));
  EXPECT_GT(fs::file_size(files[0]), 1000u);
  // A new image makes the cache stale: the next load sees 9 images.
  auto rgb = pattern(3, 16, 16, 9);
  write_file_atomic(root + "/train/dog/e.png", encode_png(rgb.data(), 3, 16, 16));
  EXPECT_EQ(load_dataset(cfg, "train").size(), 9);
}

TEST(Imagenette, ChecksumVerifiedOnceAndMismatchNamed) {
  const std::string dir = temp_dir("sums");
  const std::string tar = dir + "/tiny.tar.gz";
  write_file_atomic(tar, "pretend tarball bytes");
  const std::string actual = sha256_file(tar);
  // sha256("pretend tarball bytes") computed with: printf 'pretend tarball bytes' | sha256sum
  EXPECT_EQ(actual, "28519087d94994d397e3abda5f664f6552ba231f1c55e4d50e644b6d90130fbb");
  write_file_atomic(dir + "/SHA256SUMS", actual + "  tiny.tar.gz\n");
  const std::string cache = temp_dir("sums_cache");
  verify_checksum(tar, cache);
  EXPECT_TRUE(fs::exists(cache + "/verified.json"));
  EXPECT_NE(read_file(cache + "/verified.json").find(actual), std::string::npos);
  const std::string wrong(64, 'a');
  write_file_atomic(dir + "/SHA256SUMS", wrong + "  tiny.tar.gz\n");
  expect_data_error([&] { verify_checksum(tar, cache); }, {"tiny.tar.gz", "expected " + wrong, "actual " + actual});
  // The shared tarball's digest matches SHA256SUMS (loading Imagenette verified and recorded it).
  imagenette("val");
  EXPECT_NE(read_file(cache_dir() + "/verified.json").find("93cec422c1a0d6fa"), std::string::npos);
}

// ---------------------------------------------------------------- transforms

TEST(Transforms, ResampleMatchesTorchAntialiasedBilinear) {
  const torch::Tensor src = torch::randint(0, 256, {1, 3, 28, 28}, torch::kUInt8);
  for (int64_t s : {64, 28, 16, 9}) {  // up, identity, down (antialiased)
    TransformOptions o;
    o.image_size = s;  // no mean/std: output is x / 255
    const torch::Tensor got = eval_transform(src, o);
    const torch::Tensor want = torch::nn::functional::interpolate(
        src.to(torch::kFloat32) / 255.0, torch::nn::functional::InterpolateFuncOptions()
                                             .size(std::vector<int64_t>{s, s})
                                             .mode(torch::kBilinear)
                                             .align_corners(false)
                                             .antialias(true));
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-4) << "size " << s;
  }
}

TEST(Transforms, EvalNormalisesWithImagenetMeanStd) {
  const torch::Tensor img = torch::full({2, 3, 8, 8}, 255, torch::kUInt8);
  const ImageDataset ds{img, torch::zeros({2}, torch::kInt64), {}, {}, "imagenette", "val", ""};
  const TransformOptions o = transform_options(Config::load("", {"data.image_size=8"}), ds);
  const torch::Tensor x = eval_transform(img, o);
  EXPECT_NEAR(x[0][0][3][3].item<double>(), (1.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(x[1][2][0][7].item<double>(), (1.0 - 0.406) / 0.225, 1e-5);
  const ImageDataset fm{torch::zeros({1, 1, 28, 28}, torch::kUInt8), torch::zeros({1}, torch::kInt64), {}, {},
                        "fashion-mnist", "train", ""};
  const TransformOptions f = transform_options(Config::load("", {}), fm);
  EXPECT_NEAR(eval_transform(fm.images, f)[0][0][5][5].item<double>(), -0.2860 / 0.3530, 1e-5);
  EXPECT_TRUE(f.pad_crop);
  EXPECT_THROW(transform_options(Config::load("", {"data.augment=mixup"}), ds), ConfigError);
  EXPECT_THROW(eval_transform(torch::zeros({3, 8, 8}, torch::kUInt8), o), ShapeError);
  EXPECT_THROW(eval_transform(torch::zeros({1, 3, 8, 8}), o), ShapeError);
}

class TrainTransform : public ::testing::TestWithParam<std::string> {};
// Every augmentation keeps the shape, stays in the normalised range and is reproducible.
TEST_P(TrainTransform, ShapesRangesAndSeeds) {
  const ImageDataset& val = imagenette("val");
  const torch::Tensor batch = val.images.slice(0, 0, 16);
  const TransformOptions o = transform_options(imagenette_config({"data.augment=" + GetParam(), "data.image_size=48"}), val);
  const torch::Tensor a = train_transform(batch, o, 7), b = train_transform(batch, o, 7);
  const torch::Tensor c = train_transform(batch, o, 8);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{16, 3, 48, 48}));
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_FALSE(torch::equal(a, eval_transform(batch, o)));
  EXPECT_GE(a.min().item<double>(), -0.485 / 0.229 - 1e-4);  // x in [0, 1] before normalising
  EXPECT_LE(a.max().item<double>(), (1 - 0.406) / 0.225 + 1e-4);
  EXPECT_TRUE(torch::isfinite(a).all().item<bool>());
  // Fashion-MNIST, 1 channel, padded crop.
  const ImageDataset& fm = fashion_train();
  const TransformOptions f = transform_options(Config::load("", {"data.augment=" + GetParam()}), fm);
  const torch::Tensor x = train_transform(fm.images.slice(0, 0, 8), f, 3);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{8, 1, 28, 28}));
  EXPECT_TRUE(torch::equal(x, train_transform(fm.images.slice(0, 0, 8), f, 3)));
}
INSTANTIATE_TEST_SUITE_P(Data, TrainTransform, ::testing::Values("crop-flip", "randaugment"));

TEST(Transforms, FlipAndPadCropMoveContent) {
  // crop-flip with the whole image kept (scale 1 forces the full window at ratio 1 or 3/4..4/3):
  // with pad 0 on Fashion-MNIST, the only change is the flip → each output is x or x mirrored.
  const ImageDataset& fm = fashion_train();
  TransformOptions o = transform_options(Config::load("", {"data.normalize=none", "data.crop_padding=0"}), fm);
  const torch::Tensor src = fm.images.slice(0, 0, 32);
  const torch::Tensor out = train_transform(src, o, 1), plain = src.to(torch::kFloat32) / 255.0;
  int flipped = 0;
  for (int64_t i = 0; i < 32; ++i) {
    const bool same = torch::allclose(out[i], plain[i], 0, 1e-6);
    const bool mirror = torch::allclose(out[i], plain[i].flip({2}), 0, 1e-6);
    EXPECT_TRUE(same || mirror) << i;
    flipped += mirror && !same;
  }
  EXPECT_GT(flipped, 4);  // p = 0.5 over 32 samples
  EXPECT_LT(flipped, 28);
}

TEST(RandAugmentOps, KnownAnswers) {
  std::vector<uint8_t> tmp;
  std::vector<uint8_t> v = {0, 10, 100, 200, 255, 128};
  apply_rand_op(RandOp::kPosterize, 4, v.data(), 1, 2, 3, tmp);  // keep the 4 high bits
  EXPECT_EQ(v, (std::vector<uint8_t>{0, 0, 96, 192, 240, 128}));
  v = {0, 10, 100, 200, 255, 128};
  apply_rand_op(RandOp::kSolarize, 128, v.data(), 1, 2, 3, tmp);  // invert values >= 128
  EXPECT_EQ(v, (std::vector<uint8_t>{0, 10, 100, 55, 0, 127}));
  v = {50, 50, 100, 150, 150, 150};
  apply_rand_op(RandOp::kAutoContrast, 0, v.data(), 1, 2, 3, tmp);
  EXPECT_EQ(v, (std::vector<uint8_t>{0, 0, 128, 255, 255, 255}));
  // PIL equalize by hand: hist {10:2, 20:1, 30:3}, step = (6 − 3) // 255 = 0 → unchanged.
  v = {10, 10, 20, 30, 30, 30};
  apply_rand_op(RandOp::kEqualize, 0, v.data(), 1, 2, 3, tmp);
  EXPECT_EQ(v, (std::vector<uint8_t>{10, 10, 20, 30, 30, 30}));
  // 512 values: 256 zeros, 256 at 255 → step = 256 // 255 = 1; lut[0] = 0, lut[255] = 256 → 255.
  std::vector<uint8_t> big(512, 0);
  std::fill(big.begin() + 256, big.end(), 255);
  apply_rand_op(RandOp::kEqualize, 0, big.data(), 1, 16, 32, tmp);
  EXPECT_EQ(big[0], 0);
  EXPECT_EQ(big[511], 255);
  // Brightness factor 0.5 halves; translate by 1 px shifts right and fills 0.
  v = {100, 200, 0, 50, 51, 255};
  apply_rand_op(RandOp::kBrightness, -0.5, v.data(), 1, 2, 3, tmp);
  EXPECT_EQ(v, (std::vector<uint8_t>{50, 100, 0, 25, 26, 128}));
  v = {1, 2, 3, 4, 5, 6};
  apply_rand_op(RandOp::kTranslateX, 1, v.data(), 1, 2, 3, tmp);
  EXPECT_EQ(v, (std::vector<uint8_t>{0, 1, 2, 0, 4, 5}));
  // torchvision magnitudes at bin 9 of 31.
  EXPECT_NEAR(randaugment_magnitude(RandOp::kRotate, 9, 64, 64), 9.0, 1e-9);
  EXPECT_NEAR(randaugment_magnitude(RandOp::kShearX, 9, 64, 64), 0.09, 1e-9);
  EXPECT_EQ(randaugment_magnitude(RandOp::kPosterize, 9, 64, 64), 7);
  EXPECT_NEAR(randaugment_magnitude(RandOp::kSolarize, 9, 64, 64), 178.5, 1e-9);
}

// ---------------------------------------------------------------- loader

std::vector<Batch> run_epoch(Loader& loader, int64_t epoch) {
  std::vector<Batch> out;
  loader.start_epoch(epoch);
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

TEST(Loader, DeterministicAndCoversEverySampleOnce) {
  const ImageDataset& full = imagenette("val");
  const ImageDataset val{full.images.slice(0, 0, 1025), full.labels.slice(0, 0, 1025), full.class_names,
                         full.class_ids, "imagenette", "val", ""};
  const TransformOptions t = transform_options(imagenette_config({"data.augment=randaugment"}), val);
  LoaderOptions o;
  o.batch_size = 100;
  o.workers = 2;
  o.seed = 5;
  Loader a(val, t, o), b(val, t, o);
  o.workers = 0;
  Loader serial(val, t, o);
  EXPECT_EQ(a.batches_per_epoch(), 11);  // ceil(1025 / 100)
  const auto ea = run_epoch(a, 0), eb = run_epoch(b, 0), es = run_epoch(serial, 0);
  ASSERT_EQ(ea.size(), 11u);
  std::vector<int64_t> seen(val.size(), 0);
  for (size_t i = 0; i < ea.size(); ++i) {
    EXPECT_TRUE(torch::equal(ea[i].images, eb[i].images)) << "batch " << i;
    EXPECT_TRUE(torch::equal(ea[i].images, es[i].images)) << "workers 2 vs 0, batch " << i;
    EXPECT_TRUE(torch::equal(ea[i].labels, val.labels.index_select(0, ea[i].indices)));
    for (int64_t k = 0; k < ea[i].indices.size(0); ++k) ++seen[ea[i].indices[k].item<int64_t>()];
  }
  EXPECT_EQ(ea.back().images.size(0), 25);
  EXPECT_TRUE(torch::equal(ea[2].images, a.make_batch(0, 2).images));  // a pure function of (seed, epoch, b)
  EXPECT_EQ(*std::min_element(seen.begin(), seen.end()), 1);
  EXPECT_EQ(*std::max_element(seen.begin(), seen.end()), 1);
  // A new epoch shuffles differently; the same epoch again is identical.
  const auto e1 = run_epoch(a, 1);
  EXPECT_FALSE(torch::equal(e1[0].indices, ea[0].indices));
  EXPECT_TRUE(torch::equal(run_epoch(a, 0)[3].images, ea[3].images));
}

// Repeated augmentation (DeiT's RASampler): each image r times in a row, differently augmented, N/r
// distinct images per epoch; evaluation loaders never repeat.
TEST(Loader, RepeatedAugmentationRepeatsEachImageInTheSameBatch) {
  const ImageDataset& fm = fashion_train();
  ImageDataset small{fm.images.slice(0, 0, 300), fm.labels.slice(0, 0, 300), fm.class_names, fm.class_ids,
                     "fashion-mnist", "train", ""};
  const Config config = Config::load("", {"data.repeated_aug=3", "data.augment=crop-flip", "data.batch_size=60"});
  const TransformOptions t = transform_options(config, small);
  const LoaderOptions o = loader_options(config, /*train=*/true, 11);
  EXPECT_EQ(o.repeats, 3);
  EXPECT_EQ(loader_options(config, /*train=*/false, 11).repeats, 1);
  Loader loader(small, t, o);
  const auto order = loader.epoch_order(0);
  ASSERT_EQ(order.size(0), 300);
  for (int64_t i = 0; i < 300; ++i) EXPECT_EQ(order[i].item<int64_t>(), order[i - i % 3].item<int64_t>()) << i;
  EXPECT_EQ(std::get<0>(at::_unique(order)).size(0), 100);
  const auto batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 5u);
  int differ = 0;
  for (int64_t k = 0; k < 60; k += 3) {
    EXPECT_EQ(batches[1].indices[k].item<int64_t>(), batches[1].indices[k + 2].item<int64_t>());
    differ += !torch::equal(batches[1].images[k], batches[1].images[k + 1]);
  }
  EXPECT_GT(differ, 15);  // the copies are augmented apart (a crop-flip can repeat by chance)
  EXPECT_NE(test::error_of([] { loader_options(Config::load("", {"data.repeated_aug=0"}), true, 0); })
                .find("data.repeated_aug: 0, expected an integer ≥ 1"),
            std::string::npos);
}

TEST(Loader, DropLastAndNoShuffle) {
  const ImageDataset& fm = fashion_train();
  ImageDataset small{fm.images.slice(0, 0, 250), fm.labels.slice(0, 0, 250), fm.class_names, fm.class_ids,
                     "fashion-mnist", "train", ""};
  const TransformOptions t = transform_options(Config::load("", {}), small);
  LoaderOptions o;
  o.batch_size = 64;
  o.shuffle = false;
  o.augment = false;
  Loader keep(small, t, o);
  EXPECT_EQ(keep.batches_per_epoch(), 4);
  const auto batches = run_epoch(keep, 0);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[3].indices.size(0), 58);
  EXPECT_TRUE(torch::equal(batches[1].indices, torch::arange(64, 128, torch::kInt64)));
  EXPECT_TRUE(torch::allclose(batches[0].images, eval_transform(small.images.slice(0, 0, 64), t)));
  o.drop_last = true;
  Loader drop(small, t, o);
  EXPECT_EQ(drop.batches_per_epoch(), 3);
  EXPECT_EQ(run_epoch(drop, 0).size(), 3u);
  // Abandoning an epoch half way and restarting is safe (workers are stopped and joined).
  o.workers = 2;
  o.prefetch = 1;
  Loader early(small, t, o);
  early.start_epoch(0);
  Batch b;
  ASSERT_TRUE(early.next(b));
  EXPECT_EQ(run_epoch(early, 2).size(), 3u);
}

// ---------------------------------------------------------------- CLI and grid

TEST(DataCli, InfoPrintsSplitsAndClasses) {
  std::string out;
  ASSERT_EQ(test::run_cli("data info --dataset fashion-mnist", &out), 0) << out;
  EXPECT_NE(out.find("60000"), std::string::npos) << out;
  EXPECT_NE(out.find("10000"), std::string::npos) << out;
  EXPECT_NE(out.find("Ankle boot"), std::string::npos) << out;
  ASSERT_EQ(test::run_cli("data info --dataset imagenette data.cache_dir=" + cache_dir() +
                              " data.imagenette_tar=" + tarball(), &out), 0) << out;
  EXPECT_NE(out.find("9469"), std::string::npos) << out;
  EXPECT_NE(out.find("3925"), std::string::npos) << out;
  EXPECT_NE(out.find("n03888257  parachute"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli("data info --dataset folder --root /nonexistent/x data.cache=false", &out), 3) << out;
  EXPECT_NE(out.find("DataError: /nonexistent/x"), std::string::npos) << out;
  // A config's data set is the one shown (--dataset used to default to Fashion-MNIST over it).
  ASSERT_EQ(test::run_cli("data info -c imagenette64 data.cache_dir=" + cache_dir() + " data.imagenette_tar=" + tarball(),
                          &out), 0) << out;
  EXPECT_NE(out.find("n03888257  parachute"), std::string::npos) << out;
  EXPECT_NE(out.find("3x64x64"), std::string::npos) << out;
}

TEST(DataCli, ShowWritesALabelledGrid) {
  const std::string png = temp_dir("show") + "/grid.png";
  std::string out;
  ASSERT_EQ(test::run_cli("data show --dataset fashion-mnist --count 12 --columns 4 --out " + png, &out), 0) << out;
  const DecodedImage img = decode_image(read_file(png), png);
  EXPECT_EQ(img.channels, 3);
  EXPECT_EQ(img.width, 6 + 4 * (112 + 6));  // 28 px upscaled x4 = 112 px tiles, 3 rows x 4 columns
  EXPECT_EQ(img.height, 6 + 3 * (112 + 10 + 6 + 2));
}

TEST(Grid, DrawsCaptionPixels) {
  torch::Tensor rgb = torch::full({3, 9, 20}, 255, torch::kUInt8);
  EXPECT_EQ(draw_text(rgb, 1, 1, "I-", 0), 12);
  // 'I' has its vertical stroke in column 2 (x = 3), rows 0..6 (y = 1..7); '-' row 3 (y = 4).
  EXPECT_EQ(rgb[0][4][3].item<int>(), 0);
  EXPECT_EQ(rgb[1][4][8].item<int>(), 0);
  EXPECT_EQ(rgb[2][0][3].item<int>(), 255);
}

// ---------------------------------------------------------------- data prepare, data location

// Members of a tarball: path → bytes (files only).
std::map<std::string, std::string> tar_members(const std::string& path) {
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_all(a.get());
  EXPECT_EQ(archive_read_open_filename(a.get(), path.c_str(), 1 << 16), ARCHIVE_OK) << path;
  std::map<std::string, std::string> out;
  archive_entry* e;
  while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    std::string bytes(size_t(archive_entry_size(e)), '\0');
    archive_read_data(a.get(), bytes.data(), bytes.size());
    out[archive_entry_pathname(e)] = bytes;
  }
  return out;
}

DecodedImage test_image(int channels, int height, int width, uint64_t seed) {
  torch::manual_seed(seed);
  // Smooth structure plus noise: both the filter's ringing and its rounding are exercised.
  const torch::Tensor y = torch::linspace(0, 6.28, height).view({1, height, 1});
  const torch::Tensor x = torch::linspace(0, 9.42, width).view({1, 1, width});
  torch::Tensor v = 128 + 90 * torch::sin(y + x * torch::arange(1, channels + 1).view({channels, 1, 1})) +
                    40 * torch::randn({channels, height, width});
  v = v.clamp(0, 255).round().to(torch::kUInt8).contiguous();
  DecodedImage im{channels, height, width, std::vector<uint8_t>(v.data_ptr<uint8_t>(), v.data_ptr<uint8_t>() + v.numel())};
  return im;
}

// Pillow is the reference (the shipped tarballs were made with its Lanczos): the same pixels, bit
// for bit, for shrinking, enlarging, a centred crop box and one channel; the same JPEG bytes.
TEST(DataPrepare, LanczosIsPillowsExactly) {
  if (std::system("/usr/bin/python3 -c 'import PIL' > /dev/null 2>&1") != 0)
    TOKCOM_SKIP_MISSING("/usr/bin/python3 with PIL (python3-pil) not available");
  const std::string dir = temp_dir("lanczos");
  struct Case {
    int channels, height, width;
    float x0, y0, x1, y1;
    int out_w, out_h;
  };
  const std::vector<Case> cases = {{3, 61, 97, 0, 0, 97, 61, 32, 32},    {3, 61, 97, 18, 0, 79, 61, 32, 32},
                                   {1, 61, 97, 18, 0, 79, 61, 20, 20},    {3, 40, 30, 0, 0, 30, 40, 71, 90},
                                   {3, 128, 128, 0, 0, 128, 128, 64, 64}, {1, 50, 50, 5, 7, 45, 40, 50, 33}};
  std::string script = "from PIL import Image\n";
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const DecodedImage im = test_image(c.channels, c.height, c.width, 40 + i);
    write_file_atomic(fmt::format("{}/in{}.png", dir, i), encode_png(im.pixels.data(), c.channels, c.height, c.width));
    script += fmt::format("Image.open('{0}/in{1}.png').resize(({2}, {3}), Image.LANCZOS, box=({4}, {5}, {6}, {7}))"
                          ".save('{0}/out{1}.png')\n"
                          "Image.open('{0}/out{1}.png').save('{0}/out{1}.jpg', quality=90)\n",
                          dir, i, c.out_w, c.out_h, c.x0, c.y0, c.x1, c.y1);
  }
  write_file_atomic(dir + "/resize.py", script);
  ASSERT_EQ(std::system(("/usr/bin/python3 " + dir + "/resize.py").c_str()), 0) << script;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const DecodedImage in = decode_image(read_file(fmt::format("{}/in{}.png", dir, i)), "in.png");
    const DecodedImage want = decode_image(read_file(fmt::format("{}/out{}.png", dir, i)), "out.png");
    const DecodedImage got = resize_lanczos(in, c.x0, c.y0, c.x1, c.y1, c.out_w, c.out_h);
    ASSERT_EQ(got.channels, want.channels) << "case " << i;
    ASSERT_EQ(got.height, want.height) << "case " << i;
    ASSERT_EQ(got.width, want.width) << "case " << i;
    int64_t differ = 0;
    for (size_t k = 0; k < got.pixels.size(); ++k) differ += got.pixels[k] != want.pixels[k];
    EXPECT_EQ(differ, 0) << "case " << i << ": " << differ << " of " << got.pixels.size() << " values differ";
    // And the JPEG `data prepare` writes is Pillow's save(quality=90), byte for byte.
    EXPECT_EQ(encode_jpeg(got.pixels.data(), got.channels, got.height, got.width, 90),
              read_file(fmt::format("{}/out{}.jpg", dir, i)))
        << "case " << i;
  }
}

// The shipped 128-px tarball, unpacked as an ImageFolder and prepared at 64 px, is the shipped
// 64-px tarball's layout: the same members (images, split, class folders), grayscale kept, and
// pixels close to it (the shipped files were resized from 224 px, ours from 128 px). The output is
// reproducible and loads as Imagenette from data.dir.
TEST(DataPrepare, ShippedTarballsLayout) {
  const std::string tar128 = test::shared_dir() + "/data/imagenette2-128.tar.gz";
  if (!fs::exists(tar128)) TOKCOM_SKIP_MISSING(tar128 << " not available");
  const std::string dir = temp_dir("prepare-shipped");
  const std::map<std::string, std::string> source = tar_members(tar128);
  ASSERT_EQ(source.size(), 13394u);
  for (const auto& [path, bytes] : source) {
    const fs::path file = fs::path(dir) / "imagenette2" / fs::path(path).lexically_relative("imagenette2-128");
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << bytes;
  }
  std::string out;
  ASSERT_EQ(test::run_cli("data prepare --from " + dir + "/imagenette2 --size 64 -o " + dir + "/data/imagenette2-64.tar.gz",
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("train    9469 images"), std::string::npos) << out;
  EXPECT_NE(out.find("val      3925 images"), std::string::npos) << out;
  EXPECT_NE(out.find("242 grayscale"), std::string::npos) << out;
  const std::string made = dir + "/data/imagenette2-64.tar.gz";
  const std::string sha = sha256_file(made);
  EXPECT_EQ(read_file(dir + "/data/SHA256SUMS"), sha + "  imagenette2-64.tar.gz\n");

  const std::map<std::string, std::string> ours = tar_members(made), shipped = tar_members(tarball());
  ASSERT_EQ(ours.size(), shipped.size());
  double total_diff = 0;
  int64_t values = 0, gray = 0;
  for (const auto& [path, bytes] : shipped) {
    auto it = ours.find(path);
    ASSERT_NE(it, ours.end()) << path << " missing from the prepared tarball";
    const DecodedImage a = decode_image(it->second, path), b = decode_image(bytes, path);
    ASSERT_EQ(a.channels, b.channels) << path;
    ASSERT_EQ(a.height, 64) << path;
    ASSERT_EQ(a.width, 64) << path;
    gray += a.channels == 1;
    for (size_t k = 0; k < a.pixels.size(); ++k) total_diff += std::abs(int(a.pixels[k]) - int(b.pixels[k]));
    values += int64_t(a.pixels.size());
  }
  EXPECT_EQ(gray, 242);
  // Measured 2.2 levels on average; a misplaced or mis-cropped image would differ by tens.
  EXPECT_LT(total_diff / double(values), 3.5);

  // Same input, same bytes; SHA256SUMS keeps its other lines and replaces this file's.
  write_file_atomic(dir + "/data/SHA256SUMS", "abc  other.tar.gz\n0000  imagenette2-64.tar.gz\n");
  ASSERT_EQ(test::run_cli("data prepare --from " + dir + "/imagenette2 --size 64 -o " + made, &out), 0) << out;
  EXPECT_EQ(sha256_file(made), sha);
  EXPECT_EQ(read_file(dir + "/data/SHA256SUMS"), "abc  other.tar.gz\n" + sha + "  imagenette2-64.tar.gz\n");

  // data.dir finds it (and verifies it against SHA256SUMS).
  const ImageDataset val = load_dataset(
      Config::load("", {"data.dataset=imagenette", "data.image_size=64", "data.dir=" + dir + "/data",
                        "data.cache_dir=" + dir + "/cache"}),
      "val");
  EXPECT_EQ(val.size(), 3925);
  EXPECT_EQ(val.source, made + "#val");
  EXPECT_EQ(val.class_ids, imagenette_wnids());
}

// A small ImageFolder made here: PNG and JPEG, RGB and gray, a non-square image whose centre
// differs from its sides (crop keeps the centre, squash keeps all), and bad input.
TEST(DataPrepare, SmallFolderCropSquashAndErrors) {
  const std::string dir = temp_dir("prepare-small");
  const std::string from = dir + "/src";
  auto image = [](int channels, int h, int w, uint8_t value) {
    return std::vector<uint8_t>(size_t(channels) * h * w, value);
  };
  for (const std::string split : {"train", "val"})
    for (const std::string cls : {"cat", "dog"}) fs::create_directories(from + "/" + split + "/" + cls);
  // 40 × 20: left 10 columns red, centre 20 green, right 10 blue.
  std::vector<uint8_t> wide = image(3, 20, 40, 0);
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 40; ++x) wide[size_t((x < 10 ? 0 : x < 30 ? 1 : 2) * 800 + y * 40 + x)] = 255;
  write_file_atomic(from + "/train/cat/wide.png", encode_png(wide.data(), 3, 20, 40));
  write_file_atomic(from + "/train/cat/gray.JPEG", encode_jpeg(image(1, 30, 30, 77).data(), 1, 30, 30, 95));
  write_file_atomic(from + "/train/dog/a.jpg", encode_jpeg(image(3, 24, 24, 200).data(), 3, 24, 24, 95));
  write_file_atomic(from + "/train/dog/notes.txt", "not an image");
  write_file_atomic(from + "/val/cat/v.png", encode_png(image(3, 8, 8, 10).data(), 3, 8, 8));
  write_file_atomic(from + "/val/dog/w.png", encode_png(image(3, 8, 8, 250).data(), 3, 8, 8));

  std::string out;
  const std::string crop = dir + "/out/mini-16.tar.gz";
  ASSERT_EQ(test::run_cli("data prepare --from " + from + " --size 16 -o " + crop, &out), 0) << out;
  std::map<std::string, std::string> m = tar_members(crop);
  std::vector<std::string> names;
  for (const auto& kv : m) names.push_back(kv.first);
  EXPECT_EQ(names, (std::vector<std::string>{"mini-16/train/cat/gray.JPEG", "mini-16/train/cat/wide.jpg",
                                             "mini-16/train/dog/a.jpg", "mini-16/val/cat/v.jpg",
                                             "mini-16/val/dog/w.jpg"}));
  const DecodedImage g = decode_image(m["mini-16/train/cat/gray.JPEG"], "gray");
  EXPECT_EQ(g.channels, 1);
  EXPECT_EQ(g.height, 16);
  auto channel_mean = [](const DecodedImage& im, int c) {
    const auto* p = im.pixels.data() + size_t(c) * im.height * im.width;
    return std::accumulate(p, p + im.height * im.width, 0.0) / (im.height * im.width);
  };
  const DecodedImage cropped = decode_image(m["mini-16/train/cat/wide.jpg"], "wide");
  EXPECT_LT(channel_mean(cropped, 0), 10);  // the green centre only
  EXPECT_GT(channel_mean(cropped, 1), 245);
  const std::string squash = dir + "/out/mini-squash-16.tar.gz";
  ASSERT_EQ(test::run_cli("data prepare --fit squash --from " + from + " --size 16 -o " + squash, &out), 0) << out;
  const DecodedImage squashed = decode_image(tar_members(squash)["mini-squash-16/train/cat/wide.jpg"], "wide");
  EXPECT_GT(channel_mean(squashed, 0), 50);  // the red side is in
  EXPECT_GT(channel_mean(squashed, 2), 50);

  // What tokcom reads: the tarball reader gives the folder's classes, splits and counts.
  FolderReadOptions read;
  read.image_size = 16;
  const ImageDataset train = read_image_tar(crop, "train", read), val = read_image_tar(crop, "val", read);
  EXPECT_EQ(train.size(), 3);
  EXPECT_EQ(val.size(), 2);
  EXPECT_EQ(train.class_ids, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_TRUE(torch::equal(val.labels, torch::tensor({0, 1}, torch::kInt64)));

  // A corrupt image: named, and nothing written; --skip-bad leaves it out and says so.
  write_file_atomic(from + "/train/dog/broken.jpg", "\xff\xd8\xff garbage");
  const std::string bad = dir + "/out/bad-16.tar.gz";
  EXPECT_NE(test::run_cli("data prepare --from " + from + " --size 16 -o " + bad, &out), 0);
  EXPECT_NE(out.find("broken.jpg"), std::string::npos) << out;
  EXPECT_NE(out.find("--skip-bad"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(bad));
  EXPECT_FALSE(fs::exists(dir + "/out/SHA256SUMS") && read_file(dir + "/out/SHA256SUMS").find("bad-16") != std::string::npos);
  ASSERT_EQ(test::run_cli("data prepare --skip-bad --from " + from + " --size 16 -o " + bad, &out), 0) << out;
  EXPECT_NE(out.find("1 unreadable images skipped"), std::string::npos) << out;
  EXPECT_EQ(tar_members(bad).size(), 5u);

  // Usage mistakes, each named.
  EXPECT_EQ(test::run_cli("data prepare --from " + dir + "/nowhere --size 16 -o " + bad, &out), 3) << out;
  EXPECT_NE(out.find("nowhere: folder does not exist"), std::string::npos) << out;
  EXPECT_NE(test::run_cli("data prepare --from " + dir + " --size 16 -o " + bad, &out), 0);
  EXPECT_NE(out.find("did you mean --from " + from), std::string::npos) << out;
  EXPECT_EQ(test::run_cli("data prepare --from " + from + " --size 16 -o " + dir + "/x.zip", &out), 6) << out;
  EXPECT_NE(out.find("ending in .tar.gz or .tgz"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli("data prepare --from " + from + " --size 0 -o " + bad, &out), 6) << out;
}

// Where Imagenette is looked for: data.dir, $TOKCOM_DATA, then the shipped folder; the size that
// fits data.image_size best; and an error that names every place and the command that makes one.
TEST(DataLocation, SearchOrderSizesAndTheMissingDataMessage) {
  const std::string dir = temp_dir("data-location");
  const std::string a = dir + "/a", b = dir + "/b", shared = dir + "/shared";
  fs::create_directories(a);
  fs::create_directories(b);
  fs::create_directories(shared + "/data");
  const char* old_data = std::getenv("TOKCOM_DATA");
  const char* old_shared = std::getenv("TOKCOM_SHARED");
  const std::string keep_data = old_data ? old_data : "", keep_shared = old_shared ? old_shared : "";
  setenv("TOKCOM_DATA", b.c_str(), 1);
  setenv("TOKCOM_SHARED", shared.c_str(), 1);
  auto find = [&](int size) {
    return find_imagenette_tar(Config::load("", {"data.image_size=" + std::to_string(size), "data.dir=" + a}));
  };
  const std::string message = test::error_of([&] { find(128); });
  for (const std::string& s : {a + "  (data.dir)", b + "  ($TOKCOM_DATA)", shared + "/data  ($TOKCOM_SHARED/data)",
                               std::string("tokcom data prepare --from imagenette2 --size 128")})
    EXPECT_NE(message.find(s), std::string::npos) << message;
  write_file_atomic(shared + "/data/imagenette2-64.tar.gz", "");
  write_file_atomic(b + "/imagenette2-128.tar.gz", "");
  write_file_atomic(b + "/imagenette2-320.tar.gz", "");
  write_file_atomic(a + "/imagenette2-x.tar.gz", "");  // not a size: ignored
  EXPECT_EQ(find(64), shared + "/data/imagenette2-64.tar.gz");  // exact size wins over an earlier place
  EXPECT_EQ(find(32), shared + "/data/imagenette2-64.tar.gz");  // else the smallest above
  EXPECT_EQ(find(100), b + "/imagenette2-128.tar.gz");
  EXPECT_EQ(find(1000), b + "/imagenette2-320.tar.gz");  // else the largest (upscaled, with a warning)
  write_file_atomic(a + "/imagenette2-128.tar.gz", "");
  EXPECT_EQ(find(128), a + "/imagenette2-128.tar.gz");  // data.dir before $TOKCOM_DATA
  old_data ? setenv("TOKCOM_DATA", keep_data.c_str(), 1) : unsetenv("TOKCOM_DATA");
  old_shared ? setenv("TOKCOM_SHARED", keep_shared.c_str(), 1) : unsetenv("TOKCOM_SHARED");
}

}  // namespace
}  // namespace tokcom

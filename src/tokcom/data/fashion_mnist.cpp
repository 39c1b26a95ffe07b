// Fashion-MNIST from the IDX gzip files of the Debian package dataset-fashion-mnist.
#include <torch/torch.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>

#include "tokcom/core/errors.h"
#include "tokcom/data/dataset.h"

namespace tokcom {
namespace {

std::string gunzip_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw DataError(path + ": file does not exist");
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DataError(path + ": cannot open");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, size_t(n));
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const std::string message = msg ? msg : "";
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    throw DataError(path + ": corrupt gzip data (" + message + ")");
  return out;
}

uint32_t big_endian(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Validates an IDX header: magic, dims, exact byte length. Returns the item count.
int64_t check_idx(const std::string& bytes, const std::string& path, uint32_t magic,
                  const std::vector<int64_t>& item_dims) {
  const size_t header = 4 + 4 * (1 + item_dims.size());
  if (bytes.size() < header)
    throw DataError(path + ": IDX file too short for its header (" + std::to_string(bytes.size()) +
                    " bytes, expected at least " + std::to_string(header) + ")");
  if (big_endian(bytes, 0) != magic)
    throw DataError(path + ": wrong IDX magic " + std::to_string(big_endian(bytes, 0)) +
                    ", expected " + std::to_string(magic));
  const int64_t count = big_endian(bytes, 4);
  int64_t item = 1;
  for (size_t d = 0; d < item_dims.size(); ++d) {
    const int64_t got = big_endian(bytes, 8 + 4 * d);
    if (got != item_dims[d])
      throw DataError(path + ": IDX dimension " + std::to_string(d + 1) + " is " +
                      std::to_string(got) + ", expected " + std::to_string(item_dims[d]));
    item *= got;
  }
  const size_t expected = header + size_t(count * item);
  if (bytes.size() != expected)
    throw DataError(path + ": IDX length " + std::to_string(bytes.size()) + " bytes, expected " +
                    std::to_string(expected) + " for " + std::to_string(count) + " items");
  return count;
}

}  // namespace

const std::vector<std::string>& fashion_mnist_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                 "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

ImageDataset load_fashion_mnist(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "val" && split != "test")
    throw DataError("fashion-mnist: unknown split '" + split + "', expected train, val or test");
  const std::string prefix = dir + "/" + (split == "train" ? "train" : "t10k");
  const std::string image_path = prefix + "-images-idx3-ubyte.gz";
  const std::string label_path = prefix + "-labels-idx1-ubyte.gz";
  const std::string image_bytes = gunzip_file(image_path);
  const std::string label_bytes = gunzip_file(label_path);
  const int64_t n = check_idx(image_bytes, image_path, 2051, {28, 28});
  const int64_t m = check_idx(label_bytes, label_path, 2049, {});
  if (n != m)
    throw DataError(image_path + ": " + std::to_string(n) + " images but " + label_path + " has " +
                    std::to_string(m) + " labels");
  ImageDataset ds;
  ds.name = "fashion-mnist";
  ds.split = split == "train" ? "train" : "test";
  ds.source = dir;
  ds.images = torch::empty({n, 1, 28, 28}, torch::kUInt8);
  std::memcpy(ds.images.data_ptr<uint8_t>(), image_bytes.data() + 16, size_t(n) * 28 * 28);
  torch::Tensor labels_u8 = torch::empty({n}, torch::kUInt8);
  std::memcpy(labels_u8.data_ptr<uint8_t>(), label_bytes.data() + 8, size_t(n));
  ds.labels = labels_u8.to(torch::kInt64);
  if (ds.labels.max().item<int64_t>() > 9)
    throw DataError(label_path + ": label " + std::to_string(ds.labels.max().item<int64_t>()) +
                    " out of range 0..9");
  ds.class_names = fashion_mnist_names();
  ds.class_ids = ds.class_names;
  return ds;
}

}  // namespace tokcom

// Image classification data sets held in memory as one uint8 tensor (METHOD §7 "Data").
//
// Sources: Fashion-MNIST (IDX gzip files), Imagenette (the shared 64-px tarball, read with
// libarchive, or an ImageFolder directory at any resolution), any ImageFolder (`folder`).
// Decoded folder/tarball images are cached in data.cache_dir as safetensors so later runs do
// not decode again; a stale or corrupt cache is rebuilt.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/core/config.h"

namespace tokcom {

struct ImageDataset {
  torch::Tensor images;                  // uint8 (N, C, H, W); C = 3 for Imagenette/folders, 1 for Fashion-MNIST
  torch::Tensor labels;                  // int64 (N)
  std::vector<std::string> class_names;  // index = label (Imagenette: human names, data README)
  std::vector<std::string> class_ids;    // folder names (Imagenette: WordNet ids), same order
  std::string name, split;               // "imagenette", "val"
  std::string source;                    // file or folder it was read from
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// split: "train" | "val" | "test" ("test" = "val" for Imagenette and folders without test/,
// "val" = "test" for Fashion-MNIST). Reads data.* keys. Throws DataError naming the file.
ImageDataset load_dataset(const tokcom::Config& cfg, const std::string& split);

// Fashion-MNIST from the IDX gzip files in `dir` (train-* or t10k-*). Validates magic
// (2051 images, 2049 labels), dims, counts and exact byte length.
ImageDataset load_fashion_mnist(const std::string& dir, const std::string& split);

// Options of the folder/tarball readers (from data.*).
struct FolderReadOptions {
  int64_t image_size = 64;   // images of another size are resized to S x S (antialiased bilinear)
  bool skip_bad = false;     // corrupt image: DataError (false) or log and skip (true)
  int threads = 2;           // decoding threads
};

// An ImageFolder split: `dir`/<class>/<image> (class index = sorted folder name).
ImageDataset read_image_folder(const std::string& dir, const FolderReadOptions& options);
// A split of a tarball laid out as <top>/<split>/<class>/<image> (the shared Imagenette tarball).
ImageDataset read_image_tar(const std::string& tar_path, const std::string& split,
                            const FolderReadOptions& options);

// Verifies `tar_path` against SHA256SUMS in its folder once; the verified (path, size, mtime) is
// remembered in `cache_dir` so later calls skip hashing. Wrong digest → DataError naming the
// file, expected and actual digests. No SHA256SUMS or no line for the file: a warning.
void verify_checksum(const std::string& tar_path, const std::string& cache_dir);
// Lower-case hex SHA-256 of a file.
std::string sha256_file(const std::string& path);

// Imagenette's classes in sorted WordNet-id order (label 0..9) and their names (data README).
const std::vector<std::string>& imagenette_wnids();
const std::vector<std::string>& imagenette_names();
const std::vector<std::string>& fashion_mnist_names();

// Where data sets live, searched in this order: data.dir, $TOKCOM_DATA, then $TOKCOM_SHARED/data or,
// without it, the shipped folder beside the checkout (<source dir>/../shared/data). `from` says
// which (for error messages).
struct DataFolder {
  std::string path, from;
};
std::vector<DataFolder> data_search_path(const Config& cfg);
// The Imagenette tarball for data.image_size = S: imagenette2-<N>.tar.gz in the search path, N = S
// if there is one, else the smallest N > S, else the largest (upscaled, with a warning).
// DataError naming every place looked and the `tokcom data prepare` command that makes one.
std::string find_imagenette_tar(const Config& cfg);

}  // namespace tokcom

// Threaded, prefetching, batched loader over an in-memory ImageDataset.
//
// Batch b of epoch e holds the samples order(e)[b·B, (b+1)·B) with order(e) a permutation seeded
// from (seed, e) (identity without shuffle); its augmentation draws from a generator seeded from
// (seed, e, b). With shards (LoaderOptions::shard_count > 1) each rank gets its contiguous part of
// every such batch. So every batch is a pure function of (seed, epoch, b): the same for any worker
// count or scheduling. `workers` threads decode batches into a bounded queue of `prefetch`
// batches; next() returns them in order.
#pragma once
#include <torch/types.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "tokcom/data/dataset.h"
#include "tokcom/data/transforms.h"

namespace tokcom {

struct Batch {
  torch::Tensor images;   // float (B, C, S, S), normalised
  torch::Tensor labels;   // int64 (B)
  torch::Tensor indices;  // int64 (B), rows of the dataset
};

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true, drop_last = false, augment = true;
  int workers = 2, prefetch = 4;
  uint64_t seed = 0;
  // Data parallelism (train/distributed.h): rank `shard_index` of `shard_count` gets its contiguous
  // part of every global batch (batch_size stays the global size), so the union over ranks of batch b
  // is batch b of one process. Rank k > 0 draws its augmentation from rank_seed(seed, k).
  int shard_count = 1, shard_index = 0;
  // Repeated augmentation (DeiT's RASampler): with r > 1 (shuffle on) an epoch's order is a
  // permutation's first ⌈N/r⌉ samples each r times in a row, cut to N, so a batch holds r different
  // augmentations of B/r images and an epoch sees N/r distinct ones. 1 = off.
  int64_t repeats = 1;
};
// batch_size, drop_last, workers, prefetch, repeats (data.repeated_aug, training only) from data.*;
// seed/shuffle/augment as given. ConfigError for data.repeated_aug < 1.
LoaderOptions loader_options(const Config& cfg, bool train, uint64_t seed);

class Loader {
 public:
  // Keeps a reference to `dataset`: it must outlive the loader.
  Loader(const ImageDataset& dataset, TransformOptions transform, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const;
  int64_t size() const { return dataset_.size(); }
  // Sample order of `epoch` (a permutation of 0..N−1, the identity without shuffle, or with repeats
  // each of a permutation's first ⌈N/r⌉ samples r times in a row, N entries).
  torch::Tensor epoch_order(int64_t epoch) const;
  // Rows [begin, end) of global batch `b` (global = its full size) that this shard reads, as offsets
  // into the batch: [size·k/K, size·(k+1)/K) for shard k of K. An empty shard (a last batch smaller
  // than K) has begin == end.
  struct Shard {
    int64_t begin = 0, end = 0, global = 0;
  };
  Shard shard(int64_t b) const;
  // Builds (this shard of) batch `b` of `epoch` on the calling thread (what the workers run).
  Batch make_batch(int64_t epoch, int64_t b) const;

  // Starts (or restarts) iterating `epoch`; workers begin prefetching.
  void start_epoch(int64_t epoch);
  // Next batch of the current epoch in order; false at the end of the epoch.
  bool next(Batch& batch);

  const LoaderOptions& options() const { return options_; }
  const TransformOptions& transform() const { return transform_; }

 private:
  void stop();
  void worker_loop();

  const ImageDataset& dataset_;
  TransformOptions transform_;
  LoaderOptions options_;
  torch::Tensor images_, labels_;  // contiguous CPU views of the dataset's tensors

  int64_t epoch_ = 0, batches_ = 0;
  std::vector<int64_t> order_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int64_t, Batch> ready_;
  std::string error_;           // a worker's exception, rethrown by next()
  int64_t next_claim_ = 0, next_out_ = 0;
  bool stopping_ = false, started_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tokcom

#include "tokcom/data/loader.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstring>

#include <fmt/format.h>

#include "tokcom/core/errors.h"

namespace tokcom {

LoaderOptions loader_options(const Config& cfg, bool train, uint64_t seed) {
  LoaderOptions o;
  o.batch_size = cfg.get_int("data.batch_size");
  o.drop_last = train && cfg.get_bool("data.drop_last");
  o.workers = int(cfg.get_int("data.workers"));
  o.prefetch = int(cfg.get_int("data.prefetch"));
  o.shuffle = train;
  o.augment = train;
  o.seed = seed;
  o.repeats = cfg.get_int("data.repeated_aug");
  if (o.repeats < 1) {
    throw ConfigError(fmt::format("data.repeated_aug: {}, expected an integer ≥ 1 (1 = off; DeiT uses 3)", o.repeats));
  }
  if (!train) o.repeats = 1;
  return o;
}

Loader::Loader(const ImageDataset& dataset, TransformOptions transform, LoaderOptions options)
    : dataset_(dataset), transform_(std::move(transform)), options_(options) {
  if (!dataset.images.defined() || dataset.images.dim() != 4 ||
      dataset.images.scalar_type() != torch::kUInt8)
    throw ShapeError("Loader: dataset images must be uint8 (N, C, H, W)");
  if (!dataset.labels.defined() || dataset.labels.size(0) != dataset.images.size(0))
    throw ShapeError("Loader: dataset has " + std::to_string(dataset.images.size(0)) +
                     " images but a different number of labels");
  if (options_.batch_size < 1) throw ConfigError("Loader: batch_size must be positive");
  if (options_.workers < 0) throw ConfigError("Loader: workers must be >= 0");
  if (options_.shard_count < 1 || options_.shard_index < 0 || options_.shard_index >= options_.shard_count)
    throw ConfigError("Loader: shard " + std::to_string(options_.shard_index) + " of " +
                      std::to_string(options_.shard_count) + " does not exist");
  options_.prefetch = std::max(options_.prefetch, std::max(1, options_.workers));
  images_ = dataset.images.cpu().contiguous();
  labels_ = dataset.labels.to(torch::kCPU, torch::kInt64).contiguous();
}

Loader::~Loader() { stop(); }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = dataset_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

torch::Tensor Loader::epoch_order(int64_t epoch) const {
  const int64_t n = dataset_.size();
  if (!options_.shuffle) return torch::arange(n, torch::kInt64);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(batch_seed(options_.seed, epoch, -1));
  const torch::Tensor perm = torch::randperm(n, gen, torch::kInt64);
  if (options_.repeats <= 1) return perm;
  return perm.repeat_interleave(options_.repeats).slice(0, 0, n);
}

Loader::Shard Loader::shard(int64_t b) const {
  const int64_t n = dataset_.size(), begin = b * options_.batch_size;
  const int64_t global = std::min(n, begin + options_.batch_size) - begin;
  if (b < 0 || global <= 0) throw UsageError("Loader: batch " + std::to_string(b) + " out of range");
  const int64_t k = options_.shard_index, count = options_.shard_count;
  return {global * k / count, global * (k + 1) / count, global};
}

Batch Loader::make_batch(int64_t epoch, int64_t b) const {
  const std::vector<int64_t>* order = nullptr;
  std::vector<int64_t> local;
  if (epoch == epoch_ && !order_.empty()) {
    order = &order_;
  } else {
    torch::Tensor t = epoch_order(epoch);
    local.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    order = &local;
  }
  const Shard part = shard(b);
  const int64_t begin = b * options_.batch_size + part.begin, count = part.end - part.begin;
  const int64_t c = images_.size(1), h = images_.size(2), w = images_.size(3);
  const int64_t s = transform_.image_size;
  Batch batch;
  batch.images = torch::empty({count, c, s, s}, torch::kFloat32);
  batch.indices = torch::empty({count}, torch::kInt64);
  batch.labels = torch::empty({count}, torch::kInt64);
  const uint8_t* src = images_.data_ptr<uint8_t>();
  const int64_t* labels = labels_.data_ptr<int64_t>();
  float* dst = batch.images.data_ptr<float>();
  Rng rng(batch_seed(rank_seed(options_.seed, options_.shard_index), epoch, b));  // shard 0: as one process
  TransformScratch scratch;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t idx = (*order)[begin + i];
    batch.indices.data_ptr<int64_t>()[i] = idx;
    batch.labels.data_ptr<int64_t>()[i] = labels[idx];
    transform_sample(src + idx * c * h * w, int(c), int(h), int(w), transform_, options_.augment,
                     &rng, dst + i * c * s * s, scratch);
  }
  return batch;
}

void Loader::start_epoch(int64_t epoch) {
  stop();
  epoch_ = epoch;
  torch::Tensor t = epoch_order(epoch);
  order_.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  batches_ = batches_per_epoch();
  next_claim_ = next_out_ = 0;
  ready_.clear();
  error_.clear();
  stopping_ = false;
  started_ = true;
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

void Loader::worker_loop() {
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Claim the next batch only while fewer than `prefetch` batches are ahead of the consumer.
      cv_.wait(lock, [&] { return stopping_ || next_claim_ < next_out_ + options_.prefetch; });
      if (stopping_ || next_claim_ >= batches_) return;
      b = next_claim_++;
    }
    Batch batch;
    std::string error;
    try {
      batch = make_batch(epoch_, b);
    } catch (const std::exception& e) {
      error = e.what();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error.empty() && error_.empty()) error_ = error;
    ready_[b] = std::move(batch);
    cv_.notify_all();
  }
}

bool Loader::next(Batch& batch) {
  if (!started_) throw UsageError("Loader::next: call start_epoch first");
  if (next_out_ >= batches_) return false;
  if (options_.workers == 0) {
    batch = make_batch(epoch_, next_out_++);
    return true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !error_.empty() || ready_.count(next_out_) > 0; });
  if (!error_.empty()) throw DataError("Loader: " + error_);
  auto it = ready_.find(next_out_);
  batch = std::move(it->second);
  ready_.erase(it);
  ++next_out_;
  cv_.notify_all();
  return true;
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace tokcom

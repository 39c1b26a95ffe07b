#include "tokcom/net/batcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "tokcom/core/errors.h"

namespace tokcom::net {

Payload pack_payloads(const std::vector<const Payload*>& payloads, torch::Device device) {
  if (payloads.empty()) throw UsageError("pack_payloads: no payloads");
  const Payload& first = *payloads.front();
  const int64_t n = static_cast<int64_t>(payloads.size());
  if (first.is_digital()) {  // encoded images: one list
    Payload out;
    out.method = first.method;
    for (const Payload* p : payloads) {
      if (p->method != first.method || !p->is_digital()) {
        throw FormatError(fmt::format("pack_payloads: payload '{}' in a batch of digital '{}'", p->method, first.method));
      }
      out.bytes.insert(out.bytes.end(), p->bytes.begin(), p->bytes.end());
      out.image_ids.insert(out.image_ids.end(), p->image_ids.begin(), p->image_ids.end());
    }
    return out;
  }
  const int64_t width = first.symbols.size(2);
  int64_t longest = 0;
  bool any_scale = false, same_length = true;
  for (const Payload* p : payloads) {
    if (p->method != first.method || p->ratio_index != first.ratio_index) {
      throw FormatError(fmt::format("pack_payloads: payload ({}, ratio {}) in a batch of ({}, ratio {})", p->method,
                                    p->ratio_index, first.method, first.ratio_index));
    }
    if (p->symbols.dim() != 3 || p->symbols.size(0) != 1 || p->symbols.size(2) != width) {
      throw ShapeError(fmt::format("pack_payloads: symbols of shape [{}], expected [1, *, {}]", fmt::join(p->symbols.sizes().vec(), ", "), width));
    }
    same_length = same_length && p->symbols.size(1) == first.symbols.size(1);
    longest = std::max(longest, p->symbols.size(1));
    any_scale = any_scale || p->token_scale.defined();
  }
  Payload out;
  out.method = first.method;
  out.ratio_index = first.ratio_index;
  if (n == 1) {
    out.symbols = first.symbols.to(device);
    if (first.token_scale.defined()) out.token_scale = first.token_scale.to(device);
    out.image_ids = first.image_ids;
    return out;
  }
  torch::Tensor symbols = torch::zeros({n, longest, width}, torch::kComplexFloat);
  torch::Tensor mask = torch::zeros({n, longest}, torch::kBool);
  torch::Tensor scale = any_scale ? torch::zeros({n, longest}, torch::kFloat) : torch::Tensor();
  for (int64_t i = 0; i < n; ++i) {
    const Payload& p = *payloads[i];
    const int64_t t = p.symbols.size(1);
    symbols[i].slice(0, 0, t).copy_(p.symbols[0]);
    mask[i].slice(0, 0, t).fill_(true);
    if (any_scale) {
      if (p.token_scale.defined()) scale[i].slice(0, 0, t).copy_(p.token_scale[0]);
      else scale[i].slice(0, 0, t).fill_(1.0f);
    }
    out.image_ids.insert(out.image_ids.end(), p.image_ids.begin(), p.image_ids.end());
  }
  out.symbols = symbols.to(device);
  if (!same_length) out.token_mask = mask.to(device);
  if (any_scale) out.token_scale = scale.to(device);
  return out;
}

Batcher::Batcher(std::shared_ptr<ServerHalf> server, torch::Device device, BatcherOptions options,
                 ServerMetrics* metrics)
    : server_(std::move(server)), device_(device), options_(options), metrics_(metrics) {
  if (options_.max_batch < 1) throw UsageError(fmt::format("--max-batch is {}, expected ≥ 1", options_.max_batch));
  if (options_.max_wait_ms < 0) throw UsageError(fmt::format("--max-wait-ms is {}, expected ≥ 0", options_.max_wait_ms));
  if (options_.queue_capacity < options_.max_batch) {
    throw UsageError(fmt::format("queue capacity {} is below --max-batch {}", options_.queue_capacity,
                                 options_.max_batch));
  }
  worker_ = std::thread([this] { run(); });
}

Batcher::~Batcher() { stop(); }

bool Batcher::submit(Job& job) {
  std::unique_lock<std::mutex> lock(mutex_);
  space_.wait(lock, [&] { return stopping_ || static_cast<int64_t>(queue_.size()) < options_.queue_capacity; });
  if (stopping_) return false;
  queue_.push_back(std::move(job));
  work_.notify_one();
  return true;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
  }
  work_.notify_all();
  space_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Batcher::stream_opened() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++streams_;
}

void Batcher::stream_closed() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    --streams_;
  }
  work_.notify_all();  // a batch waiting for this device's request need not wait any more
}

std::vector<Job> Batcher::take_batch(std::unique_lock<std::mutex>& lock) {
  const int64_t ratio = queue_.front().payload.ratio_index;
  const auto deadline =
      queue_.front().enqueued + std::chrono::microseconds(static_cast<int64_t>(options_.max_wait_ms * 1000.0));
  auto same_ratio = [&] {
    int64_t count = 0;
    for (const Job& j : queue_) count += j.payload.ratio_index == ratio;
    return count;
  };
  auto worth_waiting = [&] {
    const int64_t cap = std::min(options_.max_batch, std::max<int64_t>(1, streams_));
    return same_ratio() < cap;
  };
  while (!stopping_ && worth_waiting() && std::chrono::steady_clock::now() < deadline) {
    work_.wait_until(lock, deadline);
  }
  std::vector<Job> batch;
  for (auto it = queue_.begin(); it != queue_.end() && static_cast<int64_t>(batch.size()) < options_.max_batch;) {
    if (it->payload.ratio_index == ratio) {
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

void Batcher::decode(std::vector<Job>& batch) {
  std::vector<Job*> live;
  for (Job& j : batch) {
    if (j.cancelled && j.cancelled()) {
      metrics_->request_cancelled();
      j.failed("cancelled before decoding (stream closed or deadline passed)");
    } else {
      live.push_back(&j);
    }
  }
  if (live.empty()) return;
  try {
    std::vector<const Payload*> payloads;
    for (Job* j : live) payloads.push_back(&j->payload);
    const Payload packed = pack_payloads(payloads, device_);
    const torch::Tensor logits = server_->decode(packed).to(torch::kCPU, torch::kFloat);
    metrics_->batch_done(static_cast<int64_t>(live.size()));
    for (size_t i = 0; i < live.size(); ++i) live[i]->done(logits[static_cast<int64_t>(i)], logits.size(0));
  } catch (const std::exception& e) {
    spdlog::error("batch of {} failed to decode: {}", live.size(), e.what());
    for (Job* j : live) {
      metrics_->request_failed();
      j->failed(std::string("decode failed: ") + e.what());
    }
  }
}

void Batcher::run() {
  torch::NoGradGuard no_grad;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping and drained
    std::vector<Job> batch = take_batch(lock);
    lock.unlock();
    space_.notify_all();
    decode(batch);
    lock.lock();
  }
}

}  // namespace tokcom::net

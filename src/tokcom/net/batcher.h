// net/batcher.h — cross-device batching for the server (issue "deployment"): requests from every
// stream wait in one bounded queue; a worker decodes up to max_batch requests of the same ratio
// together (hard-drop payloads of different lengths packed with a token mask, METHOD §3.5), waiting at
// most max_wait for a batch to fill. A full queue blocks submit(): back-pressure on the streams.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <c10/core/Device.h>
#include <torch/types.h>

#include "tokcom/comm/payload.h"
#include "tokcom/net/metrics.h"
#include "tokcom/split/split_model.h"

namespace tokcom::net {

struct BatcherOptions {
  int64_t max_batch = 32;
  double max_wait_ms = 5.0;
  int64_t queue_capacity = 1024;  // requests waiting, over all streams
};

struct Job {
  Payload payload;  // one image (batch 1), CPU; ratio_index = the server's index
  std::chrono::steady_clock::time_point enqueued = std::chrono::steady_clock::now();
  std::function<bool()> cancelled;                                 // optional: skip when true
  std::function<void(const torch::Tensor& logits, int64_t batch)> done;  // logits (num_classes), CPU
  std::function<void(const std::string& why)> failed;             // decode error, cancelled or shutdown
};

// Batch-1 token payloads of one ratio index → one batch on `device`: symbols padded to the longest
// (B, T_max, d_r), token_mask when lengths differ, token_scale (ones where a sample had none, zero
// at padding). ShapeError on mixed widths, FormatError on mixed ratio indices or methods.
Payload pack_payloads(const std::vector<const Payload*>& payloads, torch::Device device);

class Batcher {
 public:
  Batcher(std::shared_ptr<ServerHalf> server, torch::Device device, BatcherOptions options, ServerMetrics* metrics);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues the job (blocking while the queue is full). False, with the job untouched, once stop()
  // has begun: the caller answers it.
  bool submit(Job& job);
  // Decodes everything already queued, then stops the worker. Idempotent.
  void stop();
  // Devices connected now (the server counts its open streams): a batch never waits for more
  // requests than there are devices to send them, so a lone device pays no batching delay.
  void stream_opened();
  void stream_closed();

 private:
  void run();
  std::vector<Job> take_batch(std::unique_lock<std::mutex>& lock);
  void decode(std::vector<Job>& batch);

  std::shared_ptr<ServerHalf> server_;
  torch::Device device_;
  BatcherOptions options_;
  ServerMetrics* metrics_;
  std::mutex mutex_;
  std::condition_variable work_, space_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  int64_t streams_ = 0;
  std::thread worker_;
};

}  // namespace tokcom::net

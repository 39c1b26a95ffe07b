// net/metrics.h — the server's counters and latency histogram (issue "deployment": requests,
// errors, latency printed periodically and at exit). Thread-safe; cheap enough for every request.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace tokcom::net {

class ServerMetrics {
 public:
  // Upper bucket edges in milliseconds (log-spaced); the last bucket is open.
  static constexpr std::array<double, 16> kEdgesMs = {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000,
                                                      2000, 5000, 10000};

  void request_received() { received_.fetch_add(1); }   // a request read off a stream
  void request_done(double latency_ms);  // a prediction written back
  void request_failed() { errors_.fetch_add(1); }          // validation / auth / decode failure
  void request_cancelled() { cancelled_.fetch_add(1); }    // stream gone or deadline passed before decode
  void batch_done(int64_t size);
  void stream_opened() { streams_.fetch_add(1); }
  void decision_made() { decisions_.fetch_add(1); }        // a control request answered (server-side controller)

  int64_t received() const { return received_.load(); }
  int64_t requests() const { return requests_.load(); }
  int64_t errors() const { return errors_.load(); }
  int64_t cancelled() const { return cancelled_.load(); }
  int64_t batches() const { return batches_.load(); }
  int64_t streams() const { return streams_.load(); }  // opened since start
  int64_t decisions() const { return decisions_.load(); }
  // Latency quantile q ∈ (0, 1) from the histogram (upper edge of the bucket that holds it), ms.
  double latency_quantile(double q) const;
  // One line: requests, errors, cancelled, streams, batches, mean batch, mean/p50/p99 latency, decisions.
  std::string summary() const;

  // Snapshots for the monitor and /metrics (net/monitor.h).
  struct LatencySnapshot {
    std::array<int64_t, kEdgesMs.size() + 1> buckets{};  // per bucket, not cumulative; the last is open
    double sum_ms = 0;
    int64_t count = 0;
  };
  LatencySnapshot latency() const;
  std::map<int64_t, int64_t> batch_sizes() const;  // batch size → batches decoded at that size
  int64_t batched_requests() const { return batched_requests_.load(); }

 private:
  std::atomic<int64_t> received_{0}, requests_{0}, errors_{0}, cancelled_{0}, batches_{0}, batched_requests_{0}, streams_{0},
      decisions_{0};
  mutable std::mutex mutex_;
  std::array<int64_t, kEdgesMs.size() + 1> buckets_{};
  double latency_sum_ms_ = 0.0;
  std::map<int64_t, int64_t> batch_sizes_;
};

}  // namespace tokcom::net

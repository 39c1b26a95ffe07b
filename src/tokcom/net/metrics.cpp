#include "tokcom/net/metrics.h"

#include <algorithm>

#include <fmt/format.h>

namespace tokcom::net {

void ServerMetrics::request_done(double latency_ms) {
  requests_.fetch_add(1);
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kEdgesMs.begin(), kEdgesMs.end(), latency_ms) - kEdgesMs.begin());
  std::lock_guard<std::mutex> lock(mutex_);
  ++buckets_[bucket];
  latency_sum_ms_ += latency_ms;
}

void ServerMetrics::batch_done(int64_t size) {
  batches_.fetch_add(1);
  batched_requests_.fetch_add(size);
  std::lock_guard<std::mutex> lock(mutex_);
  ++batch_sizes_[size];
}

ServerMetrics::LatencySnapshot ServerMetrics::latency() const {
  std::lock_guard<std::mutex> lock(mutex_);
  LatencySnapshot s;
  s.buckets = buckets_;
  s.sum_ms = latency_sum_ms_;
  for (int64_t c : buckets_) s.count += c;
  return s;
}

std::map<int64_t, int64_t> ServerMetrics::batch_sizes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return batch_sizes_;
}

double ServerMetrics::latency_quantile(double q) const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t total = 0;
  for (int64_t c : buckets_) total += c;
  if (total == 0) return 0.0;
  const double target = q * static_cast<double>(total);
  int64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (static_cast<double>(seen) >= target) return i < kEdgesMs.size() ? kEdgesMs[i] : kEdgesMs.back() * 2;
  }
  return kEdgesMs.back() * 2;
}

std::string ServerMetrics::summary() const {
  const int64_t n = requests_.load(), b = batches_.load();
  double sum;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    sum = latency_sum_ms_;
  }
  return fmt::format("requests {} errors {} cancelled {} streams {} batches {} mean_batch {:.2f} latency_ms mean "
                     "{:.3f} p50<={} p99<={} decisions {}",
                     n, errors_.load(), cancelled_.load(), streams_.load(), b,
                     b ? static_cast<double>(batched_requests_.load()) / static_cast<double>(b) : 0.0,
                     n ? sum / static_cast<double>(n) : 0.0, latency_quantile(0.5), latency_quantile(0.99),
                     decisions_.load());
}

}  // namespace tokcom::net

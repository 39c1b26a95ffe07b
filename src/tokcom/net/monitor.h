// net/monitor.h — what an operator watches (`tokcom serve --http`; docs/serve.md): each device
// stream (its name, peer, every slot's SNR, decision (α, r), ζ measured here from the symbols
// received, the virtual queue and ζ_max it reports, accuracy where labels come), and the server's
// totals over time. Read as JSON by the live page and in Prometheus's text format by /metrics.
// Thread-safe; one mutex, held for microseconds per request.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tokcom/net/metrics.h"
#include "tokcom/net/wire.h"

namespace tokcom::net {

struct MonitorOptions {
  size_t history = 200;       // slots kept per device (the page's charts)
  size_t series = 300;        // server samples kept (one per sample() call; the endpoint calls it each second)
  size_t closed_devices = 64; // closed streams kept (oldest dropped first)
};

class DeploymentMonitor {
 public:
  explicit DeploymentMonitor(MonitorOptions options = {});

  // A device stream opened: `name` from its "tokcom-device" metadata (empty: "stream-<id>"; control
  // characters replaced), `peer` gRPC's address. Returns the stream's id.
  int64_t open(const std::string& name, const std::string& peer);
  void close(int64_t id, const std::string& status);
  // A payload read: what the device says about its slot, and the ζ of the symbols received (NaN
  // when not countable here: digital payloads, whose ζ is the device's capacity setting).
  void slot(int64_t id, const SlotReport& report, double zeta);
  // Its prediction written back; counts accuracy when the request carried a label (≥ 0).
  void answered(int64_t id, int64_t label, int64_t predicted);
  void failed(int64_t id);  // a request of this stream refused (the stream ends)
  // One point of the time series: the totals now.
  void sample(const ServerMetrics& metrics, double now_unix);

  // GET /api/state (the page reads exactly this; its schema is in docs/serve.md).
  std::string state_json(const ServerMetrics& metrics, const ServedModel& served, const std::string& version,
                         double started_unix, double now_unix) const;
  // GET /metrics: Prometheus text exposition format 0.0.4.
  std::string prometheus(const ServerMetrics& metrics, const ServedModel& served, const std::string& version) const;

 private:
  struct SlotPoint {
    int64_t slot;
    double unix_time, snr_db, budget, ratio, zeta, queue;
  };
  struct Device {
    int64_t id = 0;
    std::string name, peer, status;
    bool connected = true;
    double opened = 0, closed = 0;
    int64_t requests = 0, errors = 0, labelled = 0, correct = 0, slots = 0;
    double zeta_sum = 0;
    int64_t zeta_count = 0;
    double zeta_max = 0, queue = 0;
    bool has_zeta_max = false, has_queue = false;
    std::deque<SlotPoint> history;
  };
  struct Sample {
    double unix_time;
    int64_t requests, errors;
    double p50_ms, p99_ms;
  };
  Device* find(int64_t id);

  MonitorOptions options_;
  mutable std::mutex mutex_;
  int64_t next_id_ = 1;
  std::map<int64_t, Device> devices_;
  std::deque<Sample> series_;
};

// Seconds since the Unix epoch, now.
double unix_now();

}  // namespace tokcom::net

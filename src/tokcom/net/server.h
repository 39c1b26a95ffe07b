// net/server.h — the edge server (issue "deployment"): one model copy behind a gRPC service
// (proto/edge.proto), a bidirectional stream per device, cross-device batching (batcher.h),
// bounded queue with back-pressure, max message size, optional TLS and a shared-token check,
// gRPC's standard health service, metrics, and a graceful drain on shutdown.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <c10/core/Device.h>

#include "tokcom/control/lyapunov.h"
#include "tokcom/net/batcher.h"
#include "tokcom/net/metrics.h"
#include "tokcom/net/monitor.h"
#include "tokcom/net/wire.h"
#include "tokcom/split/split_model.h"

namespace grpc {
class Server;
}

namespace tokcom::net {

struct ServeOptions {
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free one (see EdgeServer::port)
  BatcherOptions batching;
  int64_t max_message_bytes = 0;    // 0: the largest valid payload + 64 KiB
  std::string tls_cert, tls_key;    // PEM paths: both (TLS) or neither (plaintext)
  std::string auth_token;           // non-empty: every call must carry "authorization: Bearer <token>"
  double drain_timeout_s = 10.0;    // shutdown: in-flight requests get this long to finish
  double metrics_interval_s = 10.0; // ≤ 0: only at exit
  c10::Device device = c10::Device("cpu");
  // Server-side controller (optional): each device stream gets its own Lyapunov controller on this
  // proxy table (its ratios in the served bank), started from `control` or from the state the
  // device's first control request carries.
  std::shared_ptr<const ProxyTable> table;
  LyapunovOptions control;
  // Optional check of every decoded request in its stream's thread, before batching (digital: the
  // image must decode): an Error ends only that stream, with INVALID_ARGUMENT.
  std::function<void(const Payload&)> check_payload;
};

class EdgeServer {
 public:
  EdgeServer(std::shared_ptr<ServerHalf> server_half, ServedModel served, ServeOptions options);
  ~EdgeServer();
  EdgeServer(const EdgeServer&) = delete;
  EdgeServer& operator=(const EdgeServer&) = delete;

  // Binds and starts serving. UsageError if the address cannot be bound or TLS files are unreadable.
  void start();
  int port() const { return port_; }
  // Stops taking new streams and requests, lets every request already read finish (up to
  // drain_timeout_s), then stops the batcher and logs the final metrics. Idempotent, thread-safe.
  void shutdown();
  // Blocks until shutdown() has finished.
  void wait();
  const ServerMetrics& metrics() const { return metrics_; }
  // Every device stream and the totals over time (`tokcom serve --http`).
  DeploymentMonitor& monitor() { return monitor_; }
  const DeploymentMonitor& monitor() const { return monitor_; }
  const ServedModel& served() const { return served_; }
  bool serving() const { return port_ != 0 && !draining_.load(); }  // started and not draining
  double started_unix() const { return started_unix_; }

  class Service;  // the generated service's implementation (server.cpp)

 private:
  ServedModel served_;
  ServeOptions options_;
  ServerMetrics metrics_;
  DeploymentMonitor monitor_;
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> draining_{false};
  int port_ = 0;
  double started_unix_ = 0;
  std::mutex mutex_;
  std::condition_variable stopped_cv_;
  bool stopped_ = false, shutting_down_ = false;
  std::thread metrics_thread_;
};

// The port of a listen address "host:port" (or a bare "port"): digits, 0–65535; nullopt otherwise
// (gRPC would silently wrap a larger one).
std::optional<int> listen_port(const std::string& port_text);

// What a loaded bank serves: method/ratios/widths/token limit from the config and the model.
ServedModel served_model(const class Config& config, const std::vector<double>& ratios, const std::string& regime,
                         const std::string& mode);
// What a digital server serves: the codec's name, the model's classes and n, the largest encoded image.
ServedModel served_digital_model(const class Config& config, const std::string& codec, int64_t max_codec_bytes);

}  // namespace tokcom::net

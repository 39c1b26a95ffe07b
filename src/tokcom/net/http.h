// net/http.h — `tokcom serve --http ADDR` (docs/serve.md): beside the gRPC port, an HTTP endpoint
// (cpp-httplib) for people and scrapers:
//   GET /            the live page (embedded; polls /api/state, works offline)
//   GET /api/state   the monitor's JSON (net/monitor.h)
//   GET /metrics     Prometheus text format 0.0.4
//   GET /healthz     200 "ok" while serving, 503 while draining
// Off unless asked; a bare port binds loopback. With the gRPC side's token, /api/state and
// /metrics need "Authorization: Bearer <token>" (or ?token=, for a browser); / and /healthz hold
// no data and stay open, as gRPC's health service does. With its certificate, HTTPS.
#pragma once
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace tokcom::net {

class EdgeServer;

struct HttpOptions {
  std::string listen;           // "PORT" (127.0.0.1) or "host:port"; port 0 = any free port
  std::string auth_token;       // non-empty: required on /api/state and /metrics
  std::string tls_cert, tls_key;  // PEM paths: HTTPS with the gRPC side's certificate
  double sample_interval_s = 1.0; // the page's time series: one point per interval
};

class HttpEndpoint {
 public:
  HttpEndpoint(EdgeServer& server, HttpOptions options, std::string version);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds (UsageError naming the address when it cannot) and serves on its own threads.
  void start();
  void stop();  // idempotent
  int port() const { return port_; }
  std::string url() const;  // http(s)://host:port/

  class Impl;

 private:
  EdgeServer& server_;
  HttpOptions options_;
  std::string version_, host_;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
  std::thread listener_, sampler_;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

}  // namespace tokcom::net

#include "tokcom/net/monitor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tokcom::net {
namespace {

using nlohmann::json;

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Prometheus label values: backslash, double quote and newline escaped.
std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// A number as Prometheus reads it (Go's ParseFloat): NaN, +Inf, -Inf spelled out.
std::string prom_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void family(std::string& out, const std::string& name, const std::string& type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

DeploymentMonitor::DeploymentMonitor(MonitorOptions options) : options_(options) {}

DeploymentMonitor::Device* DeploymentMonitor::find(int64_t id) {
  auto it = devices_.find(id);
  return it == devices_.end() ? nullptr : &it->second;
}

int64_t DeploymentMonitor::open(const std::string& name, const std::string& peer) {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t id = next_id_++;
  Device d;
  d.id = id;
  d.name = name.substr(0, 64);
  for (char& c : d.name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  if (d.name.empty()) d.name = fmt::format("stream-{}", id);
  d.peer = peer;
  d.opened = unix_now();
  devices_[id] = std::move(d);
  return id;
}

void DeploymentMonitor::close(int64_t id, const std::string& status) {
  std::lock_guard<std::mutex> lock(mutex_);
  Device* d = find(id);
  if (!d) return;
  d->connected = false;
  d->closed = unix_now();
  d->status = status;
  // Keep the most recent closed streams only: a server that runs for months sees many devices come and go.
  std::vector<std::pair<double, int64_t>> closed;
  for (const auto& [key, dev] : devices_)
    if (!dev.connected) closed.emplace_back(dev.closed, key);
  if (closed.size() > options_.closed_devices) {
    std::sort(closed.begin(), closed.end());
    for (size_t i = 0; i + options_.closed_devices < closed.size(); ++i) devices_.erase(closed[i].second);
  }
}

void DeploymentMonitor::slot(int64_t id, const SlotReport& r, double zeta) {
  std::lock_guard<std::mutex> lock(mutex_);
  Device* d = find(id);
  if (!d) return;
  ++d->requests;
  if (std::isfinite(zeta)) {
    d->zeta_sum += zeta;
    ++d->zeta_count;
  }
  // A device that runs a controller says its ζ_max (> 0), and then its queue too.
  d->has_zeta_max = d->has_queue = r.zeta_max > 0;
  d->zeta_max = r.zeta_max;
  d->queue = r.queue;
  d->history.push_back(SlotPoint{d->slots++, unix_now(), r.snr_db, r.budget, r.ratio, zeta,
                                 r.zeta_max > 0 ? r.queue : std::nan("")});
  while (d->history.size() > options_.history) d->history.pop_front();
}

void DeploymentMonitor::answered(int64_t id, int64_t label, int64_t predicted) {
  if (label < 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  Device* d = find(id);
  if (!d) return;
  ++d->labelled;
  d->correct += label == predicted;
}

void DeploymentMonitor::failed(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (Device* d = find(id)) ++d->errors;
}

void DeploymentMonitor::sample(const ServerMetrics& m, double now) {
  Sample s{now, m.requests(), m.errors(), m.latency_quantile(0.5), m.latency_quantile(0.99)};
  std::lock_guard<std::mutex> lock(mutex_);
  series_.push_back(s);
  while (series_.size() > options_.series) series_.pop_front();
}

std::string DeploymentMonitor::state_json(const ServerMetrics& m, const ServedModel& served, const std::string& version,
                                          double started, double now) const {
  json state;
  state["server"] = {{"version", version},
                     {"method", served.method},
                     {"ratios", served.ratios},
                     {"controller", served.controller},
                     {"mode", served.mode},
                     {"input_values", served.input_values},
                     {"started_unix", started},
                     {"now_unix", now}};
  const ServerMetrics::LatencySnapshot lat = m.latency();
  const int64_t batches = m.batches();
  json devices = json::array();
  int64_t connected = 0;
  json series = {{"unix", json::array()}, {"requests", json::array()}, {"errors", json::array()},
                 {"p50_ms", json::array()}, {"p99_ms", json::array()}};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Sample& s : series_) {
      series["unix"].push_back(s.unix_time);
      series["requests"].push_back(s.requests);
      series["errors"].push_back(s.errors);
      series["p50_ms"].push_back(s.p50_ms);
      series["p99_ms"].push_back(s.p99_ms);
    }
    for (const auto& [id, d] : devices_) {
      connected += d.connected;
      json history = {{"slot", json::array()},   {"unix", json::array()},  {"snr_db", json::array()},
                      {"budget", json::array()}, {"ratio", json::array()}, {"zeta", json::array()},
                      {"queue", json::array()}};
      for (const SlotPoint& p : d.history) {
        history["slot"].push_back(p.slot);
        history["unix"].push_back(p.unix_time);
        history["snr_db"].push_back(p.snr_db);
        history["budget"].push_back(p.budget);
        history["ratio"].push_back(p.ratio);
        history["zeta"].push_back(number_or_null(p.zeta));
        history["queue"].push_back(number_or_null(p.queue));
      }
      json last = nullptr;
      if (!d.history.empty()) {
        const SlotPoint& p = d.history.back();
        last = {{"slot", p.slot}, {"snr_db", p.snr_db}, {"budget", p.budget}, {"ratio", p.ratio},
                {"zeta", number_or_null(p.zeta)}};
      }
      devices.push_back({{"id", id},
                         {"name", d.name},
                         {"peer", d.peer},
                         {"connected", d.connected},
                         {"opened_unix", d.opened},
                         {"closed_unix", d.connected ? json(nullptr) : json(d.closed)},
                         {"status", d.status},
                         {"requests", d.requests},
                         {"errors", d.errors},
                         {"labelled", d.labelled},
                         {"correct", d.correct},
                         {"accuracy", d.labelled ? json(double(d.correct) / double(d.labelled)) : json(nullptr)},
                         {"zeta_max", d.has_zeta_max ? json(d.zeta_max) : json(nullptr)},
                         {"zeta_mean", d.zeta_count ? json(d.zeta_sum / double(d.zeta_count)) : json(nullptr)},
                         {"queue", d.has_queue ? json(d.queue) : json(nullptr)},
                         {"last", last},
                         {"history", history}});
    }
  }
  json batch_sizes = json::array();
  for (const auto& [size, count] : m.batch_sizes()) batch_sizes.push_back({size, count});
  state["totals"] = {{"received", m.received()},
                     {"requests", m.requests()},
                     {"errors", m.errors()},
                     {"cancelled", m.cancelled()},
                     {"batches", batches},
                     {"mean_batch", batches ? double(m.batched_requests()) / double(batches) : 0.0},
                     {"streams", m.streams()},
                     {"decisions", m.decisions()},
                     {"devices_connected", connected},
                     {"latency_ms",
                      {{"p50", m.latency_quantile(0.5)},
                       {"p90", m.latency_quantile(0.9)},
                       {"p99", m.latency_quantile(0.99)},
                       {"mean", lat.count ? lat.sum_ms / double(lat.count) : 0.0}}}};
  state["batch_sizes"] = batch_sizes;
  state["series"] = series;
  state["devices"] = devices;
  return state.dump();
}

std::string DeploymentMonitor::prometheus(const ServerMetrics& m, const ServedModel& served,
                                          const std::string& version) const {
  std::string out;
  family(out, "tokcom_build_info", "gauge", "The server's version, method and selection mode (value 1).");
  out += fmt::format("tokcom_build_info{{version=\"{}\",method=\"{}\",mode=\"{}\"}} 1\n", label_value(version),
                     label_value(served.method), label_value(served.mode));
  const std::vector<std::tuple<std::string, std::string, int64_t>> counters = {
      {"tokcom_requests_received_total", "Requests read off device streams.", m.received()},
      {"tokcom_requests_answered_total", "Predictions written back.", m.requests()},
      {"tokcom_request_errors_total", "Requests refused (validation, authentication, decode failure).", m.errors()},
      {"tokcom_requests_cancelled_total", "Requests whose stream was gone or past its deadline before decoding.",
       m.cancelled()},
      {"tokcom_streams_opened_total", "Device streams opened.", m.streams()},
      {"tokcom_batches_total", "Batches decoded by the server half.", m.batches()},
      {"tokcom_decisions_total", "Control requests answered by the server-side controller.", m.decisions()}};
  for (const auto& [name, help, value] : counters) {
    family(out, name, "counter", help);
    out += fmt::format("{} {}\n", name, value);
  }
  const ServerMetrics::LatencySnapshot lat = m.latency();
  family(out, "tokcom_request_latency_seconds", "histogram",
         "From a request read to its prediction written back (queue, batching, decode).");
  int64_t cumulative = 0;
  for (size_t i = 0; i < ServerMetrics::kEdgesMs.size(); ++i) {
    cumulative += lat.buckets[i];
    out += fmt::format("tokcom_request_latency_seconds_bucket{{le=\"{}\"}} {}\n", ServerMetrics::kEdgesMs[i] / 1000.0,
                       cumulative);
  }
  out += fmt::format("tokcom_request_latency_seconds_bucket{{le=\"+Inf\"}} {}\n", lat.count);
  out += fmt::format("tokcom_request_latency_seconds_sum {}\n", lat.sum_ms / 1000.0);
  out += fmt::format("tokcom_request_latency_seconds_count {}\n", lat.count);
  family(out, "tokcom_batch_size", "histogram", "Requests decoded together, per batch.");
  const std::map<int64_t, int64_t> sizes = m.batch_sizes();
  int64_t batches = 0, total = 0;
  for (int64_t edge : {1, 2, 4, 8, 16, 32, 64, 128, 256}) {
    int64_t at_most = 0;
    for (const auto& [size, count] : sizes) at_most += size <= edge ? count : 0;
    out += fmt::format("tokcom_batch_size_bucket{{le=\"{}\"}} {}\n", edge, at_most);
  }
  for (const auto& [size, count] : sizes) {
    batches += count;
    total += size * count;
  }
  out += fmt::format("tokcom_batch_size_bucket{{le=\"+Inf\"}} {}\ntokcom_batch_size_sum {}\ntokcom_batch_size_count {}\n",
                     batches, total, batches);

  std::lock_guard<std::mutex> lock(mutex_);
  int64_t connected = 0;
  for (const auto& [id, d] : devices_) connected += d.connected;
  family(out, "tokcom_devices_connected", "gauge", "Device streams open now.");
  out += fmt::format("tokcom_devices_connected {}\n", connected);
  // Per device stream: labels device (its name) and stream (the server's id: a name may reconnect).
  struct PerDevice {
    std::string name, type, help;
    std::function<double(const Device&)> value;
    std::function<bool(const Device&)> present;
  };
  const std::vector<PerDevice> per_device = {
      {"tokcom_device_connected", "gauge", "1 while the device's stream is open.",
       [](const Device& d) { return double(d.connected); }, nullptr},
      {"tokcom_device_requests_total", "counter", "Payloads this device sent.",
       [](const Device& d) { return double(d.requests); }, nullptr},
      {"tokcom_device_errors_total", "counter", "Requests of this device refused.",
       [](const Device& d) { return double(d.errors); }, nullptr},
      {"tokcom_device_labelled_total", "counter", "Answered requests that carried the true label.",
       [](const Device& d) { return double(d.labelled); }, nullptr},
      {"tokcom_device_correct_total", "counter", "Labelled requests classified correctly.",
       [](const Device& d) { return double(d.correct); }, nullptr},
      {"tokcom_device_zeta_sum", "counter", "Sum of ζ over this device's payloads, counted from the symbols received.",
       [](const Device& d) { return d.zeta_sum; }, nullptr},
      {"tokcom_device_zeta_count", "counter", "Payloads whose ζ was counted here (token methods).",
       [](const Device& d) { return double(d.zeta_count); }, nullptr},
      {"tokcom_device_zeta_max", "gauge", "The device's long-term ζ bound, as it reports it.",
       [](const Device& d) { return d.zeta_max; }, [](const Device& d) { return d.has_zeta_max; }},
      {"tokcom_device_queue", "gauge", "The virtual queue Z of the device's last decision, as it reports it.",
       [](const Device& d) { return d.queue; }, [](const Device& d) { return d.has_queue; }},
      {"tokcom_device_budget", "gauge", "The token budget α of the device's last payload.",
       [](const Device& d) { return d.history.back().budget; }, [](const Device& d) { return !d.history.empty(); }},
      {"tokcom_device_ratio", "gauge", "The JSCC ratio r of the device's last payload.",
       [](const Device& d) { return d.history.back().ratio; }, [](const Device& d) { return !d.history.empty(); }},
      {"tokcom_device_snr_db", "gauge", "The SNR (dB) of the device's last slot, as it reports it.",
       [](const Device& d) { return d.history.back().snr_db; }, [](const Device& d) { return !d.history.empty(); }}};
  for (const PerDevice& f : per_device) {
    family(out, f.name, f.type, f.help);
    for (const auto& [id, d] : devices_) {
      if (f.present && !f.present(d)) continue;
      out += fmt::format("{}{{device=\"{}\",stream=\"{}\"}} {}\n", f.name, label_value(d.name), id,
                         prom_number(f.value(d)));
    }
  }
  return out;
}

}  // namespace tokcom::net

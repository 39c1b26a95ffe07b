// Load benchmark of the edge server (issue "deployment", docs/PERF.md): `tokcom serve` in its own
// process on loopback, N simulated devices (threads here, one gRPC stream each) sending payloads
// back to back for a fixed time; requests/s, client-side p50/p99 latency, the server's RSS, errors,
// and the same with --max-batch 1 (the gain of cross-device batching).
//   build/bench/bench_serve --devices 1,4,16,64 --seconds 60 -o bench-serve
// Soak (issue "reliability"): --sample-s S also samples every S seconds of each run the interval's
// requests/s and p50/p99, and the server's RSS (VmRSS), open file descriptors and threads, into
// serve_soak.csv; the summary compares RSS after the warm-up (--warmup-s) with the end.
//   build/bench/bench_serve --devices 64 --max-batch 32 --seconds 600 --sample-s 10 -o soak-64
// Model: the imagenette64 geometry (64 px, patch 8, dim 192, depth 6, adaptive {1, 2}, split 3)
// with random weights written as a bank of two ratios; payloads encoded once up front at α = 0.5.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/startup.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/net/client.h"
#include "tokcom/split/proposal.h"
#include "tokcom/train/trainer.h"

using namespace tokcom;
namespace fs = std::filesystem;

namespace {

const std::vector<double> kRatios = {0.1, 0.5};

// A bank of random weights in the layout `tokcom serve` loads.
void write_random_bank(const std::string& dir, const Config& config) {
  fs::create_directories(dir);
  config.save(dir + "/config.yaml");
  torch::manual_seed(0);
  Vit vit = make_vit(config);
  for (double r : kRatios) {
    JsccCodec codec(JsccOptions().dim(vit->options.dim()).ratio(r));
    JsccStageNet net(vit, codec);
    save_module(jscc_file(dir, "robust", r), *net);
  }
}

pid_t spawn(const std::string& command, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    dup2(fileno(stdout), 2);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// A field of /proc/<pid>/status as a number (kB fields: VmHWM peak RSS, VmRSS current; Threads).
double proc_status(pid_t pid, const std::string& field) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
  return 0.0;
}
double rss_mb(pid_t pid) { return proc_status(pid, "VmHWM") / 1024.0; }

int64_t open_fds(pid_t pid) {
  std::error_code ec;
  int64_t n = 0;
  for (auto it = fs::directory_iterator(fmt::format("/proc/{}/fd", pid), ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}

double percentile(std::vector<double>& v, int pct) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, v.size() * static_cast<size_t>(pct) / 100)];
}

// The latencies of one device since the sampler last took them.
struct DeviceLog {
  std::mutex mutex;
  std::vector<double> all, fresh;
};

struct Result {
  int64_t devices = 0, max_batch = 0, requests = 0, errors = 0;
  double seconds = 0, p50_ms = 0, p99_ms = 0, rss_mb = 0;
  // Soak: RSS at the first sample after the warm-up and at the last; most fds and threads seen.
  double rss_warm_mb = 0, rss_end_mb = 0;
  int64_t fds_max = 0, threads_max = 0;
};

struct SoakOptions {
  double sample_s = 0, warmup_s = 60;
  std::string* csv = nullptr;  // rows appended here
};

Result run_load(const std::string& cli, const std::string& bank, const std::string& out, int64_t devices,
                int64_t max_batch, double seconds, const std::vector<Payload>& payloads, int server_threads,
                const SoakOptions& soak) {
  const std::string port_file = fmt::format("{}/port-{}-{}", out, devices, max_batch);
  fs::remove(port_file);
  const pid_t server =
      spawn(fmt::format("exec {} --threads {} serve --checkpoint-dir {} --listen 127.0.0.1:0 --max-batch {} "
                        "--max-wait-ms 2 --queue 4096 --metrics-interval 0 --port-file {}",
                        cli, server_threads, bank, max_batch, port_file),
            fmt::format("{}/serve-{}-{}.log", out, devices, max_batch));
  for (int i = 0; i < 1200 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!fs::exists(port_file)) throw std::runtime_error("tokcom serve did not start (see its log in " + out + ")");
  std::ifstream pf(port_file);
  int port = 0;
  pf >> port;
  net::ClientOptions o;
  o.address = fmt::format("127.0.0.1:{}", port);

  std::vector<DeviceLog> logs(static_cast<size_t>(devices));
  std::atomic<int64_t> errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int64_t d = 0; d < devices; ++d) {
    threads.emplace_back([&, d] {
      try {
        net::EdgeClient client(o);
        uint64_t id = 0;
        while (!stop.load()) {
          const Payload& p = payloads[(d * 7 + id) % payloads.size()];
          const auto t0 = std::chrono::steady_clock::now();
          client.send(p, 0, kRatios[p.ratio_index], id++);
          client.receive();
          const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          std::lock_guard<std::mutex> lock(logs[d].mutex);
          logs[d].all.push_back(ms);
          if (soak.sample_s > 0) logs[d].fresh.push_back(ms);
        }
        client.finish();
      } catch (const std::exception& e) {
        errors.fetch_add(1);
        std::cerr << "device " << d << ": " << e.what() << "\n";
      }
    });
  }
  Result r;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  if (soak.sample_s > 0) {
    for (int64_t k = 1;; ++k) {
      const auto at = start + std::chrono::milliseconds(static_cast<int64_t>(k * soak.sample_s * 1000));
      if (at > end) break;
      std::this_thread::sleep_until(at);
      std::vector<double> interval;
      for (DeviceLog& l : logs) {
        std::lock_guard<std::mutex> lock(l.mutex);
        interval.insert(interval.end(), l.fresh.begin(), l.fresh.end());
        l.fresh.clear();
      }
      const double t = k * soak.sample_s, rss = proc_status(server, "VmRSS") / 1024.0;
      const int64_t fds = open_fds(server), server_threads_now = static_cast<int64_t>(proc_status(server, "Threads"));
      if (r.rss_warm_mb == 0 && t >= soak.warmup_s) r.rss_warm_mb = rss;
      r.rss_end_mb = rss;
      r.fds_max = std::max(r.fds_max, fds);
      r.threads_max = std::max(r.threads_max, server_threads_now);
      const std::string row =
          fmt::format("{},{},{:.0f},{},{:.1f},{:.3f},{:.3f},{},{:.1f},{},{}\n", devices, max_batch, t, interval.size(),
                      interval.size() / soak.sample_s, percentile(interval, 50), percentile(interval, 99),
                      errors.load(), rss, fds, server_threads_now);
      std::cout << "soak " << row << std::flush;
      *soak.csv += row;
      write_file_atomic(out + "/serve_soak.csv", *soak.csv);
    }
  }
  std::this_thread::sleep_until(end);
  stop = true;
  for (auto& t : threads) t.join();
  r.rss_mb = rss_mb(server);
  kill(server, SIGTERM);
  int status = 0;
  waitpid(server, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) errors.fetch_add(1);
  std::vector<double> all;
  for (auto& l : logs) all.insert(all.end(), l.all.begin(), l.all.end());
  std::sort(all.begin(), all.end());
  r.devices = devices;
  r.max_batch = max_batch;
  r.seconds = seconds;
  r.requests = static_cast<int64_t>(all.size());
  r.errors = errors.load();
  if (!all.empty()) {
    r.p50_ms = all[all.size() / 2];
    r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load benchmark of `tokcom serve` on loopback"};
  std::string devices_list = "1,4,16,64", out = "bench-serve", cli = "build/tokcom";
  std::string batches = "32,1";
  double seconds = 60;
  int server_threads = 0;
  SoakOptions soak;
  std::string soak_csv = "devices,max_batch,t_s,requests,requests_per_s,p50_ms,p99_ms,errors,server_rss_mb,server_fds,"
                         "server_threads\n";
  soak.csv = &soak_csv;
  app.add_option("--devices", devices_list, "Simulated devices per run")->capture_default_str();
  app.add_option("--max-batch", batches, "Server --max-batch values to compare")->capture_default_str();
  app.add_option("--seconds", seconds, "Length of each run")->capture_default_str();
  app.add_option("--server-threads", server_threads, "Server --threads (0: all cores)")->capture_default_str();
  app.add_option("--cli", cli, "The tokcom binary")->capture_default_str();
  app.add_option("--sample-s", soak.sample_s, "Soak: sample every S seconds into serve_soak.csv (0: off)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--warmup-s", soak.warmup_s, "Soak: RSS growth is measured from the first sample after this")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("-o,--out", out, "Output folder (bank, logs, serve_load.csv/.json)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  StartupOptions startup_options;
  startup_options.threads = 1;  // the devices' encoding is done up front; the clients only wait
  startup(startup_options);

  const Config config = Config::load("imagenette64", {"train.out=" + out + "/bank"});
  const std::string bank = out + "/bank";
  write_random_bank(bank, config);
  // Payloads the devices send: 64 images at α = 0.5, both ratios, after AWGN-free transport.
  SplitModel model = load_proposal(config, bank, "robust", kRatios, SelectionMode::kHard, torch::kCPU);
  std::vector<Payload> payloads;
  torch::manual_seed(1);
  for (int i = 0; i < 64; ++i) {
    payloads.push_back(model.device->encode(torch::randn({1, 3, 64, 64}), Decision{0.5, i % 2}));
  }
  std::string csv = "devices,max_batch,seconds,requests,requests_per_s,p50_ms,p99_ms,errors,server_peak_rss_mb";
  if (soak.sample_s > 0) csv += ",rss_after_warmup_mb,rss_end_mb,rss_growth_pct,server_fds_max,server_threads_max";
  csv += "\n";
  for (const std::string& b : CLI::detail::split(batches, ',')) {
    for (const std::string& d : CLI::detail::split(devices_list, ',')) {
      const Result r = run_load(cli, bank, out, std::stoll(d), std::stoll(b), seconds, payloads, server_threads, soak);
      std::string row = fmt::format("{},{},{},{},{:.1f},{:.3f},{:.3f},{},{:.1f}", r.devices, r.max_batch, r.seconds,
                                    r.requests, r.requests / r.seconds, r.p50_ms, r.p99_ms, r.errors, r.rss_mb);
      if (soak.sample_s > 0) {
        const double growth = r.rss_warm_mb > 0 ? 100.0 * (r.rss_end_mb / r.rss_warm_mb - 1.0) : std::nan("");
        row += fmt::format(",{:.1f},{:.1f},{:.2f},{},{}", r.rss_warm_mb, r.rss_end_mb, growth, r.fds_max, r.threads_max);
      }
      row += "\n";
      std::cout << row << std::flush;
      csv += row;
      write_file_atomic(out + "/serve_load.csv", csv);
    }
  }
  nlohmann::json meta = {{"model", "imagenette64 geometry, random weights, ratios 0.1/0.5, alpha 0.5, hard mode"},
                         {"seconds", seconds}, {"devices", devices_list}, {"max_batch", batches},
                         {"server_threads", server_threads}, {"cores", std::thread::hardware_concurrency()},
                         {"sample_s", soak.sample_s}, {"warmup_s", soak.warmup_s},
                         {"command", fmt::format("bench_serve --devices {} --max-batch {} --seconds {}{} -o {}",
                                                 devices_list, batches, seconds,
                                                 soak.sample_s > 0 ? fmt::format(" --sample-s {} --warmup-s {}",
                                                                                 soak.sample_s, soak.warmup_s)
                                                                   : std::string(),
                                                 out)}};
  write_file_atomic(out + "/serve_load.json", meta.dump(2) + "\n");
  return 0;
}

// `tokcom serve`: the edge server (issue "deployment"; docs/serve.md). Loads a trained bank once,
// serves the server half over gRPC to any number of devices with cross-device batching, and
// drains in-flight requests on SIGTERM / SIGINT.
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "command.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/control/proxy_table.h"
#include "tokcom/eval/sweep.h"
#include "tokcom/core/version.h"
#include "tokcom/net/credentials.h"
#include "tokcom/net/http.h"
#include "tokcom/net/server.h"
#include "tokcom/split/digital_server.h"
#include "tokcom/split/proposal.h"

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

int signal_pipe[2] = {-1, -1};

struct ServeArgs {
  std::string checkpoint_dir, listen = "127.0.0.1:50051", regime = "robust", ratios, mode = "hard", method;
  std::string tls_cert, tls_key, auth_token_file, port_file, http, http_port_file;
  std::string table, table_method, table_channel;  // server-side controller
  LyapunovOptions control;
  net::BatcherOptions batching;
  int64_t max_message_bytes = 0;
  double drain_timeout_s = 10, metrics_interval_s = 10;
  std::vector<std::string> overrides;
};

void run_serve(const ServeArgs& a) {
  if (!fs::exists(a.checkpoint_dir)) throw UsageError("--checkpoint-dir '" + a.checkpoint_dir + "': no such folder");
  if (!fs::is_directory(a.checkpoint_dir))
    throw UsageError("--checkpoint-dir '" + a.checkpoint_dir + "': is a file, expected a bank folder");
  const std::string cfg = a.checkpoint_dir + "/config.yaml";
  if (!fs::exists(cfg)) {
    throw ConfigError(cfg + ": not found (--checkpoint-dir must be a bank folder written by `tokcom train "
                            "train.stage=jscc`)");
  }
  const Config config = Config::load(cfg, a.overrides);
  std::vector<double> ratios;
  const bool digital = !a.method.empty() && is_digital_method(a.method) && a.method.find('/') == std::string::npos;
  if (!a.method.empty() && !digital) {
    throw UsageError(fmt::format("--method '{}': serve takes a codec (resize, jpeg, webp, avif) here; a bank's method "
                                 "comes from its config",
                                 a.method));
  }
  // Digital: the clean backbone in --checkpoint-dir classifies the decoded images (Q7), no ratios.
  if (!digital && !a.ratios.empty()) {
    ratios = parse_range(a.ratios, "--ratios");
  } else if (!digital) {
    for (double r : config.get_doubles("comm.ratios"))
      if (fs::exists(jscc_file(a.checkpoint_dir, a.regime, r))) ratios.push_back(r);
    if (ratios.empty()) {
      throw DataError(fmt::format("{}: no jscc-{}-r*.safetensors for any of comm.ratios (train the bank, or pass "
                                  "--regime)",
                                  a.checkpoint_dir, a.regime));
    }
  }
  const SelectionMode mode = a.mode == "soft" ? SelectionMode::kSoft : SelectionMode::kHard;
  net::ServeOptions o;
  o.listen = a.listen;
  o.batching = a.batching;
  o.max_message_bytes = a.max_message_bytes;
  o.tls_cert = a.tls_cert;
  o.tls_key = a.tls_key;
  if (!a.auth_token_file.empty()) o.auth_token = net::read_token(a.auth_token_file, "--auth-token-file");
  o.drain_timeout_s = a.drain_timeout_s;
  o.metrics_interval_s = a.metrics_interval_s;
  o.device = torch::Device(config.get_string("train.device"));
  SplitModel model;
  net::ServedModel served;
  if (digital) {
    const std::string weights = a.checkpoint_dir + "/model.safetensors";
    Vit backbone = make_vit(config);
    load_module(weights, *backbone);
    auto server_half = std::make_shared<DigitalServer>(backbone, a.method, config, o.device);
    o.check_payload = [server_half](const Payload& p) { server_half->images(p); };
    model.server = server_half;
    served = net::served_digital_model(config, a.method, server_half->max_codec_bytes());
  } else {
    require_counted_token_scale(config, "serve");
    model = load_proposal(config, a.checkpoint_dir, a.regime, ratios, mode, o.device);
    served = net::served_model(config, ratios, a.regime, a.mode);
  }
  if (!a.table.empty()) {
    if (digital) throw UsageError("serve: --table (the controller) is for token methods, not --method " + a.method);
    o.table = std::make_shared<const ProxyTable>(
        ProxyTable::read_csv(a.table, ProxyFilter{a.table_method, a.table_channel, a.regime}));
    o.control = a.control;
    LyapunovController check(*o.table, o.control);  // V, μ, ζ_max checked before serving
  }

  // SIGTERM / SIGINT: the handler only writes the signal number into a pipe (async-signal-safe,
  // whichever thread LibTorch's or gRPC's pools the kernel picks); one thread reads it and drains.
  if (pipe(signal_pipe) != 0) throw UsageError("serve: cannot create the signal pipe");
  struct sigaction action {};
  action.sa_handler = [](int signal_number) {
    const char c = static_cast<char>(signal_number);
    [[maybe_unused]] const ssize_t n = write(signal_pipe[1], &c, 1);
  };
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  net::EdgeServer server(model.server, served, o);
  server.start();
  // Declared after the server: stopped and destroyed before it.
  std::unique_ptr<net::HttpEndpoint> http;
  if (!a.http.empty()) {
    http = std::make_unique<net::HttpEndpoint>(
        server, net::HttpOptions{a.http, o.auth_token, o.tls_cert, o.tls_key, 1.0},
        fmt::format("tokcom {} ({})", TOKCOM_VERSION, tokcom::git_hash()));
    try {
      http->start();
    } catch (...) {
      server.shutdown();
      throw;
    }
    if (!a.http_port_file.empty()) write_file_atomic(a.http_port_file, std::to_string(http->port()) + "\n");
  }
  if (!a.port_file.empty()) write_file_atomic(a.port_file, std::to_string(server.port()) + "\n");
  std::thread waiter([&] {
    char c = 0;
    while (read(signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    spdlog::info("signal {} received", c == SIGTERM ? "SIGTERM" : "SIGINT");
    server.shutdown();
  });
  server.wait();  // only the signal shuts the CLI's server down
  waiter.join();
  if (http) http->stop();
}

void add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Edge server: the server half of a trained bank over gRPC for many devices, with cross-device\n"
               "batching (proto/edge.proto; docs/serve.md). Stops gracefully on SIGTERM/SIGINT.");
  cmd->add_option("--checkpoint-dir,--checkpoint", a->checkpoint_dir,
                  "Bank folder written by `tokcom train train.stage=jscc` (with --method: the backbone's run folder)")
      ->required();
  cmd->add_option("--method", a->method,
                  "Serve a digital baseline instead: resize | jpeg | webp | avif (devices send the encoded image; "
                  "the backbone of --checkpoint-dir classifies it)");
  cmd->add_option("--listen", a->listen, "host:port to listen on (port 0: any free port, see --port-file)")
      ->capture_default_str();
  cmd->add_option("--regime", a->regime, "Training regime of the bank to serve")
      ->check(CLI::IsMember({"robust", "noiseless"}))->capture_default_str();
  cmd->add_option("--ratios", a->ratios, "Ratios to serve (default: every comm.ratios with a trained file)");
  cmd->add_option("--mode", a->mode, "Selection mode the devices use")
      ->check(CLI::IsMember({"hard", "soft"}))->capture_default_str();
  cmd->add_option("--max-batch", a->batching.max_batch, "Most requests decoded together (across devices)")
      ->capture_default_str()->check(kFinitePositive);
  cmd->add_option("--max-wait-ms", a->batching.max_wait_ms, "Longest a request waits for its batch to fill")
      ->capture_default_str()->check(kFiniteNonNegative);
  cmd->add_option("--queue", a->batching.queue_capacity,
                  "Requests waiting over all devices before reads block (back-pressure)")
      ->capture_default_str()->check(kFinitePositive);
  cmd->add_option("--max-message-bytes", a->max_message_bytes,
                  "Largest request accepted (0: the largest valid payload + 64 KiB)")
      ->capture_default_str()->check(kFiniteNonNegative);
  cmd->add_option("--tls-cert", a->tls_cert, "PEM server certificate (TLS; with --tls-key)");
  cmd->add_option("--tls-key", a->tls_key, "PEM private key of --tls-cert");
  cmd->add_option("--auth-token-file", a->auth_token_file,
                  "File whose first line is a shared token every device must send (off by default)");
  cmd->add_option("--drain-timeout", a->drain_timeout_s, "Seconds in-flight requests get on shutdown")
      ->capture_default_str()->check(kFiniteNonNegative);
  cmd->add_option("--metrics-interval", a->metrics_interval_s, "Seconds between metrics lines (0: only at exit)")
      ->capture_default_str()->check(kFiniteNonNegative);
  cmd->add_option("--port-file", a->port_file, "Write the bound port to this file once listening");
  cmd->add_option("--http", a->http,
                  "Also serve a live page of the deployment (devices, decisions, queues, zeta vs zeta_max, accuracy, "
                  "latency), /metrics (Prometheus) and /healthz over HTTP on PORT (127.0.0.1) or host:port; the "
                  "token and TLS certificate of the gRPC side apply (docs/serve.md)");
  cmd->add_option("--http-port-file", a->http_port_file, "Write the HTTP port to this file once listening");
  cmd->add_option("--table", a->table,
                  "Proxy table CSV: run the Lyapunov controller here, one per device stream (control requests; "
                  "`tokcom device --controller server`)");
  cmd->add_option("--table-method", a->table_method, "Keep table rows of this method");
  cmd->add_option("--table-channel", a->table_channel, "Keep table rows of this channel");
  cmd->add_option("--V", a->control.tradeoff, "Controller trade-off V (a device's first control request may bring "
                                              "its own state instead)")
      ->capture_default_str()
      ->check(kFinitePositive);
  cmd->add_option("--mu", a->control.queue_step, "Controller queue step μ")
      ->capture_default_str()
      ->check(kFinitePositive);
  cmd->add_option("--zeta-max", a->control.zeta_max, "Controller long-term ζ bound")
      ->capture_default_str()
      ->check(kFinitePositive);
  cmd->add_option("overrides", a->overrides, "key.sub=value overrides of the bank's config (e.g. train.device=cuda)");
  cmd->footer("Example: tokcom serve --checkpoint-dir runs/fmnist-bank --listen 127.0.0.1:50051 --http 8080\n"
              "         then open http://127.0.0.1:8080/ (Prometheus: scrape http://127.0.0.1:8080/metrics)");
  set_action(cmd, [a] { run_serve(*a); });
}

}  // namespace
TOKCOM_REGISTER_COMMAND(70, add_serve);
}  // namespace tokcom::cli

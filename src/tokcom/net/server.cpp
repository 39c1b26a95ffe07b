#include "tokcom/net/server.h"

#include <chrono>
#include <cmath>
#include <iterator>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "edge.grpc.pb.h"
#include "tokcom/comm/jscc.h"
#include "tokcom/comm/zeta.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/net/credentials.h"
#include "tokcom/model/vit.h"
#include "tokcom/split/proposal.h"

namespace tokcom::net {
namespace {

// gRPC's name of a status code, for the monitor ("OK", "CANCELLED", ...).
std::string status_name(grpc::StatusCode code) {
  static const char* names[] = {"OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
                                "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS",    "PERMISSION_DENIED",
                                "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(names)) ? names[i] : std::to_string(i);
}

// One device stream's bookkeeping: how many of its requests are still in the batcher, and
// serialised writes (the batcher's worker writes while the stream's thread reads).
struct StreamState {
  grpc::ServerReaderWriter<v1::Prediction, v1::InferRequest>* stream = nullptr;
  std::mutex write_mutex, mutex;
  std::condition_variable idle;
  int64_t pending = 0;
  std::string error;  // first decode failure
  std::unique_ptr<LyapunovController> controller;  // server-side control; used by the reader thread only

  void finish_one() {
    std::lock_guard<std::mutex> lock(mutex);
    if (--pending == 0) idle.notify_all();
  }
};

}  // namespace

class EdgeServer::Service final : public v1::EdgeInference::Service {
 public:
  explicit Service(EdgeServer* owner) : owner_(owner) {}

  grpc::Status Info(grpc::ServerContext* context, const v1::InfoRequest*, v1::ModelInfo* out) override {
    if (grpc::Status s = authorise(context); !s.ok()) return s;
    to_info(owner_->served_, out);
    return grpc::Status::OK;
  }

  grpc::Status Infer(grpc::ServerContext* context,
                     grpc::ServerReaderWriter<v1::Prediction, v1::InferRequest>* stream) override {
    if (grpc::Status s = authorise(context); !s.ok()) return s;
    owner_->metrics_.stream_opened();
    const auto& metadata = context->client_metadata();
    const auto named = metadata.find("tokcom-device");
    DeploymentMonitor* monitor = &owner_->monitor_;
    const int64_t device = monitor->open(
        named == metadata.end() ? std::string() : std::string(named->second.data(), named->second.size()),
        context->peer());
    grpc::Status final_status = infer(context, stream, device);
    monitor->close(device, context->IsCancelled() ? "CANCELLED" : status_name(final_status.error_code()));
    return final_status;
  }

 private:
  // One device stream, from its first request to its status (Infer's body; `device` is its monitor id).
  grpc::Status infer(grpc::ServerContext* context, grpc::ServerReaderWriter<v1::Prediction, v1::InferRequest>* stream,
                     int64_t device) {
    DeploymentMonitor* monitor = &owner_->monitor_;
    struct Connected {  // the batcher knows how many devices may still send
      Batcher* batcher;
      explicit Connected(Batcher* b) : batcher(b) { batcher->stream_opened(); }
      ~Connected() { batcher->stream_closed(); }
    } connected(owner_->batcher_.get());
    auto state = std::make_shared<StreamState>();
    state->stream = stream;
    ServerMetrics* metrics = &owner_->metrics_;
    grpc::Status status = grpc::Status::OK;
    v1::InferRequest request;
    while (!owner_->draining_.load() && stream->Read(&request)) {
      metrics->request_received();
      if (!request.has_payload() && request.has_control()) {  // a pure control request
        status = answer_control(request, *state);
        if (!status.ok()) {
          monitor->failed(device);
          break;
        }
        continue;
      }
      DecodedRequest decoded;
      try {
        decoded = from_message(request.payload(), owner_->served_);
        if (owner_->options_.check_payload) owner_->options_.check_payload(decoded.payload);
      } catch (const Error& e) {
        metrics->request_failed();
        monitor->failed(device);
        status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("request_id {}: {}",
                                                                              request.request_id(), e.what()));
        break;
      }
      Job job;
      // ζ the device actually sent (METHOD §5.5), for this stream's controller: counted where ζ always is.
      const double sent_zeta =
          decoded.payload.is_digital() ? std::nan("") : zeta(decoded.payload, 0, owner_->served_.input_values);
      monitor->slot(device, decoded.report, sent_zeta);
      job.payload = std::move(decoded.payload);
      job.cancelled = [context] { return context->IsCancelled(); };
      const uint64_t id = request.request_id();
      const int64_t image_id = decoded.image_id;
      const auto enqueued = job.enqueued;
      const int64_t true_label = decoded.report.label;
      job.done = [state, metrics, monitor, device, true_label, id, image_id, enqueued](const torch::Tensor& logits,
                                                                                       int64_t batch) {
        v1::Prediction p;
        p.set_request_id(id);
        p.set_image_id(image_id);
        const int64_t predicted = logits.argmax().item<int64_t>();
        p.set_label(static_cast<int32_t>(predicted));
        monitor->answered(device, true_label, predicted);
        p.set_batch_size(static_cast<uint32_t>(batch));
        const torch::Tensor scores = logits.contiguous();
        p.mutable_scores()->Add(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
        // Counted before the write, so a device that has its answer also sees it in the metrics.
        metrics->request_done(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - enqueued).count());
        {
          std::lock_guard<std::mutex> lock(state->write_mutex);
          state->stream->Write(p);  // false when the device is gone: nothing to do, others go on
        }
        state->finish_one();
      };
      job.failed = [state](const std::string& why) {
        {
          std::lock_guard<std::mutex> lock(state->mutex);
          if (state->error.empty()) state->error = why;
        }
        state->finish_one();
      };
      {
        std::lock_guard<std::mutex> lock(state->mutex);
        ++state->pending;
      }
      if (!owner_->batcher_->submit(job)) {
        state->finish_one();
        break;
      }
      if (state->controller) state->controller->observe(sent_zeta);  // as a device-side controller would
      if (request.has_control()) {
        status = answer_control(request, *state);
        if (!status.ok()) {
          monitor->failed(device);
          break;
        }
      }
    }
    {
      // Every request already read is answered before the stream ends (the drain).
      std::unique_lock<std::mutex> lock(state->mutex);
      state->idle.wait(lock, [&] { return state->pending == 0; });
    }
    if (!status.ok()) return status;
    if (!state->error.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, state->error);
    if (owner_->draining_.load() && !context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down: every request read was answered");
    }
    return grpc::Status::OK;
  }

  // The next decision from this stream's controller (made on first use, from the request's state
  // or the server's options), written at once; INVALID_ARGUMENT naming the field otherwise.
  grpc::Status answer_control(const v1::InferRequest& request, StreamState& state) {
    const auto fail = [&](const std::string& why) {
      owner_->metrics_.request_failed();
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, fmt::format("request_id {}: {}", request.request_id(), why));
    };
    const ProxyTable* table = owner_->options_.table.get();
    if (table == nullptr) return fail("control: this server runs no controller (start `tokcom serve` with --table)");
    const v1::ControlRequest& c = request.control();
    if (!std::isfinite(c.snr_db())) return fail(fmt::format("control.snr_db is {}, expected a finite SNR in dB", c.snr_db()));
    try {
      if (!c.state().empty()) {
        state.controller = std::make_unique<LyapunovController>(LyapunovController::from_state(*table, c.state()));
      } else if (!state.controller) {
        state.controller = std::make_unique<LyapunovController>(*table, owner_->options_.control);
      }
    } catch (const Error& e) {
      return fail(std::string("control.state: ") + e.what());
    }
    const double queue = state.controller->queue();
    const Decision d = state.controller->decide(c.snr_db());
    v1::Prediction p;
    p.set_request_id(request.request_id());
    p.set_label(-1);
    v1::Decision* out = p.mutable_decision();
    out->set_budget(d.budget);
    out->set_ratio(d.ratio);
    out->set_ratio_index(static_cast<int32_t>(d.ratio_index));
    out->set_queue(queue);
    owner_->metrics_.decision_made();
    std::lock_guard<std::mutex> lock(state.write_mutex);
    state.stream->Write(p);
    return grpc::Status::OK;
  }

  grpc::Status authorise(grpc::ServerContext* context) const {
    const std::string& token = owner_->options_.auth_token;
    if (token.empty()) return grpc::Status::OK;
    const auto& metadata = context->client_metadata();
    const auto it = metadata.find("authorization");
    const std::string presented = it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
    if (!same_secret(presented, "Bearer " + token)) {
      owner_->metrics_.request_failed();
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing or wrong 'authorization: Bearer <token>' metadata");
    }
    return grpc::Status::OK;
  }

  EdgeServer* owner_;
};

EdgeServer::EdgeServer(std::shared_ptr<ServerHalf> server_half, ServedModel served, ServeOptions options)
    : served_(std::move(served)), options_(std::move(options)) {
  if (options_.tls_cert.empty() != options_.tls_key.empty()) {
    throw UsageError("serve: give both --tls-cert and --tls-key, or neither");
  }
  if (options_.table) {
    // The controller's ratios must be codes the served bank has.
    for (double r : options_.table->ratios()) {
      if (served_.ratio_index_of(r) < 0) {
        throw UsageError(fmt::format("serve: the proxy table's r = {} is not in the served bank [{}]", r,
                                     fmt::join(served_.ratios, ", ")));
      }
    }
    served_.controller = true;
  }
  batcher_ = std::make_unique<Batcher>(std::move(server_half), options_.device, options_.batching, &metrics_);
  service_ = std::make_unique<Service>(this);
}

EdgeServer::~EdgeServer() {
  if (server_) shutdown();
}

void EdgeServer::start() {
  // host:port with a port in 0–65535 (0 = any free port).
  const size_t colon = options_.listen.rfind(':');
  if (colon == std::string::npos || !listen_port(options_.listen.substr(colon + 1)))
    throw UsageError(fmt::format("serve: --listen '{}': expected host:port with a port in 1–65535 (0 = any free port)",
                                 options_.listen));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // The port is this server's alone: without it a second `serve` on a held port started and took a
  // share of the devices' connections (SO_REUSEPORT), bypassing the first one's token.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options_.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    const std::string key = read_pem(options_.tls_key, "--tls-key"), cert = read_pem(options_.tls_cert, "--tls-cert");
    check_tls_pair(cert, options_.tls_cert, key, options_.tls_key);
    ssl.pem_key_cert_pairs.push_back({key, cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(options_.listen, credentials, &port_);
  const int64_t max_bytes =
      options_.max_message_bytes > 0 ? options_.max_message_bytes : max_payload_bytes(served_) + (64 << 10);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(max_bytes, INT32_MAX)));
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) {
    server_.reset();
    throw UsageError(fmt::format("serve: cannot listen on '{}': the address is in use by another process, or its host "
                                 "is not an address of this machine (expected host:port)",
                                 options_.listen));
  }
  server_->GetHealthCheckService()->SetServingStatus(true);
  started_unix_ = unix_now();
  spdlog::info("serving {} ({} mode, {} ratios, max batch {}, max wait {} ms) on port {}{}{}", served_.method,
               served_.mode, served_.ratios.size(), options_.batching.max_batch, options_.batching.max_wait_ms, port_,
               options_.tls_cert.empty() ? "" : ", TLS", options_.auth_token.empty() ? "" : ", token auth");
  if (options_.metrics_interval_s > 0) {
    metrics_thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto period = std::chrono::milliseconds(static_cast<int64_t>(options_.metrics_interval_s * 1000));
      while (!stopped_cv_.wait_for(lock, period, [&] { return shutting_down_; })) {
        spdlog::info("metrics: {}", metrics_.summary());
      }
    });
  }
}

void EdgeServer::shutdown() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (shutting_down_) {
      stopped_cv_.wait(lock, [&] { return stopped_; });
      return;
    }
    shutting_down_ = true;
  }
  stopped_cv_.notify_all();
  if (metrics_thread_.joinable()) metrics_thread_.join();
  spdlog::info("shutting down: draining in-flight requests (up to {} s)", options_.drain_timeout_s);
  draining_ = true;
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(options_.drain_timeout_s * 1000)));
  }
  batcher_->stop();
  spdlog::info("final metrics: {}", metrics_.summary());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
  }
  stopped_cv_.notify_all();
}

void EdgeServer::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  stopped_cv_.wait(lock, [&] { return stopped_; });
}

std::optional<int> listen_port(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const int port = std::stoi(text);
  return port <= 65535 ? std::optional<int>(port) : std::nullopt;
}

ServedModel served_model(const Config& config, const std::vector<double>& ratios, const std::string& regime,
                         const std::string& mode) {
  const VitOptions vit = vit_options_from_config(config);
  ServedModel m;
  m.method = vit.adaptive_blocks().empty() ? "vit-ae" : "proposal";
  m.mode = mode;
  m.regime = regime;
  m.ratios = ratios;
  const TokenScale scale = token_scale_from_config(config);
  for (double r : ratios)
    m.symbols_per_token.push_back(sent_symbols_per_token(symbols_per_token(vit.dim(), r), scale,
                                                         !vit.adaptive_blocks().empty()));
  m.max_tokens = 1 + vit.num_patches() + (vit.adaptive_blocks().empty() ? 0 : 1);
  m.num_classes = vit.num_classes();
  m.input_values = input_values(config);
  return m;
}

ServedModel served_digital_model(const Config& config, const std::string& codec, int64_t max_codec_bytes) {
  const VitOptions vit = vit_options_from_config(config);
  ServedModel m;
  m.method = codec;
  m.mode = "hard";
  m.regime = "none";
  m.num_classes = vit.num_classes();
  m.input_values = input_values(config);
  m.max_codec_bytes = max_codec_bytes;
  return m;
}

}  // namespace tokcom::net

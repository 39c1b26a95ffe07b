#include "tokcom/net/client.h"

#include <cmath>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "edge.grpc.pb.h"
#include "health.grpc.pb.h"
#include "tokcom/core/errors.h"
#include "tokcom/net/credentials.h"

namespace tokcom::net {
namespace {

std::string status_text(const grpc::Status& s) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                "UNAUTHENTICATED"};
  const int code = static_cast<int>(s.error_code());
  return fmt::format("{}: {}", code >= 0 && code <= 16 ? names[code] : "?", s.error_message());
}

// The server went away (killed: UNAVAILABLE; shut down: UNAVAILABLE after its drain, or CANCELLED
// when the drain timed out). This client never cancels a stream it still uses.
bool server_went_away(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::CANCELLED;
}

bool same_model(const ServedModel& a, const ServedModel& b) {
  return a.method == b.method && a.mode == b.mode && a.regime == b.regime && a.ratios == b.ratios &&
         a.symbols_per_token == b.symbols_per_token && a.max_tokens == b.max_tokens &&
         a.num_classes == b.num_classes && a.input_values == b.input_values && a.controller == b.controller &&
         a.max_codec_bytes == b.max_codec_bytes;
}

std::chrono::system_clock::time_point after(double seconds) {
  return std::chrono::system_clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

}  // namespace

class EdgeClient::Impl {
 public:
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::EdgeInference::Stub> stub;
  std::unique_ptr<grpc::ClientContext> stream_context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::InferRequest, v1::Prediction>> stream;
  bool finished = false;
  grpc::Status final_status;
  std::string address, token;

  void authorise(grpc::ClientContext* c) const {
    if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
  }
  // The stream's status after the server ended it: StreamLost when the server went away,
  // NetworkError otherwise.
  [[noreturn]] void fail(const std::string& during) {
    if (!finished) {
      stream->WritesDone();
      final_status = stream->Finish();
      finished = true;
    }
    const std::string message = fmt::format("server {} ended the stream during {}: {}", address, during,
                                            final_status.ok() ? std::string("OK (no more predictions)")
                                                              : status_text(final_status));
    if (server_went_away(final_status)) throw StreamLost(message);
    throw NetworkError(message);
  }
  // The server's Info, waiting for the channel up to `deadline`.
  grpc::Status info(std::chrono::system_clock::time_point deadline, v1::ModelInfo* out) {
    grpc::ClientContext context;
    authorise(&context);
    context.set_deadline(deadline);
    context.set_wait_for_ready(true);
    return stub->Info(&context, v1::InfoRequest(), out);
  }
};

EdgeClient::EdgeClient(ClientOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  // gRPC metadata values are printable ASCII; anything else would abort inside gRPC.
  if (options_.device_name.size() > 64 ||
      std::any_of(options_.device_name.begin(), options_.device_name.end(), [](char c) { return c < 0x20 || c > 0x7e; }))
    throw UsageError(fmt::format("device name '{}': expected at most 64 printable ASCII characters",
                                 options_.device_name));
  impl_->address = options_.address;
  impl_->token = options_.auth_token;
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options_.tls_ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = read_pem(options_.tls_ca, "--tls-ca");
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  // gRPC's own reconnection backoff (1 s, growing to 120 s) would outlast a restart of the server;
  // reconnect() paces the attempts itself.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  impl_->channel = grpc::CreateCustomChannel(options_.address, credentials, args);
  const auto deadline = after(options_.connect_timeout_s);
  if (!impl_->channel->WaitForConnected(deadline)) {
    throw NetworkError(fmt::format("server {}: not reachable within {} s (is `tokcom serve` running there?)",
                                   options_.address, options_.connect_timeout_s));
  }
  impl_->stub = v1::EdgeInference::NewStub(impl_->channel);
  v1::ModelInfo info;
  const grpc::Status s = impl_->info(deadline, &info);
  if (!s.ok()) throw NetworkError(fmt::format("server {}: Info failed: {}", options_.address, status_text(s)));
  served_ = from_info(info);
  open_stream();
}

void EdgeClient::open_stream() {
  impl_->stream_context = std::make_unique<grpc::ClientContext>();
  impl_->authorise(impl_->stream_context.get());
  if (!options_.device_name.empty()) impl_->stream_context->AddMetadata("tokcom-device", options_.device_name);
  if (options_.stream_deadline_s > 0) impl_->stream_context->set_deadline(after(options_.stream_deadline_s));
  impl_->stream = impl_->stub->Infer(impl_->stream_context.get());
  impl_->finished = false;
  impl_->final_status = grpc::Status::OK;
}

void EdgeClient::reconnect(const StreamLost& lost) {
  if (options_.reconnect_s <= 0) throw lost;
  if (!impl_->finished) {  // fail() has always finished it; be safe for a caller's own StreamLost
    impl_->stream_context->TryCancel();
    impl_->stream->Finish();
    impl_->finished = true;
  }
  const auto start = std::chrono::steady_clock::now();
  const auto give_up = start + std::chrono::microseconds(static_cast<int64_t>(options_.reconnect_s * 1e6));
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.8, 1.2);  // devices restarted together spread out
  double wait_s = 0.1;
  int attempts = 0;
  std::string last;
  while (std::chrono::steady_clock::now() < give_up) {
    ++attempts;
    const auto window_end = std::min(std::chrono::steady_clock::now() +
                                         std::chrono::microseconds(static_cast<int64_t>(wait_s * jitter(rng) * 1e6)),
                                     give_up);
    const double window_s = std::chrono::duration<double>(window_end - std::chrono::steady_clock::now()).count();
    v1::ModelInfo info;
    const grpc::Status s = impl_->info(after(std::max(0.0, window_s)), &info);
    if (s.ok()) {
      const ServedModel back = from_info(info);
      if (!same_model(back, served_)) {
        throw UsageError(fmt::format("server {} came back serving another model ('{}', ratios [{}]; this run began "
                                     "with '{}', ratios [{}]): its answers would not continue this run",
                                     options_.address, back.method, fmt::join(back.ratios, ", "), served_.method,
                                     fmt::join(served_.ratios, ", ")));
      }
      open_stream();
      ++reconnects_;
      spdlog::warn("{} — reconnected after {} attempt(s), {:.2f} s; resending what was not answered", lost.detail(),
                   attempts, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      return;
    }
    if (!server_went_away(s) && s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      throw NetworkError(fmt::format("{} — reconnecting: Info failed: {}", lost.detail(), status_text(s)));
    }
    last = status_text(s);
    std::this_thread::sleep_until(window_end);
    wait_s = std::min(2.0, wait_s * 2.0);
  }
  throw NetworkError(fmt::format("{} — and it did not come back within {} s ({} attempts; last: {})", lost.detail(),
                                 options_.reconnect_s, attempts, last));
}

EdgeClient::~EdgeClient() {
  if (impl_ && impl_->stream && !impl_->finished) {
    impl_->stream_context->TryCancel();
    impl_->stream->Finish();
  }
}

bool EdgeClient::healthy() {
  auto stub = grpc::health::v1::Health::NewStub(impl_->channel);
  grpc::ClientContext context;
  impl_->authorise(&context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status s = stub->Check(&context, grpc::health::v1::HealthCheckRequest(), &response);
  return s.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

void EdgeClient::send(const Payload& payload, int64_t b, double ratio, uint64_t request_id, const SlotNote* note,
                      bool send_label) {
  v1::InferRequest request;
  request.set_request_id(request_id);
  to_message(payload, b, ratio, request.mutable_payload());
  if (note) {
    v1::Payload* p = request.mutable_payload();
    p->set_snr_db(note->snr_db);
    p->set_budget(note->budget);
    p->set_queue(note->queue);
    p->set_zeta_max(note->zeta_max);
    if (send_label && note->label >= 0) p->set_label(static_cast<int32_t>(note->label));
  }
  if (impl_->finished || !impl_->stream->Write(request)) impl_->fail("send");
}

void EdgeClient::send_raw(const std::string& serialized) {
  v1::InferRequest request;
  if (!request.ParseFromString(serialized)) throw UsageError("send_raw: not a serialized InferRequest");
  if (impl_->finished || !impl_->stream->Write(request)) impl_->fail("send");
}

Prediction EdgeClient::receive() {
  v1::Prediction p;
  if (impl_->finished || !impl_->stream->Read(&p)) impl_->fail("receive");
  Prediction out;
  out.request_id = p.request_id();
  out.image_id = p.image_id();
  out.label = p.label();
  out.scores.assign(p.scores().begin(), p.scores().end());
  out.batch_size = p.batch_size();
  return out;
}

Decision EdgeClient::decide(double snr_db, const std::string& state, uint64_t request_id, double* queue) {
  v1::InferRequest request;
  request.set_request_id(request_id);
  request.mutable_control()->set_snr_db(snr_db);
  if (!state.empty()) request.mutable_control()->set_state(state);
  if (impl_->finished || !impl_->stream->Write(request)) impl_->fail("send");
  v1::Prediction p;
  if (impl_->finished || !impl_->stream->Read(&p)) impl_->fail("receive");
  if (p.request_id() != request_id || !p.has_decision()) {
    throw NetworkError(fmt::format("server sent message {} ({}), expected the decision for control request {}",
                                   p.request_id(), p.has_decision() ? "a decision" : "a prediction", request_id));
  }
  Decision d;
  d.budget = p.decision().budget();
  d.ratio = p.decision().ratio();
  d.ratio_index = p.decision().ratio_index();
  if (queue) *queue = p.decision().queue();
  return d;
}

void EdgeClient::finish() {
  if (impl_->finished) {
    if (!impl_->final_status.ok()) impl_->fail("finish");
    return;
  }
  impl_->stream->WritesDone();
  v1::Prediction extra;
  while (impl_->stream->Read(&extra)) {
  }
  impl_->final_status = impl_->stream->Finish();
  impl_->finished = true;
  if (options_.reconnect_s > 0 && server_went_away(impl_->final_status)) {
    // Called after every answer came: a server gone now has nothing of this run left to answer.
    spdlog::warn("server {}: the stream ended {} after the last answer", options_.address,
                 status_text(impl_->final_status));
    return;
  }
  if (!impl_->final_status.ok()) impl_->fail("finish");
}

RemoteServer::RemoteServer(std::shared_ptr<EdgeClient> client, std::vector<double> device_ratios)
    : client_(std::move(client)), ratios_(std::move(device_ratios)) {
  for (double r : ratios_) {
    if (client_->served().ratio_index_of(r) < 0) {
      throw UsageError(fmt::format("the server's bank [{}] has no JSCC code for r = {} of the device's bank",
                                   fmt::join(client_->served().ratios, ", "), r));
    }
  }
}

RemoteController::RemoteController(std::shared_ptr<EdgeClient> client, std::vector<double> device_ratios)
    : client_(std::move(client)), ratios_(std::move(device_ratios)) {
  if (!client_->served().controller) {
    throw UsageError("--controller server: this server runs no controller (start `tokcom serve` with --table)");
  }
}

void RemoteController::begin(const LyapunovController& mirror) {
  mirror_ = &mirror;
  stream_ = -1;  // the run's first decision carries the state
}

Decision RemoteController::decide(double snr_db, double* queue) {
  const uint64_t id = next_id_++;
  Decision d;
  for (;;) {
    const bool send_state = mirror_ && stream_ != client_->reconnects();
    try {
      d = client_->decide(snr_db, send_state ? mirror_->save_state() : std::string(), id, queue);
      stream_ = client_->reconnects();
      break;
    } catch (const StreamLost& lost) {
      client_->reconnect(lost);  // rethrows unless the server is back; then ask again, same id
    }
  }
  int64_t index = -1;
  for (size_t i = 0; i < ratios_.size(); ++i)
    if (std::abs(ratios_[i] - d.ratio) <= 1e-9) index = static_cast<int64_t>(i);
  if (index < 0 || !(d.budget > 0.0 && d.budget <= 1.0)) {
    throw NetworkError(fmt::format("server decided (α {}, r {}), expected α in (0, 1] and r in this device's bank [{}]",
                                   d.budget, d.ratio, fmt::join(ratios_, ", ")));
  }
  d.ratio_index = index;
  return d;
}

void RemoteServer::note(const SlotNote& slot, bool send_label) {
  note_ = slot;
  send_label_ = send_label;
}

torch::Tensor RemoteServer::decode(const Payload& received) {
  const int64_t batch = received.batch_size();
  const bool digital = received.is_digital();
  if (!digital && (received.ratio_index < 0 || received.ratio_index >= static_cast<int64_t>(ratios_.size()))) {
    throw FormatError(fmt::format("RemoteServer::decode: payload.ratio_index is {}, expected in [0, {})",
                                  received.ratio_index, ratios_.size()));
  }
  const uint64_t first = next_id_;
  next_id_ += static_cast<uint64_t>(batch);
  const SlotNote* note = note_ && batch == 1 ? &*note_ : nullptr;  // a slot is one image
  const double ratio = digital ? 0.0 : ratios_[received.ratio_index];
  torch::Tensor logits = torch::empty({batch, client_->served().num_classes}, torch::kFloat);
  std::vector<bool> answered(static_cast<size_t>(batch), false);
  int64_t left = batch;
  for (;;) {
    try {
      for (int64_t b = 0; b < batch; ++b)
        if (!answered[b]) client_->send(received, b, ratio, first + static_cast<uint64_t>(b), note, send_label_);
      while (left > 0) {
        Prediction p = client_->receive();
        const int64_t row = static_cast<int64_t>(p.request_id - first);
        if (row < 0 || row >= batch || static_cast<int64_t>(p.scores.size()) != logits.size(1)) {
          throw NetworkError(fmt::format("server sent prediction {} with {} scores, expected an id in [{}, {}) and {} "
                                         "scores",
                                         p.request_id, p.scores.size(), first, first + batch, logits.size(1)));
        }
        if (answered[row]) continue;  // an id answered twice counts once: retries are idempotent
        std::copy(p.scores.begin(), p.scores.end(), logits[row].data_ptr<float>());
        answered[row] = true;
        --left;
      }
      break;
    } catch (const StreamLost& lost) {
      client_->reconnect(lost);  // rethrows unless the server is back; then resend the unanswered
    }
  }
  note_.reset();
  return digital ? logits : logits.to(received.symbols.device());
}

}  // namespace tokcom::net

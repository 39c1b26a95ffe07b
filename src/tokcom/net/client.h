// net/client.h — the device side of the service: a connection to an edge server (Info, health,
// one Infer stream) and RemoteServer, a ServerHalf whose decode() is a round trip, so the
// in-process deployment loop (control/deploy.h) runs unchanged against a real server.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tokcom/comm/payload.h"
#include "tokcom/core/errors.h"
#include "tokcom/control/deploy.h"
#include "tokcom/net/wire.h"
#include "tokcom/split/split_model.h"

namespace tokcom::net {

struct ClientOptions {
  std::string address;            // host:port
  std::string tls_ca;             // PEM path: TLS with this root (empty: plaintext)
  std::string auth_token;         // sent as "authorization: Bearer <token>" when non-empty
  double connect_timeout_s = 10;  // how long to wait for the server to come up
  int64_t max_message_bytes = 64 << 20;
  std::string device_name;        // sent as "tokcom-device" metadata (the server's monitor shows it)
  double stream_deadline_s = 0;   // > 0: the Infer stream ends DEADLINE_EXCEEDED this long after it opens
  // > 0: when the server goes away mid-run (the stream ends UNAVAILABLE, or CANCELLED by the
  // server's shutdown), reconnect with exponential backoff for up to this long, check that the
  // server serves the same model, and resend every request not yet answered under its own id
  // (RemoteServer, RemoteController). 0: such an end is a NetworkError at once.
  double reconnect_s = 0;
};

// The stream ended because the server went away (UNAVAILABLE, or CANCELLED by its shutdown): a
// restarted server can take the unanswered requests again. Any other end (INVALID_ARGUMENT,
// UNAUTHENTICATED, DEADLINE_EXCEEDED, ...) is the request's or the device's fault: a plain
// NetworkError, never retried.
class StreamLost : public tokcom::NetworkError {
 public:
  explicit StreamLost(const std::string& m) : NetworkError(m), detail_(m) {}
  const std::string& detail() const { return detail_; }  // the message without the error's name

 private:
  std::string detail_;
};

struct Prediction {
  uint64_t request_id = 0;
  int64_t image_id = 0;
  int64_t label = -1;
  std::vector<float> scores;  // logits
  int64_t batch_size = 0;     // requests the server decoded together with this one
};

class EdgeClient {
 public:
  // Connects (waiting up to connect_timeout_s) and reads the server's Info. NetworkError naming
  // the address and the gRPC status when the server is unreachable or refuses the call.
  explicit EdgeClient(ClientOptions options);
  ~EdgeClient();
  EdgeClient(const EdgeClient&) = delete;
  EdgeClient& operator=(const EdgeClient&) = delete;

  const ServedModel& served() const { return served_; }
  // gRPC health check of the whole server: true when SERVING.
  bool healthy();

  // Stream API (pipelined: several sends may precede the receives). send() writes sample b of a
  // token payload, r = `ratio`; receive() blocks for the next prediction. Both throw NetworkError
  // with the stream's final status when the server ended it (e.g. INVALID_ARGUMENT naming a field).
  // `note` (optional) fills the payload's monitoring fields (snr_db, budget, queue, zeta_max, and
  // label when send_label).
  void send(const Payload& payload, int64_t b, double ratio, uint64_t request_id, const SlotNote* note = nullptr,
            bool send_label = false);
  // Sends a raw message (tests: malformed requests are built by hand).
  void send_raw(const std::string& serialized_request);
  Prediction receive();
  // Server-side control (served().controller): sends a control request for a slot at `snr_db`
  // (starting the stream's controller from `state` when non-empty) and waits for the decision;
  // *queue = the Z it was taken at. Call with no prediction pending. NetworkError as receive().
  Decision decide(double snr_db, const std::string& state, uint64_t request_id, double* queue);
  // Half-closes the stream and waits for its status (after every receive). NetworkError unless OK.
  void finish();
  // After a StreamLost: waits for the server with exponential backoff (0.1 s doubling to 2 s,
  // ±20 % jitter) for up to reconnect_s, re-reads its Info and opens a new stream. Rethrows `lost`
  // when reconnect_s is 0 or the server did not come back in time (NetworkError naming both);
  // UsageError when it came back serving another model. The caller resends what is unanswered.
  void reconnect(const StreamLost& lost);
  // Streams opened after the first (each one a new server-side controller: resend its state).
  int64_t reconnects() const { return reconnects_; }

  class Impl;

 private:
  void open_stream();

  ClientOptions options_;
  ServedModel served_;
  std::unique_ptr<Impl> impl_;
  int64_t reconnects_ = 0;
};

// A ServerHalf on the other side of the network: decode() sends each sample and waits for its
// prediction; the logits come back as the server computed them. Each sample has its own request
// id; after a reconnect (ClientOptions::reconnect_s) the unanswered ones are sent again under the
// same ids, and an answer to an id already answered is dropped, so every sample counts once. `device_ratios[i]` is the r of the
// device's ratio index i (the server matches by value; UsageError if the server lacks one).
class RemoteServer final : public ServerHalf {
 public:
  RemoteServer(std::shared_ptr<EdgeClient> client, std::vector<double> device_ratios);
  torch::Tensor decode(const Payload& received) override;
  // The next decode's slot (DeployOptions::note): sent beside its payload for the server's monitor;
  // the true label only with send_label (`tokcom device --send-labels`).
  void note(const SlotNote& slot, bool send_label);

 private:
  std::shared_ptr<EdgeClient> client_;
  std::vector<double> ratios_;
  uint64_t next_id_ = 0;
  std::optional<SlotNote> note_;
  bool send_label_ = false;
};

// The edge server's controller as deploy()'s decision source (`tokcom device --controller server`).
// UsageError if the server runs no controller or its table has ratios the device's bank lacks.
class RemoteController final : public RemoteDecider {
 public:
  RemoteController(std::shared_ptr<EdgeClient> client, std::vector<double> device_ratios);
  void begin(const LyapunovController& mirror) override;
  // After a reconnect the new stream's controller starts from the mirror's state at this slot
  // (decide() does not change a controller's state; observe() does, after the slot).
  Decision decide(double snr_db, double* queue) override;

 private:
  std::shared_ptr<EdgeClient> client_;
  std::vector<double> ratios_;
  const LyapunovController* mirror_ = nullptr;
  int64_t stream_ = -1;  // client_->reconnects() when the state was last sent
  uint64_t next_id_ = uint64_t{1} << 63;  // apart from the payloads' ids
};

}  // namespace tokcom::net

// net/wire.h — the in-process Payload ⇄ the protocol's messages (proto/edge.proto), and the
// validation every request passes before it reaches the model (issue "deployment": every field
// checked, a bad message named by its field, never a crash).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/comm/payload.h"

namespace tokcom::v1 {
class Payload;
class ModelInfo;
}  // namespace tokcom::v1

namespace tokcom::net {

// What a server serves (read from its bank), sent to devices by the Info RPC and used to check
// every request.
struct ServedModel {
  std::string method;                       // "proposal" | "vit-ae"
  std::string mode = "hard";                // selection mode the device must use
  std::string regime;                       // training regime of the bank
  std::vector<double> ratios;               // the bank, in the server's order
  std::vector<int64_t> symbols_per_token;   // d_r per ratio
  int64_t max_tokens = 0;                   // 1 + N (+ 1 budget token for adaptive models)
  int64_t num_classes = 0;
  int64_t input_values = 0;                 // n of ζ = k / n
  bool controller = false;                  // runs the Lyapunov controller (control requests)
  // Digital methods (resize, jpeg, webp, avif): the largest encoded image accepted; 0 for token methods.
  int64_t max_codec_bytes = 0;

  bool digital() const { return max_codec_bytes > 0; }

  // Server index of ratio r (|r − ratios[i]| ≤ 1e-9), or −1.
  int64_t ratio_index_of(double r) const;
};

// Most bytes one payload may carry: every token at the widest code (digital: max_codec_bytes).
int64_t max_payload_bytes(const ServedModel& model);

// Sample `b` of a payload (any device) → message. Token payloads: padded slots (token_mask false)
// are not sent; `ratio` is the r of payload.ratio_index in the sender's bank. Digital payloads:
// the encoded image in codec_bytes (ratio 0, no symbols). UsageError for a CNN map payload.
void to_message(const Payload& payload, int64_t b, double ratio, v1::Payload* out);

// What a request says about its slot, for the server's monitor (never used to classify):
// the payload's informative fields; 0 / −1 where the device did not say.
struct SlotReport {
  double snr_db = 0, budget = 0, ratio = 0, queue = 0, zeta_max = 0;
  int64_t label = -1;
};

// A validated request: a batch-1 CPU payload whose ratio_index is the server's own index.
struct DecodedRequest {
  Payload payload;
  int64_t image_id = 0;
  SlotReport report;
};

// Message → payload, checked against `model`: method served, ratio in the bank, d_r of that
// ratio, 1 ≤ tokens ≤ max_tokens (= max_tokens in soft mode), byte sizes that match tokens × d_r,
// finite values, token_scale in [0, ∞) when present, no codec bytes; the monitoring fields finite
// (budget in [0, 1], queue and zeta_max ≥ 0, label a class). A digital server takes
// codec_bytes only (1 … max_codec_bytes bytes, no symbols, tokens 0). FormatError naming
// "payload.<field>", what it is and what was expected.
DecodedRequest from_message(const v1::Payload& message, const ServedModel& model);

void to_info(const ServedModel& model, v1::ModelInfo* out);
ServedModel from_info(const v1::ModelInfo& info);

// The transport libraries this build uses: "protobuf <v>, gRPC <v>" (for provenance lines).
std::string transport_versions();

}  // namespace tokcom::net

// comm/payload.h — what crosses the air (DESIGN.md "One idea carries the architecture").
//
// One struct for every method: token methods send complex symbols (B, T, d_r), the CNN JSCC sends
// complex maps (B, C, s, s), digital codecs send bytes. The same struct is what the transport
// serialises, so simulation and deployment share one code path. ζ is counted from it (zeta.h).
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tokcom {

struct Payload {
  std::string method;            // "proposal", "vit-ae", "mobilenet-cnn", "jpeg", ...
  // complex64 (B, T, d_r) for token methods, (B, C, s, s) for the CNN JSCC; undefined for digital.
  torch::Tensor symbols;
  // Optional (B, T) bool: which token slots are real (hard mode, packed batches). Undefined = all.
  // False slots are padding: never transmitted, not counted in ζ, zero after any channel.
  torch::Tensor token_mask;
  // Optional (B, T) float for token payloads, outside the channel and not counted in ζ: with
  // comm.token_scale free (for the record only) the cumulative selection mask the server multiplies
  // the decoded tokens by (METHOD §5.4, §3.4, 10 P4, P27); with none or channel, on the soft path
  // only, which positions were dropped (0) — what their absence says on the hard path, where it
  // stays undefined. Undefined = ones.
  torch::Tensor token_scale;
  int64_t ratio_index = -1;      // index into the trained JSCC bank (-1: none / digital)
  std::vector<std::string> bytes;  // digital codecs: encoded image per sample
  std::vector<int64_t> image_ids;  // optional, one per sample

  bool is_digital() const { return !symbols.defined(); }
  // Number of images: symbols.size(0), else bytes.size().
  int64_t batch_size() const;
  // Complex channel uses actually sent for sample b (METHOD §5.5): real token slots × d_r for token
  // payloads, C·s·s for CNN maps, 0 for digital payloads (their size is bytes[b].size()).
  int64_t symbols_per_image(int64_t b) const;
  // Real token slots of sample b (T when there is no mask; C for CNN maps; 0 for digital).
  int64_t tokens_per_image(int64_t b) const;
};

// Throws, naming `caller` and the field: FormatError for an empty method, NaN/Inf symbols
// (only when check_values: one pass over the data + a device sync) or mismatched digital fields;
// ShapeError for a wrong dtype/rank, a token width ≠ expected_width (−1 = any), a token_mask
// that is not (B, T) bool, a token_scale that is not (B, T) float, or image_ids of the wrong
// length; FormatError for a non-finite token_scale (with check_values).
void validate(const Payload& payload, const std::string& caller, int64_t expected_width = -1,
              bool check_values = true);

}  // namespace tokcom

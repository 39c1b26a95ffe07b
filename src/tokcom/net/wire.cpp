#include "tokcom/net/wire.h"

#include <cmath>
#include <complex>
#include <cstring>

#include <fmt/format.h>
#include <torch/torch.h>

#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>

#include "edge.pb.h"
#include "tokcom/core/errors.h"

namespace tokcom::net {
namespace {

static_assert(sizeof(std::complex<float>) == 8, "complex64 is two float32");

FormatError field_error(const std::string& field, const std::string& what) {
  return FormatError("request payload." + field + " " + what);
}

// The wire is little-endian; so is every machine we build for (x86-64, aarch64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format assumes a little-endian host");

}  // namespace

int64_t ServedModel::ratio_index_of(double r) const {
  for (size_t i = 0; i < ratios.size(); ++i)
    if (std::abs(ratios[i] - r) <= 1e-9) return static_cast<int64_t>(i);
  return -1;
}

int64_t max_payload_bytes(const ServedModel& model) {
  if (model.digital()) return model.max_codec_bytes;
  int64_t widest = 0;
  for (int64_t d : model.symbols_per_token) widest = std::max(widest, d);
  return model.max_tokens * (widest * 8 + 4);
}

void to_message(const Payload& payload, int64_t b, double ratio, v1::Payload* out) {
  if (payload.is_digital()) {
    if (b < 0 || b >= payload.batch_size()) {
      throw UsageError(fmt::format("to_message: sample {} out of range [0, {})", b, payload.batch_size()));
    }
    out->Clear();
    out->set_method(payload.method);
    out->set_ratio_index(-1);
    out->set_image_id(b < static_cast<int64_t>(payload.image_ids.size()) ? payload.image_ids[b] : 0);
    out->set_codec_bytes(payload.bytes[b]);
    return;
  }
  if (payload.symbols.dim() != 3) {
    throw UsageError(fmt::format("to_message: payload '{}' is not a token payload (B, T, d_r); only token payloads "
                                 "are sent over the network by this version",
                                 payload.method));
  }
  if (b < 0 || b >= payload.batch_size()) {
    throw UsageError(fmt::format("to_message: sample {} out of range [0, {})", b, payload.batch_size()));
  }
  torch::Tensor symbols = payload.symbols[b].to(torch::kCPU, torch::kComplexFloat);  // (T, d_r)
  torch::Tensor scale;
  if (payload.token_scale.defined()) scale = payload.token_scale[b].to(torch::kCPU, torch::kFloat);
  if (payload.token_mask.defined()) {
    const torch::Tensor keep = payload.token_mask[b].to(torch::kCPU).nonzero().squeeze(1);
    symbols = symbols.index_select(0, keep);
    if (scale.defined()) scale = scale.index_select(0, keep);
  }
  symbols = symbols.contiguous();
  out->set_method(payload.method);
  out->set_ratio_index(static_cast<int32_t>(payload.ratio_index));
  out->set_ratio(ratio);
  out->set_image_id(b < static_cast<int64_t>(payload.image_ids.size()) ? payload.image_ids[b] : 0);
  out->set_tokens(static_cast<int32_t>(symbols.size(0)));
  out->set_symbols_per_token(static_cast<int32_t>(symbols.size(1)));
  out->set_symbols(symbols.data_ptr(), symbols.numel() * 8);
  if (scale.defined()) {
    scale = scale.contiguous();
    out->set_token_scale(scale.data_ptr(), scale.numel() * 4);
  } else {
    out->clear_token_scale();
  }
}

// The monitoring fields (never used to classify), checked as every other field.
SlotReport slot_report(const v1::Payload& m, const ServedModel& model) {
  if (!std::isfinite(m.snr_db())) throw field_error("snr_db", fmt::format("is {}, expected a finite SNR in dB", m.snr_db()));
  if (!(m.budget() >= 0.0 && m.budget() <= 1.0))
    throw field_error("budget", fmt::format("is {}, expected in [0, 1] (0: not said)", m.budget()));
  if (!(std::isfinite(m.queue()) && m.queue() >= 0.0))
    throw field_error("queue", fmt::format("is {}, expected a finite virtual queue ≥ 0", m.queue()));
  if (!(std::isfinite(m.zeta_max()) && m.zeta_max() >= 0.0))
    throw field_error("zeta_max", fmt::format("is {}, expected a finite bound ≥ 0 (0: not said)", m.zeta_max()));
  if (m.has_label() && (m.label() < 0 || m.label() >= model.num_classes))
    throw field_error("label", fmt::format("is {}, expected a class in [0, {})", m.label(), model.num_classes));
  SlotReport s;
  s.snr_db = m.snr_db();
  s.budget = m.budget();
  s.ratio = m.ratio();
  s.queue = m.queue();
  s.zeta_max = m.zeta_max();
  s.label = m.has_label() ? m.label() : -1;
  return s;
}

DecodedRequest from_message(const v1::Payload& m, const ServedModel& model) {
  const SlotReport report = slot_report(m, model);
  if (m.method() != model.method) {
    throw field_error("method", fmt::format("is '{}', expected '{}' (the method this server serves)",
                                            m.method().substr(0, 64), model.method));
  }
  if (model.digital()) {
    const size_t n = m.codec_bytes().size();
    if (n == 0) throw field_error("codec_bytes", "is empty, expected the encoded image (a lost image is not sent)");
    if (n > static_cast<size_t>(model.max_codec_bytes)) {
      throw field_error("codec_bytes", fmt::format("has {} bytes, expected at most {}", n, model.max_codec_bytes));
    }
    if (!m.symbols().empty() || !m.token_scale().empty() || m.tokens() != 0) {
      throw field_error("symbols", fmt::format("carries {} symbol bytes, {} tokens, expected none for the digital "
                                               "method '{}'",
                                               m.symbols().size(), m.tokens(), model.method));
    }
    DecodedRequest r;
    r.image_id = m.image_id();
    r.report = report;
    r.payload.method = m.method();
    r.payload.image_ids = {m.image_id()};
    r.payload.bytes = {m.codec_bytes()};
    return r;
  }
  if (!m.codec_bytes().empty()) throw field_error("codec_bytes", "is set, expected empty for a token method");
  const int64_t index = std::isfinite(m.ratio()) ? model.ratio_index_of(m.ratio()) : -1;
  if (index < 0) {
    throw field_error("ratio", fmt::format("is {}, expected one of the server's bank [{}]", m.ratio(),
                                           fmt::join(model.ratios, ", ")));
  }
  const int64_t width = model.symbols_per_token[index];
  if (m.symbols_per_token() != width) {
    throw field_error("symbols_per_token",
                      fmt::format("is {}, expected {} (d_r of r = {})", m.symbols_per_token(), width, m.ratio()));
  }
  const int64_t tokens = m.tokens();
  if (model.mode == "soft" ? tokens != model.max_tokens : (tokens < 1 || tokens > model.max_tokens)) {
    throw field_error("tokens", model.mode == "soft"
                                    ? fmt::format("is {}, expected {} (soft mode sends every position)", tokens,
                                                  model.max_tokens)
                                    : fmt::format("is {}, expected in [1, {}]", tokens, model.max_tokens));
  }
  const size_t symbol_bytes = static_cast<size_t>(tokens * width * 8);
  if (m.symbols().size() != symbol_bytes) {
    throw field_error("symbols", fmt::format("has {} bytes, expected {} (tokens {} × d_r {} × 8 bytes of complex64)",
                                             m.symbols().size(), symbol_bytes, tokens, width));
  }
  // Nothing reaches the server outside ζ (METHOD §10 P27): a hard payload is its kept tokens, and
  // the mask, when the bank uses it, travels inside the symbols (comm.token_scale channel).
  if (model.mode != "soft" && !m.token_scale().empty()) {
    throw field_error("token_scale", "is set, expected empty: a hard-mode payload sends its kept tokens only, and "
                                     "every value the server uses is counted in zeta");
  }
  if (!m.token_scale().empty() && m.token_scale().size() != static_cast<size_t>(tokens * 4)) {
    throw field_error("token_scale", fmt::format("has {} bytes, expected 0 or {} (tokens {} × 4 bytes of float32)",
                                                 m.token_scale().size(), tokens * 4, tokens));
  }
  DecodedRequest r;
  r.image_id = m.image_id();
  r.report = report;
  Payload& p = r.payload;
  p.method = m.method();
  p.ratio_index = index;
  p.image_ids = {m.image_id()};
  p.symbols = torch::empty({1, tokens, width}, torch::kComplexFloat);
  std::memcpy(p.symbols.data_ptr(), m.symbols().data(), symbol_bytes);
  if (!torch::view_as_real(p.symbols).isfinite().all().item<bool>()) {
    throw field_error("symbols", "holds NaN or Inf, expected finite values");
  }
  if (!m.token_scale().empty()) {
    p.token_scale = torch::empty({1, tokens}, torch::kFloat);
    std::memcpy(p.token_scale.data_ptr(), m.token_scale().data(), m.token_scale().size());
    // Soft mode sends every position; token_scale only says which ones were dropped (0) or kept (1).
    if (!(p.token_scale.eq(0) | p.token_scale.eq(1)).all().item<bool>()) {
      throw field_error("token_scale", "holds values other than 0 and 1, expected which positions were kept");
    }
  }
  return r;
}

void to_info(const ServedModel& model, v1::ModelInfo* out) {
  out->set_method(model.method);
  out->set_mode(model.mode);
  out->set_regime(model.regime);
  for (double r : model.ratios) out->add_ratios(r);
  for (int64_t d : model.symbols_per_token) out->add_symbols_per_token(static_cast<int32_t>(d));
  out->set_max_tokens(static_cast<int32_t>(model.max_tokens));
  out->set_num_classes(static_cast<int32_t>(model.num_classes));
  out->set_input_values(model.input_values);
  out->set_controller(model.controller);
  out->set_max_codec_bytes(model.max_codec_bytes);
}

ServedModel from_info(const v1::ModelInfo& info) {
  ServedModel m;
  m.method = info.method();
  m.mode = info.mode();
  m.regime = info.regime();
  m.ratios.assign(info.ratios().begin(), info.ratios().end());
  m.symbols_per_token.assign(info.symbols_per_token().begin(), info.symbols_per_token().end());
  m.max_tokens = info.max_tokens();
  m.num_classes = info.num_classes();
  m.input_values = info.input_values();
  m.controller = info.controller();
  m.max_codec_bytes = info.max_codec_bytes();
  if (m.ratios.size() != m.symbols_per_token.size() || m.num_classes < 1 ||
      (!m.digital() && (m.ratios.empty() || m.max_tokens < 1))) {
    throw FormatError(fmt::format("server info: {} ratios, {} code widths, max_tokens {}, num_classes {} (expected a "
                                  "non-empty bank with one width per ratio)",
                                  m.ratios.size(), m.symbols_per_token.size(), m.max_tokens, m.num_classes));
  }
  return m;
}

std::string transport_versions() {
  return fmt::format("protobuf {}, gRPC {}", google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION),
                     grpc::Version());
}

}  // namespace tokcom::net

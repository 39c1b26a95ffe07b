#include "tokcom/split/proposal.h"

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/split/frozen_check.h"

namespace tokcom {
namespace fs = std::filesystem;

JsccStageNetImpl::JsccStageNetImpl(Vit vit_in, JsccCodec codec_in) : vit(std::move(vit_in)), codec(std::move(codec_in)) {
  // The ViT's own names at the top level (timm keys), so the file loads into a plain ViT too.
  for (auto& p : vit->named_parameters(/*recurse=*/false)) register_parameter(p.key(), p.value(), p.value().requires_grad());
  for (auto& b : vit->named_buffers(/*recurse=*/false)) register_buffer(b.key(), b.value());
  for (auto& c : vit->named_children()) register_module(c.key(), c.value());
  register_module("jscc", codec);
}

bool is_proposal_pair_tensor(const std::string& name, int64_t split) {
  return name.rfind("jscc.", 0) == 0 || (name.rfind("blocks.", 0) == 0 && std::stoll(name.substr(7)) >= split);
}

void validate_split(const VitOptions& options, int64_t split) {
  const auto& adaptive = options.adaptive_blocks();
  const int64_t first_allowed = adaptive.empty() ? 0 : adaptive.back() + 1;
  if (split < first_allowed || split > options.depth()) {
    throw ConfigError(fmt::format("comm.split is {}, expected in [{}, {}] (blocks [0, split) run on the device, and "
                                  "token selection (adaptive blocks {}) happens there)",
                                  split, first_allowed, options.depth(), fmt::join(adaptive, ",")));
  }
}

TokenState device_tokens(Vit& vit, const torch::Tensor& images, const torch::Tensor& budget, int64_t split,
                         SelectionMode mode, std::vector<BlockStats>* stats) {
  return vit->forward_blocks(vit->embed(images, budget), 0, split, mode, stats);
}

TokenScale token_scale_from_config(const Config& config) {
  const std::string v = config.get_string("comm.token_scale");
  if (v == "none") return TokenScale::kNone;
  if (v == "channel") return TokenScale::kChannel;
  if (v == "free") return TokenScale::kFree;
  throw ConfigError(fmt::format("comm.token_scale is '{}', expected none | channel | free (METHOD §10 P27)", v));
}

const char* token_scale_name(TokenScale scale) {
  switch (scale) {
    case TokenScale::kNone: return "none";
    case TokenScale::kChannel: return "channel";
    case TokenScale::kFree: return "free";
  }
  return "?";
}

int64_t sent_symbols_per_token(int64_t d_r, TokenScale scale, bool selects) {
  return d_r + (selects && scale == TokenScale::kChannel ? 1 : 0);
}

void require_counted_token_scale(const Config& config, const std::string& what) {
  if (token_scale_from_config(config) == TokenScale::kFree) {
    throw ConfigError(fmt::format("comm.token_scale is 'free' (the selection mask beside the symbols, outside ζ): "
                                  "{} sends only what ζ counts; use a bank trained with none or channel",
                                  what));
  }
}

Payload encode_tokens(JsccEncoder& encoder, const TokenState& state, int64_t ratio_index, const std::string& method,
                      TokenScale scale, bool selects) {
  Payload p;
  p.method = method;
  p.ratio_index = ratio_index;
  p.symbols = encoder(state.x);
  if (state.padding.defined()) p.token_mask = state.padding.logical_not();
  if (!selects || (!state.mask.defined() && scale != TokenScale::kChannel)) return p;
  const torch::Tensor mask = state.mask.defined()
                                 ? state.mask.to(torch::kFloat)
                                 : torch::ones({state.x.size(0), state.x.size(1)}, state.x.options().dtype(torch::kFloat));
  if (scale == TokenScale::kFree) {
    p.token_scale = mask;
    return p;
  }
  if (scale == TokenScale::kChannel) {
    // m·(1 + j)/√(2·d_r): at m = 1 the power of an average unit-norm token symbol (1/d_r). The
    // channel measures the power of what is sent, so the SNR stays the nominal one.
    const double d_r = static_cast<double>(p.symbols.size(-1));
    const torch::Tensor amplitude = (mask * (1.0 / std::sqrt(2.0 * d_r))).unsqueeze(-1);
    p.symbols = torch::cat({p.symbols, torch::view_as_complex(torch::stack({amplitude, amplitude}, -1))}, -1);
  }
  // Which sent positions were dropped: only the soft path sends them (the hard path's absence says it).
  torch::Tensor kept = mask > 0;
  if (p.token_mask.defined()) kept = kept.logical_or(p.token_mask.logical_not());
  if (!kept.all().item<bool>()) p.token_scale = (mask > 0).to(torch::kFloat);
  return p;
}

torch::Tensor server_logits(Vit& vit, JsccDecoder& decoder, const Payload& received, int64_t split,
                            SelectionMode mode, TokenScale scale) {
  const bool selects = !vit->options.adaptive_blocks().empty();
  const int64_t d_r = decoder->options.symbols_per_token();
  validate(received, "server_logits", sent_symbols_per_token(d_r, scale, selects), /*check_values=*/false);
  if (received.symbols.dim() != 3) {
    throw ShapeError(fmt::format("server_logits: payload '{}' has map symbols of rank {}, expected tokens (B, T, d_r)",
                                 received.method, received.symbols.dim()));
  }
  torch::Tensor symbols = received.symbols, mask;
  if (selects && scale == TokenScale::kChannel) {
    const torch::Tensor s = symbols.select(-1, d_r);
    mask = ((torch::real(s) + torch::imag(s)) * std::sqrt(d_r / 2.0)).clamp(0.0, 1.0);
    symbols = symbols.slice(-1, 0, d_r);
  }
  TokenState state;
  state.x = decoder(symbols);
  if (received.token_mask.defined()) {
    state.padding = received.token_mask.logical_not();
    state.x = state.x * received.token_mask.unsqueeze(-1).to(state.x.dtype());
  }
  if (received.token_scale.defined()) mask = mask.defined() ? mask * received.token_scale : received.token_scale;
  if (mask.defined()) {
    state.mask = mask;
    state.x = state.x * state.mask.unsqueeze(-1);  // METHOD §5.4: dropped positions back to exact zeros
  }
  return vit->classify(std::move(state), split, mode);
}

std::string jscc_file(const std::string& bank_dir, const std::string& regime, double ratio) {
  return fmt::format("{}/jscc-{}-r{}.safetensors", bank_dir, regime, ratio);
}

ProposalDevice::ProposalDevice(Vit vit, std::vector<JsccEncoder> encoders, std::vector<double> ratios,
                               ProposalOptions options)
    : vit_(std::move(vit)), encoders_(std::move(encoders)), ratios_(std::move(ratios)), options_(std::move(options)) {
  validate_split(vit_->options, options_.split);
  if (encoders_.size() != ratios_.size() || encoders_.empty()) {
    throw UsageError(fmt::format("ProposalDevice: {} encoders for {} ratios", encoders_.size(), ratios_.size()));
  }
}

Payload ProposalDevice::encode(const torch::Tensor& images, const Decision& decision, DeviceStats* stats) {
  return encode_each_ratio(images, decision.budget, {decision.ratio_index}, stats).front();
}

std::vector<Payload> ProposalDevice::encode_each_ratio(const torch::Tensor& images, double budget,
                                                       const std::vector<int64_t>& ratio_indices, DeviceStats* stats) {
  for (int64_t r : ratio_indices) validate_decision(Decision{budget, r}, num_ratios(), "ProposalDevice::encode");
  const auto& o = vit_->options;
  check_shape("ProposalDevice::encode", "images", images, {-1, o.in_chans(), o.image_size(), o.image_size()});
  torch::NoGradGuard no_grad;
  const int64_t batch = images.size(0);
  torch::Tensor budgets;
  if (!o.adaptive_blocks().empty()) budgets = torch::full({batch}, budget, images.options().dtype(torch::kFloat));
  std::vector<BlockStats> block_stats;
  const TokenState state = device_tokens(vit_, images, budgets, options_.split, options_.mode, &block_stats);
  if (stats) {
    stats->kept_patches = block_stats.empty()
                              ? torch::full({batch}, o.num_patches(), images.options().dtype(torch::kLong))
                              : block_stats.back().kept;
  }
  std::vector<Payload> out;
  for (int64_t r : ratio_indices) {
    out.push_back(encode_tokens(encoders_[r], state, r, options_.method, options_.token_scale,
                                !o.adaptive_blocks().empty()));
  }
  return out;
}

ProposalServer::ProposalServer(std::vector<Vit> models, std::vector<JsccDecoder> decoders, ProposalOptions options)
    : models_(std::move(models)), decoders_(std::move(decoders)), options_(std::move(options)) {
  if (models_.size() != decoders_.size() || models_.empty()) {
    throw UsageError(fmt::format("ProposalServer: {} server models for {} decoders", models_.size(), decoders_.size()));
  }
  for (auto& m : models_) validate_split(m->options, options_.split);
}

torch::Tensor ProposalServer::decode(const Payload& received) {
  if (received.method != options_.method) {
    throw FormatError(fmt::format("ProposalServer::decode: payload.method is '{}', expected '{}'", received.method,
                                  options_.method));
  }
  if (received.ratio_index < 0 || received.ratio_index >= static_cast<int64_t>(decoders_.size())) {
    throw FormatError(fmt::format("ProposalServer::decode: payload.ratio_index is {}, expected in [0, {})",
                                  received.ratio_index, decoders_.size()));
  }
  torch::NoGradGuard no_grad;
  return server_logits(models_[received.ratio_index], decoders_[received.ratio_index], received, options_.split,
                       options_.mode, options_.token_scale);
}

SplitModel load_proposal(const Config& config, const std::string& bank_dir, const std::string& regime,
                         const std::vector<double>& ratios, SelectionMode mode, torch::Device device) {
  ProposalOptions options;
  options.split = config.get_int("comm.split");
  options.mode = mode;
  const VitOptions vit_options = vit_options_from_config(config);
  options.method = vit_options.adaptive_blocks().empty() ? "vit-ae" : "proposal";
  options.token_scale = token_scale_from_config(config);
  if (options.token_scale == TokenScale::kFree && !vit_options.adaptive_blocks().empty()) {
    spdlog::warn("{}: comm.token_scale is 'free': the server gets each token's selection mask beside the symbols, "
                 "outside the channel and outside zeta (the reference's evaluation) — for the record only",
                 bank_dir);
  }
  validate_split(vit_options, options.split);
  if (ratios.empty()) throw UsageError("load_proposal: no ratios asked for");

  std::vector<Vit> models;
  std::vector<JsccEncoder> encoders;
  std::vector<JsccDecoder> decoders;
  // Device half + norm + head: every file must agree; the codec and server blocks are per r.
  FrozenCheck frozen([split = options.split](const std::string& name) { return is_proposal_pair_tensor(name, split); });
  for (double r : ratios) {
    const std::string path = jscc_file(bank_dir, regime, r);
    if (!fs::exists(path)) {
      throw DataError(fmt::format("{}: no trained JSCC model for regime '{}' and r = {} (train it with `tokcom train "
                                  "-c <config> train.stage=jscc train.ratios={} comm.train_regime={} "
                                  "train.out={}`)",
                                  path, regime, r, r, regime, bank_dir));
    }
    const TensorMap tensors = read_safetensors(path).tensors;
    Vit vit(vit_options);
    JsccCodec codec(JsccOptions()
                        .dim(vit_options.dim())
                        .ratio(r)
                        .reference_power(config.get_bool("comm.reference_power")));
    JsccStageNet net(vit, codec);
    load_tensors(*net, tensors, path, /*strict=*/true);
    frozen.add(path, tensors);
    net->to(device);
    net->eval();
    vit->eval();  // the ViT itself is not a child of `net` (its children are): its own flag gates the
                  // eval-only selection cutoff (METHOD §3.3), so it must be set here too
    models.push_back(vit);
    encoders.push_back(codec->encoder);
    decoders.push_back(codec->decoder);
  }
  SplitModel split;
  // The device half uses the first file's ViT: the frozen part is identical in every file.
  split.device = std::make_shared<ProposalDevice>(models.front(), encoders, ratios, options);
  split.server = std::make_shared<ProposalServer>(models, decoders, options);
  split.input_values = input_values(config);
  return split;
}

namespace {

class ProposalPair : public TrainablePair {
 public:
  ProposalPair(const Config& config, const std::string& init, double ratio)
      : split_(config.get_int("comm.split")), token_scale_(token_scale_from_config(config)), vit_(make_vit(config)) {
    validate_split(vit_->options, split_);
    const LoadReport report = load_module(init, *vit_, /*strict=*/false);
    if (!report.missing.empty()) {
      throw FormatError(fmt::format("{}: {} ViT tensors missing (first: {}); train.init must be a model of the "
                                    "configured architecture",
                                    init, report.missing.size(), report.missing.front()));
    }
    adaptive_ = !vit_->options.adaptive_blocks().empty();
    method_ = adaptive_ ? "proposal" : "vit-ae";
    codec_ = JsccCodec(
        JsccOptions().dim(vit_->options.dim()).ratio(ratio).reference_power(config.get_bool("comm.reference_power")));
    net_ = JsccStageNet(vit_, codec_);
    for (auto& item : vit_->named_parameters()) {
      const bool train = is_proposal_pair_tensor(item.key(), split_);
      item.value().set_requires_grad(train);  // METHOD §10 P10: frozen parameters collect no gradient
      if (train) trained_.push_back(item.value());
    }
    codec_parameters_ = codec_->parameters();
    trained_.insert(trained_.end(), codec_parameters_.begin(), codec_parameters_.end());
    ProposalOptions popts;  // validation: hard mode, every token
    popts.split = split_;
    popts.mode = SelectionMode::kHard;
    popts.method = method_;
    popts.token_scale = token_scale_;
    link_.device = std::make_shared<ProposalDevice>(vit_, std::vector<JsccEncoder>{codec_->encoder},
                                                    std::vector<double>{ratio}, popts);
    link_.server =
        std::make_shared<ProposalServer>(std::vector<Vit>{vit_}, std::vector<JsccDecoder>{codec_->decoder}, popts);
    link_.input_values = input_values(config);
  }

  std::string method() const override { return method_; }
  torch::nn::Module& module() override { return *net_; }
  const std::vector<torch::Tensor>& trained() const override { return trained_; }
  const std::vector<torch::Tensor>& codec_parameters() const override { return codec_parameters_; }
  bool has_budget() const override { return adaptive_; }
  void train_mode() override {
    vit_->eval();  // METHOD §10 P22: the device's selection runs in eval mode (1e-3 cutoff active)
    codec_->train();
  }
  // The device's tokens: what encode_tokens reads of them (x, mask, padding).
  FrozenBatch frozen(const torch::Tensor& images, const torch::Tensor& budgets) override {
    torch::NoGradGuard no_grad;
    const TokenState state = device_tokens(vit_, images, budgets, split_, SelectionMode::kSoft);
    return {{state.x, state.mask, state.padding}};
  }
  Payload encode(const FrozenBatch& batch) override {
    TokenState state;
    state.x = batch.tensors.at(0);
    state.mask = batch.tensors.at(1);
    state.padding = batch.tensors.at(2);
    return encode_tokens(codec_->encoder, state, 0, method_, token_scale_, adaptive_);
  }
  torch::Tensor receive(const Payload& received) override {
    return server_logits(vit_, codec_->decoder, received, split_, SelectionMode::kSoft, token_scale_);
  }
  // Rows = the tokens the server keeps (mask > 0: cls, budget, surviving patches), one per row.
  torch::Tensor codec_rows(const torch::Tensor& images, const torch::Tensor& budgets) override {
    torch::NoGradGuard no_grad;
    const TokenState state = device_tokens(vit_, images, budgets, split_, SelectionMode::kSoft);
    const torch::Tensor x = state.x.reshape({-1, state.x.size(-1)});
    if (!state.mask.defined()) return x.unsqueeze(1);
    return x.index({state.mask.reshape({-1}) > 0}).unsqueeze(1);
  }
  Payload encode_rows(const torch::Tensor& rows) override {
    TokenState rows_state;
    rows_state.x = rows;
    return encode_tokens(codec_->encoder, rows_state, 0, method_, token_scale_, false);  // the codec alone
  }
  torch::Tensor decode_rows(const Payload& received) override { return codec_->decoder(received.symbols); }
  SplitModel link() override { return link_; }

 private:
  int64_t split_;
  TokenScale token_scale_;
  Vit vit_;
  JsccCodec codec_{nullptr};
  JsccStageNet net_{nullptr};
  bool adaptive_ = false;
  std::string method_;
  std::vector<torch::Tensor> trained_, codec_parameters_;
  SplitModel link_;
};

}  // namespace

std::unique_ptr<TrainablePair> make_proposal_pair(const Config& config, const std::string& init,
                                                  const std::string& /*method: from the config*/, double ratio) {
  return std::make_unique<ProposalPair>(config, init, ratio);
}

}  // namespace tokcom

// split/proposal.h — the proposal as a split model (METHOD §5): the device runs the patch embedding
// and blocks [0, split) with token selection under α, encodes every sent token with the JSCC
// encoder of ratio r; the server decodes, multiplies by the cumulative mask as comm.token_scale
// says (METHOD §5.4) and runs blocks [split, depth), the final LayerNorm and the head.
//
// Soft mode sends every position (the reference's batched path); hard mode sends only the kept
// tokens (cls and budget included), packed per batch with padded slots that are never sent.
//
// A trained bank is a folder written by `tokcom train train.stage=jscc` with one file per
// (regime, r): jscc-<regime>-r<r>.safetensors = the whole ViT with timm names (its server blocks
// fine-tuned for that r) + the codec under "jscc." (encoder.re/im.{0,2,4}, decoder.mlp.{0,2,4}).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "tokcom/comm/jscc.h"
#include "tokcom/model/vit.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

class Config;

// What stage 3 trains for one (r, regime): the ViT's parameters under their timm names (shared
// with `vit`, not copied) and the codec under "jscc.".
class JsccStageNetImpl : public torch::nn::Module {
 public:
  JsccStageNetImpl(Vit vit, JsccCodec codec);
  Vit vit;
  JsccCodec codec;
};
TORCH_MODULE(JsccStageNet);

// Blocks [0, split) on the device: split ≥ last adaptive block + 1 (selection happens on the
// device) and ≤ depth. ConfigError otherwise.
void validate_split(const VitOptions& options, int64_t split);
// The tensors one (regime, r) file of a proposal / ViT-AE bank trains and owns: the codec ("jscc.*")
// and the server blocks [split, depth). The rest (embedding, blocks [0, split) with their selection
// heads, norm, head) is the frozen model every file of a bank shares.
bool is_proposal_pair_tensor(const std::string& name, int64_t split);

// comm.token_scale (METHOD §5.4, 10 P27): how the server learns each sent token's cumulative
// selection mask m, which it multiplies into the decoded token and keeps applying in its blocks.
//  none    — not sent: the server uses 1 for every sent token (0 for a dropped one, which the
//            hard path does not send at all; the soft training path marks dropped positions).
//  channel — sent through the channel and counted in ζ: one more complex symbol per sent token,
//            m·(1 + j)/√(2·d_r) (the power of an average token symbol at m = 1); the server reads
//            m̂ = √(d_r/2)·(Re + Im), clipped to [0, 1].
//  free    — beside the symbols, outside the channel and outside ζ (the reference's evaluation):
//            for the record only; serving and deployment refuse it.
enum class TokenScale { kNone, kChannel, kFree };
// comm.token_scale of a config. ConfigError naming the key and the three values.
TokenScale token_scale_from_config(const Config& config);
const char* token_scale_name(TokenScale scale);
// Complex symbols one sent token occupies: d_r, plus 1 for `channel` on a model that selects.
int64_t sent_symbols_per_token(int64_t d_r, TokenScale scale, bool selects);
// Refuses `free` for `what` (serving, deployment): ConfigError naming the key.
void require_counted_token_scale(const Config& config, const std::string& what);

// Device side: embed with budget (B) (undefined or all 1 = static path), blocks [0, split).
TokenState device_tokens(Vit& vit, const torch::Tensor& images, const torch::Tensor& budget, int64_t split,
                         SelectionMode mode, std::vector<BlockStats>* stats = nullptr);
// Sent tokens → payload: symbols = encoder(x), token_mask = not padding (hard mode); when
// selection ran, the mask as `scale` says (channel: one more symbol per token; free: token_scale
// = the mask; none and channel: token_scale = which positions were kept, only when some sent
// position was dropped — the soft path; the hard path sends kept tokens only and leaves it unset).
// `selects`: the model has adaptive blocks (with `channel` every sent token then carries its mask
// symbol, 1 on the static path where selection did not run).
Payload encode_tokens(JsccEncoder& encoder, const TokenState& state, int64_t ratio_index, const std::string& method,
                      TokenScale scale, bool selects);
// Received payload → logits: decoder, zero at padded slots, × the mask as `scale` says, blocks
// [split, depth), norm, head. ShapeError unless the payload's width is
// sent_symbols_per_token(d_r, scale, selects) (`selects`: the model has adaptive blocks).
torch::Tensor server_logits(Vit& vit, JsccDecoder& decoder, const Payload& received, int64_t split,
                            SelectionMode mode, TokenScale scale);

// File of one trained (regime, r) in a bank folder.
std::string jscc_file(const std::string& bank_dir, const std::string& regime, double ratio);

struct ProposalOptions {
  int64_t split = 3;
  SelectionMode mode = SelectionMode::kHard;
  std::string method = "proposal";
  TokenScale token_scale = TokenScale::kNone;
};

class ProposalDevice final : public DeviceHalf {
 public:
  ProposalDevice(Vit vit, std::vector<JsccEncoder> encoders, std::vector<double> ratios, ProposalOptions options);
  std::string method() const override { return options_.method; }
  int64_t num_ratios() const override { return static_cast<int64_t>(encoders_.size()); }
  double ratio(int64_t index) const override { return ratios_.at(index); }
  Payload encode(const torch::Tensor& images, const Decision& decision, DeviceStats* stats = nullptr) override;
  std::vector<Payload> encode_each_ratio(const torch::Tensor& images, double budget,
                                         const std::vector<int64_t>& ratio_indices,
                                         DeviceStats* stats = nullptr) override;

 private:
  Vit vit_;
  std::vector<JsccEncoder> encoders_;
  std::vector<double> ratios_;
  ProposalOptions options_;
};

class ProposalServer final : public ServerHalf {
 public:
  // One server model (blocks fine-tuned per r) and one decoder per ratio index.
  ProposalServer(std::vector<Vit> models, std::vector<JsccDecoder> decoders, ProposalOptions options);
  torch::Tensor decode(const Payload& received) override;

 private:
  std::vector<Vit> models_;
  std::vector<JsccDecoder> decoders_;
  ProposalOptions options_;
};

// Loads the bank in `bank_dir` for `regime` and `ratios` (index i of a Decision = ratios[i]) onto
// `device`, in eval mode. DataError naming the missing file (and the command that trains it);
// FormatError if the files disagree on the frozen device half. split/method from the config
// (comm.split); `method` "proposal" or "vit-ae" (a static model, no budget token).
SplitModel load_proposal(const Config& config, const std::string& bank_dir, const std::string& regime,
                         const std::vector<double>& ratios, SelectionMode mode, torch::Device device);

// One (regime, r) of a proposal or ViT-AE bank for the JSCC stage, from the model in `init` (the
// adaptive model: proposal; the backbone: ViT-AE, by model.adaptive_blocks) and a fresh codec:
// server blocks [split, depth) and the codec train; embedding, blocks [0, split) with their
// selection heads, norm and head stay frozen. FormatError when `init` lacks tensors of the model.
std::unique_ptr<TrainablePair> make_proposal_pair(const Config& config, const std::string& init,
                                                  const std::string& method, double ratio);

}  // namespace tokcom

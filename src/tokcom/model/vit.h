// Vision transformer (timm/DeiT layout) with adaptive token selection under a budget α
// (METHOD §2, 3, 10 P1–P5). Parameter names are timm's, so safetensors move without a key map.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "tokcom/core/fused_linear.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tokcom {
class Config;

struct VitOptions {
  int64_t num_patches() const { return (image_size_ / patch_size_) * (image_size_ / patch_size_); }
  TORCH_ARG(int64_t, image_size) = 224;
  TORCH_ARG(int64_t, patch_size) = 16;
  TORCH_ARG(int64_t, in_chans) = 3;
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, dim) = 192;  // DeiT-Tiny width
  TORCH_ARG(int64_t, depth) = 12;
  TORCH_ARG(int64_t, heads) = 3;
  TORCH_ARG(double, mlp_ratio) = 4.0;
  // Stochastic depth (training only; timm's drop_path_rate): block i skips its attention and MLP
  // branches for a whole sample with probability drop_path·i/(depth − 1), the kept branches scaled by
  // 1/(1 − p). 0 = off. Not a parameter: weights move between models with and without it.
  TORCH_ARG(double, drop_path) = 0.0;
  // METHOD §3.2 / P2: blocks with gate + threshold heads; empty = static ViT (no budget token).
  TORCH_ARG(std::vector<int64_t>, adaptive_blocks) = std::vector<int64_t>{1, 2};
  // METHOD §10 reference mode: P1 threshold reads position −2 (last patch), P4 hard path does not
  // scale kept tokens, P5 all-dropped fallback keeps every token.
  TORCH_ARG(bool, reference) = false;
  TORCH_ARG(double, eval_cutoff) = 1e-3;  // METHOD §3.3: eval only, mask ≤ cutoff → 0
  // Budget calibration (docs/model.md, `tokcom calibrate`): a measured curve of the hard kept
  // fraction (strictly increasing, in (0, 1)) against the budget fed to the budget token
  // (non-decreasing, in (0, 1)). Non-empty: a requested α is fed as the budget whose kept fraction
  // is α (piecewise-linear inverse; (1, 1) is an implied end point; α below the first kept value
  // gets the first budget). Empty: b(α) as METHOD §3.1.
  TORCH_ARG(std::vector<double>, calibration_kept) = std::vector<double>{};
  TORCH_ARG(std::vector<double>, calibration_budget) = std::vector<double>{};
  // Budget cap (docs/model.md, our addition): in eval mode every adaptive block keeps at most
  // ⌊α·N⌋ patches per sample — those with the highest cumulative mask — so a requested α is an
  // upper bound on what the device sends. Off = METHOD §3.3 (the threshold alone decides). Never in
  // training mode (budget_cap_train is).
  TORCH_ARG(bool, budget_cap) = false;
  // The same cap in training mode (docs/model.md, our addition): the adaptive stage then trains on
  // at most ⌊α·N⌋ patches per sample, what the capped device half will send. Off = METHOD §4.
  TORCH_ARG(bool, budget_cap_train) = false;
};

// The budget fed to the budget token for a requested α under `options`' calibration (α itself
// without one). α = 1 maps to 1. Piecewise linear; exposed for tests and `tokcom calibrate`.
double calibrated_budget(const VitOptions& options, double alpha);

// METHOD §3.4 soft masking (tokens multiplied by masks, zeroed tokens stay as keys) or METHOD §3.5 / P3
// hard dropping (kept tokens physically gathered; a batch is packed to the longest sample with a
// key-padding mask, layout [cls, kept patches…, padding…, budget]).
enum class SelectionMode { kSoft, kHard };

// What flows between blocks (and, on the split model, over the channel).
struct TokenState {
  torch::Tensor x;          // (B, T, D)
  torch::Tensor mask;       // (B, T) cumulative mask over the current sequence; undefined = ones
  torch::Tensor padding;    // (B, T) bool, true = padded slot (ignored as key); undefined = none
  torch::Tensor positions;  // (B, T) int64: 0 cls, 1..N patches, N+1 budget, −1 padding
  bool has_budget = false;  // last token is the budget token b(α)
  torch::Tensor cap;        // (B) int64: most patches a sample may keep (budget_cap in eval, budget_cap_train in training); undefined = none
};

struct BlockStats {
  int64_t block = 0;
  torch::Tensor patch_mask;  // (B, N) cumulative soft patch mask after this block; 0 = dropped
  torch::Tensor kept;        // (B) int64 patch tokens kept after this block (cls/budget excluded)
  // (B, N) pre-ReLU selection margin g − τ of this block per patch (s = ReLU of it). Unlike the
  // mask it has a gradient at dropped patches too (METHOD §10 P26, budget_loss=hard). Soft path
  // (training) only; undefined on the hard path and under keep_fraction_hook.
  torch::Tensor patch_margin;
};

struct VitOutput {
  torch::Tensor logits;            // (B, num_classes)
  std::vector<BlockStats> stats;   // one per adaptive block that ran with a budget token
};

// MLP: fc1 → exact GELU → fc2 (timm names mlp.fc1 / mlp.fc2).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);
  FusedLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// Multi-head self-attention; key_bias (B, 1, 1, T) additive (−inf at padded keys) or undefined.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_bias = {});
  // forward(x)[:, :1] without the other queries: token 0's output (B, 1, D), every token still a
  // key and a value (the qkv weight's q rows applied to token 0 alone).
  torch::Tensor forward_cls(const torch::Tensor& x, const torch::Tensor& key_bias = {});
  // softmax(q·kᵀ·scale + key_bias)·v over (B·H, ·, hd) queries, keys and values.
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       const torch::Tensor& key_bias) const;
  int64_t heads;
  double scale;
  FusedLinear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

// Pre-norm block x ← x + Attn(LN1 x); x ← x + MLP(LN2 x) (METHOD §2). Adaptive blocks also own
// `gate` and `threshold` (Linear D→1, sigmoid applied by the selection code, METHOD §3.3).
// In training mode with drop_path p > 0 each branch is dropped per sample (stochastic depth).
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t heads, double mlp_ratio, bool adaptive, double drop_path = 0.0);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_bias = {});
  // Inference only: forward(x)[:, :1], token 0's output (B, 1, D) (Attention::forward_cls).
  torch::Tensor forward_cls(const torch::Tensor& x, const torch::Tensor& key_bias = {});
  bool adaptive;
  double drop_path;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
  FusedLinear gate{nullptr}, threshold{nullptr};  // adaptive blocks only
};
TORCH_MODULE(Block);

// Patch embedding: Conv2d(in_chans → dim, kernel = stride = patch) (timm patch_embed.proj).
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t in_chans, int64_t dim, int64_t patch);
  torch::Tensor forward(const torch::Tensor& images);  // (B, C, H, W) → (B, N, D)
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class VitImpl : public torch::nn::Module {
 public:
  explicit VitImpl(VitOptions options);

  // images (B, C, H, W) normalised; budget (B) in (0, 1] or undefined. Undefined, all exactly 1.0
  // (METHOD §3.1) or a model without adaptive blocks → static path, no budget token.
  TokenState embed(const torch::Tensor& images, const torch::Tensor& budget = {});
  // Runs blocks [begin, end); adaptive blocks select tokens per `mode` when a budget token is
  // present and append their BlockStats to *stats.
  TokenState forward_blocks(TokenState state, int64_t begin, int64_t end, SelectionMode mode,
                            std::vector<BlockStats>* stats = nullptr);
  // Final LayerNorm, head on token 0 (cls) → (B, num_classes).
  torch::Tensor forward_head(const TokenState& state);
  // Blocks [begin, depth) then the head: forward_head(forward_blocks(state, begin, depth, mode)).
  // In inference the last block computes the class token's output alone (the head reads nothing
  // else; every token still enters its attention as key and value): at depth 6 with 65 tokens
  // about an eighth of the forward's FLOPs saved, the logits equal to rounding. In training, or when
  // the last block selects tokens, every block runs whole.
  torch::Tensor classify(TokenState state, int64_t begin, SelectionMode mode, std::vector<BlockStats>* stats = nullptr);
  VitOutput forward(const torch::Tensor& images, const torch::Tensor& budget = {},
                    SelectionMode mode = SelectionMode::kSoft);
  // `predict --hidden`: tokens after pos-embed (and budget token) as "embed", then "block.i" for
  // every block, soft path. Masked tensors as they leave each block.
  std::vector<std::pair<std::string, torch::Tensor>> forward_hidden(const torch::Tensor& images,
                                                                    const torch::Tensor& budget = {});

  bool is_adaptive(int64_t block) const;
  // Re-draws every parameter as METHOD §2 / 3.3 (timm init; budget tokens, gate/threshold biases).
  void reset_parameters();
  // Benchmark/test hook (docs/model.md): ≥ 0 makes each adaptive block keep exactly
  // round(f·N) patches — those with the highest gate score, mask = gate value — instead of
  // s = ReLU(g − τ). −1 = off (the method).
  double keep_fraction_hook = -1.0;

  VitOptions options;
  torch::Tensor cls_token, pos_embed;              // (1, 1, D), (1, 1 + N, D)
  torch::Tensor budget_token_a, budget_token_b;    // t_A, t_B (1, 1, D); adaptive models only
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  FusedLinear head{nullptr};

 private:
  TokenState select_soft(Block& block, int64_t index, TokenState state, BlockStats* stat);
  TokenState select_hard(Block& block, int64_t index, TokenState state, BlockStats* stat);
  // margin (optional out): (B, T − 2) pre-ReLU g − τ at the patch slots (undefined under the hook).
  torch::Tensor selection_scores(Block& block, const TokenState& state, torch::Tensor* margin = nullptr);
  // forward_blocks, with the last block of the range on the class token alone when `cls_only_last`.
  TokenState run_blocks(TokenState state, int64_t begin, int64_t end, SelectionMode mode,
                        std::vector<BlockStats>* stats, bool cls_only_last);
  std::vector<bool> adaptive_;
  std::vector<Block> block_list_;  // the same modules as `blocks`, typed
};
TORCH_MODULE(Vit);

// Throws ConfigError unless the adaptive blocks are sorted, unique and in [0, depth).
void validate_vit_options(const VitOptions& options);
// Builds the model from the `model` config section (configs/defaults/model.yaml).
VitOptions vit_options_from_config(const Config& config);
Vit make_vit(const Config& config);

// Stochastic depth on a residual branch (B, …): in training mode with p > 0, each sample's branch
// is zeroed with probability p (the global generator) and the rest scaled by 1/(1 − p); else as is.
torch::Tensor drop_path(const torch::Tensor& branch, double p, bool training);

// (B, 1, 1, T) additive attention bias, −inf at state.padding; undefined without padding.
torch::Tensor key_padding_bias(const TokenState& state);
// (B, T) per-token values of `state` (e.g. its mask) → (B, N) on the original row-major patch grid
// by state.positions; 0 for patches no longer in the sequence (hard path) — Fig. 9 pictures.
torch::Tensor to_patch_grid(const torch::Tensor& values, const TokenState& state, int64_t patches);
// Tokens sent over the channel after a block (METHOD §3.6): kept patches + cls + budget, (B) int64.
torch::Tensor tokens_sent(const BlockStats& stats);
// Floating-point operations of one image's forward pass, counted as 2 per multiply-add of every
// matrix product (patch embedding, qkv, q·kᵀ, attention·v, proj, MLP, gates, head); norms,
// softmax, GELU and adds are not counted (< 2 % here). `budget_token` adds the budget token of the
// adaptive path; `keep` < 1 is the hard path keeping round(keep·N) patches from the first adaptive
// block on (the benchmarks' keep-fraction hook). A training step counts 3× the forward (the
// backward computes two products per forward product). `cls_only_last`: the last block as inference
// runs it (Vit::classify: the query, attention, proj and MLP of the class token alone; every
// token's key and value). docs/PERF.md gives the presets' values.
double vit_forward_flops(const VitOptions& options, bool budget_token = false, double keep = 1.0,
                         bool cls_only_last = false);

// Mean and (population) standard deviation of kept patch tokens per sample, for the eval CSV.
std::pair<double, double> kept_mean_std(const BlockStats& stats);

}  // namespace tokcom

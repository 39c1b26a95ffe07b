// ViT backbone (METHOD §2), budget token (METHOD §3.1), block loop; token selection is in selection.cpp.
#include "tokcom/model/vit.h"

#include <unistd.h>

#include <torch/torch.h>

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/precision.h"

namespace tokcom {
namespace {

constexpr double kLayerNormEps = 1e-6;  // METHOD §2 (timm's ViT)
constexpr double kInitStd = 0.02;       // METHOD §2: timm trunc normal std for Linear / pos / cls

// timm's trunc_normal_(t, std=0.02, a=-2, b=2): the bounds sit at 100σ, so this is N(0, σ²).
void trunc_normal(torch::Tensor& t, double std) { t.normal_(0.0, std).clamp_(-2.0, 2.0); }

torch::nn::LayerNorm make_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(kLayerNormEps));
}

}  // namespace

MlpImpl::MlpImpl(int64_t dim, int64_t hidden)
    : fc1(register_module("fc1", FusedLinear(dim, hidden))),
      fc2(register_module("fc2", FusedLinear(hidden, dim))) {}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2(torch::gelu(fc1(x)));  // exact (erf) GELU, METHOD §2
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads_)
    : heads(heads_),
      scale(1.0 / std::sqrt(static_cast<double>(dim / heads_))),
      qkv(register_module("qkv", FusedLinear(dim, 3 * dim))),
      proj(register_module("proj", FusedLinear(dim, dim))) {}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& key_bias) {
  const int64_t batch = x.size(0), tokens = x.size(1), dim = x.size(2);
  const int64_t head_dim = dim / heads;
  // (B, T, 3D) → (3, B·H, T, hd): one permute copy, then q/k/v are contiguous views.
  torch::Tensor qkv_out = qkv(x).view({batch, tokens, 3, heads, head_dim})
                              .permute({2, 0, 3, 1, 4})
                              .reshape({3, batch * heads, tokens, head_dim});
  torch::Tensor out = attend(qkv_out[0], qkv_out[1], qkv_out[2], key_bias);  // (B·H, T, hd)
  out = out.view({batch, heads, tokens, head_dim}).transpose(1, 2).reshape({batch, tokens, dim});
  return proj(out);
}

torch::Tensor AttentionImpl::attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& key_bias) const {
  torch::Tensor logits;
  if (key_bias.defined()) {
    // (B, 1, 1, T) → (B·H, 1, T): −inf on padded keys, broadcast over queries.
    const int64_t batch = key_bias.size(0), tokens = k.size(1);
    torch::Tensor bias = key_bias.expand({batch, heads, 1, tokens}).reshape({batch * heads, 1, tokens});
    logits = torch::baddbmm(bias, q, k.transpose(1, 2), /*beta=*/1.0, /*alpha=*/scale);
  } else {
    logits = torch::bmm(q, k.transpose(1, 2)).mul_(scale);
  }
  return torch::bmm(torch::softmax(logits, -1), v);
}

torch::Tensor AttentionImpl::forward_cls(const torch::Tensor& x, const torch::Tensor& key_bias) {
  const int64_t batch = x.size(0), tokens = x.size(1), dim = x.size(2);
  const int64_t head_dim = dim / heads;
  const torch::Tensor& w = qkv->weight;
  const torch::Tensor& b = qkv->bias;
  const auto rows = [&](int64_t first, int64_t count) { return b.defined() ? b.narrow(0, first, count) : b; };
  // (B, 1, D) → (B·H, 1, hd): token 0's query.
  torch::Tensor q = at::linear(x.narrow(1, 0, 1), w.narrow(0, 0, dim), rows(0, dim)).view({batch * heads, 1, head_dim});
  // (B, T, 2D) → (2, B·H, T, hd): every token's key and value.
  torch::Tensor kv = at::linear(x, w.narrow(0, dim, 2 * dim), rows(dim, 2 * dim))
                         .view({batch, tokens, 2, heads, head_dim})
                         .permute({2, 0, 3, 1, 4})
                         .reshape({2, batch * heads, tokens, head_dim});
  // (B·H, 1, hd) is (B, H, hd) in memory: (B, 1, D) as a view.
  return proj(attend(q, kv[0], kv[1], key_bias).view({batch, 1, dim}));
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, double mlp_ratio, bool adaptive_, double drop_path_)
    : adaptive(adaptive_),
      drop_path(drop_path_),
      norm1(register_module("norm1", make_norm(dim))),
      norm2(register_module("norm2", make_norm(dim))),
      attn(register_module("attn", Attention(dim, heads))),
      mlp(register_module("mlp", Mlp(dim, static_cast<int64_t>(dim * mlp_ratio)))) {
  if (adaptive) {
    gate = register_module("gate", FusedLinear(dim, 1));
    threshold = register_module("threshold", FusedLinear(dim, 1));
  }
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& key_bias) {
  // drop_path returns the branch itself in eval mode or at rate 0.
  torch::Tensor h = x + tokcom::drop_path(attn(norm1(x), key_bias), drop_path, is_training());
  return h + tokcom::drop_path(mlp(norm2(h)), drop_path, is_training());
}

torch::Tensor BlockImpl::forward_cls(const torch::Tensor& x, const torch::Tensor& key_bias) {
  torch::Tensor h = x.narrow(1, 0, 1) + attn->forward_cls(norm1(x), key_bias);
  return h + mlp(norm2(h));
}

torch::Tensor drop_path(const torch::Tensor& branch, double p, bool training) {
  if (!training || p <= 0.0) return branch;
  std::vector<int64_t> shape(static_cast<size_t>(branch.dim()), 1);
  shape[0] = branch.size(0);
  const torch::Tensor keep = torch::empty(shape, branch.options()).bernoulli_(1.0 - p).div_(1.0 - p);
  return branch * keep;
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_chans, int64_t dim, int64_t patch)
    : proj(register_module(
          "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, dim, patch).stride(patch)))) {}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& images) {
  return proj(images).flatten(2).transpose(1, 2);  // (B, D, h, w) → (B, h·w, D), row-major grid
}

void validate_vit_options(const VitOptions& o) {
  auto fail = [](const std::string& what) { throw ConfigError("Vit: " + what); };
  if (o.image_size() <= 0 || o.patch_size() <= 0 || o.image_size() % o.patch_size() != 0) {
    fail(fmt::format("image_size {} must be a positive multiple of patch_size {}", o.image_size(),
                     o.patch_size()));
  }
  if (o.dim() <= 0 || o.heads() <= 0 || o.dim() % o.heads() != 0) {
    fail(fmt::format("dim {} must be a positive multiple of heads {}", o.dim(), o.heads()));
  }
  if (o.depth() <= 0 || o.num_classes() <= 0 || o.in_chans() <= 0 || !(o.mlp_ratio() > 0) ||
      !std::isfinite(o.mlp_ratio())) {
    fail(fmt::format("depth {}, num_classes {}, in_chans {} and mlp_ratio {} must be positive",
                     o.depth(), o.num_classes(), o.in_chans(), o.mlp_ratio()));
  }
  // A model that cannot fit in this machine's memory is a typo (model.depth=100000 allocated GBs
  // before failing): refuse it before a single tensor is made.
  const double d = double(o.dim()), hidden = d * o.mlp_ratio(), patch = double(o.in_chans()) * o.patch_size() * o.patch_size();
  const double params = double(o.depth()) * (4 * d * d + 2 * d * hidden + 9 * d + hidden) + patch * d +
                        double(o.num_patches() + 2) * d + double(o.num_classes()) * (d + 1);
  const double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (memory > 0 && params * 4 > memory) {
    fail(fmt::format("{:.3g} parameters ({:.1f} GiB in fp32; depth {}, dim {}, mlp_ratio {}) do not fit in this "
                     "machine's {:.1f} GiB of memory",
                     params, params * 4 / double(1 << 30), o.depth(), o.dim(), o.mlp_ratio(),
                     memory / double(1 << 30)));
  }
  const auto& blocks = o.adaptive_blocks();
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i] < 0 || blocks[i] >= o.depth() || (i > 0 && blocks[i] <= blocks[i - 1])) {
      fail(fmt::format("adaptive_blocks [{}] must be sorted, unique and in [0, depth = {})",
                       fmt::join(blocks, ", "), o.depth()));
    }
  }
  if (!(o.drop_path() >= 0.0 && o.drop_path() < 1.0)) {
    fail(fmt::format("drop_path {} must be in [0, 1)", o.drop_path()));
  }
  if (!(o.eval_cutoff() >= 0.0 && o.eval_cutoff() < 1.0)) {
    fail(fmt::format("eval_cutoff {} must be in [0, 1)", o.eval_cutoff()));
  }
  const auto& kept = o.calibration_kept();
  const auto& input = o.calibration_budget();
  if (kept.size() != input.size()) {
    fail(fmt::format("calibration_kept has {} values but calibration_budget has {}; expected equal lengths",
                     kept.size(), input.size()));
  }
  for (size_t i = 0; i < kept.size(); ++i) {
    if (!(kept[i] > 0.0 && kept[i] < 1.0 && input[i] > 0.0 && input[i] < 1.0) ||
        (i > 0 && !(kept[i] > kept[i - 1] && input[i] >= input[i - 1]))) {
      fail(fmt::format("calibration point {} (kept {}, budget {}): expected kept strictly increasing and budget "
                       "non-decreasing, both in (0, 1)",
                       i, kept[i], input[i]));
    }
  }
  if (!kept.empty() && o.adaptive_blocks().empty()) fail("a budget calibration needs adaptive_blocks");
}

double calibrated_budget(const VitOptions& o, double alpha) {
  const auto& kept = o.calibration_kept();
  const auto& input = o.calibration_budget();
  if (kept.empty() || alpha >= 1.0) return alpha;
  if (alpha <= kept.front()) return input.front();  // fewer tokens than the model ever keeps: its least
  for (size_t i = 1; i < kept.size(); ++i) {
    if (alpha <= kept[i]) {
      const double t = (alpha - kept[i - 1]) / (kept[i] - kept[i - 1]);
      return input[i - 1] + t * (input[i] - input[i - 1]);
    }
  }
  const double t = (alpha - kept.back()) / (1.0 - kept.back());  // towards the implied (1, 1)
  return input.back() + t * (1.0 - input.back());
}

VitImpl::VitImpl(VitOptions options_) : options(std::move(options_)) {
  validate_vit_options(options);
  const int64_t dim = options.dim();
  adaptive_.assign(options.depth(), false);
  for (int64_t b : options.adaptive_blocks()) adaptive_[b] = true;

  patch_embed = register_module("patch_embed", PatchEmbed(options.in_chans(), dim, options.patch_size()));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, dim}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, 1 + options.num_patches(), dim}));
  if (!options.adaptive_blocks().empty()) {
    budget_token_a = register_parameter("budget_token_a", torch::zeros({1, 1, dim}));
    budget_token_b = register_parameter("budget_token_b", torch::zeros({1, 1, dim}));
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.depth(); ++i) {
    // timm: the rate grows linearly with depth, from 0 at the first block to drop_path at the last.
    const double rate = options.depth() > 1 ? options.drop_path() * double(i) / double(options.depth() - 1) : options.drop_path();
    block_list_.emplace_back(dim, options.heads(), options.mlp_ratio(), adaptive_[i], rate);
    blocks->push_back(block_list_.back());
  }
  norm = register_module("norm", make_norm(dim));
  head = register_module("head", FusedLinear(dim, options.num_classes()));
  reset_parameters();
}

void VitImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  patch_embed->proj->reset_parameters();  // timm leaves the conv at PyTorch's default init
  trunc_normal(cls_token, kInitStd);
  trunc_normal(pos_embed, kInitStd);
  if (budget_token_a.defined()) {  // METHOD §3.1: t_A, t_B ~ N(0, 0.02²)
    budget_token_a.normal_(0.0, kInitStd);
    budget_token_b.normal_(0.0, kInitStd);
  }
  auto init_linear = [](FusedLinear& l) {
    trunc_normal(l->weight, kInitStd);
    l->bias.zero_();
  };
  for (Block& b : block_list_) {
    b->norm1->reset_parameters();
    b->norm2->reset_parameters();
    init_linear(b->attn->qkv);
    init_linear(b->attn->proj);
    init_linear(b->mlp->fc1);
    init_linear(b->mlp->fc2);
    if (b->adaptive) {  // METHOD §3.3: default Linear weights, biases N(5, 0.1²) and N(−5, 0.1²)
      b->gate->reset_parameters();
      b->threshold->reset_parameters();
      b->gate->bias.normal_(5.0, 0.1);
      b->threshold->bias.normal_(-5.0, 0.1);
    }
  }
  norm->reset_parameters();
  init_linear(head);
}

bool VitImpl::is_adaptive(int64_t block) const {
  return block >= 0 && block < static_cast<int64_t>(adaptive_.size()) && adaptive_[block];
}

TokenState VitImpl::embed(const torch::Tensor& images, const torch::Tensor& budget) {
  const int64_t size = options.image_size();
  check_shape("Vit::embed", "images", images, {-1, options.in_chans(), size, size});
  const int64_t batch = images.size(0);
  bool use_budget = false;
  if (budget.defined()) {
    check_shape("Vit::embed", "budget", budget, {batch});
    if (!budget.is_floating_point()) {
      throw ShapeError(fmt::format("Vit::embed: budget must be floating point, got {}",
                                   c10::toString(budget.scalar_type())));
    }
    if (batch > 0 && !((budget > 0) & (budget <= 1)).all().item<bool>()) {
      throw UsageError(fmt::format("Vit::embed: budget values must be in (0, 1], got min {} max {}",
                                   budget.min().item<double>(), budget.max().item<double>()));
    }
    // METHOD §3.1 / P23: α exactly 1 (whole batch) means the static model, no budget token.
    use_budget = !options.adaptive_blocks().empty() && batch > 0 && !(budget == 1).all().item<bool>();
  }
  torch::Tensor x;
  {
    const AutocastScope autocast(forward_precision(is_training()), images.device());
    x = patch_embed(images).to(pos_embed.scalar_type());
  }
  x = torch::cat({cls_token.expand({batch, -1, -1}), x}, 1) + pos_embed;
  if (use_budget) {
    // METHOD §3.1: b(α) = α·t_A + (1 − α)·t_B, appended after the positional embedding; a calibrated
    // model feeds the budget measured to keep α of the patches instead (docs/model.md).
    torch::Tensor fed = budget;
    if (!options.calibration_kept().empty()) {
      const torch::Tensor cpu = budget.to(torch::kCPU, torch::kDouble).contiguous();
      std::vector<double> mapped(cpu.data_ptr<double>(), cpu.data_ptr<double>() + batch);
      for (double& v : mapped) v = calibrated_budget(options, v);
      fed = torch::tensor(mapped, torch::kDouble).to(x.device());
    }
    torch::Tensor a = fed.to(x.dtype()).view({batch, 1, 1});
    x = torch::cat({x, a * budget_token_a + (1 - a) * budget_token_b}, 1);
  }
  TokenState state;
  state.x = x;
  state.has_budget = use_budget;
  if (use_budget && (is_training() ? options.budget_cap_train() : options.budget_cap())) {
    // ⌊α·N⌋ of the requested α (not the calibrated budget); the epsilon keeps α·N = 16 from
    // flooring to 15 when α is not exact in binary.
    state.cap = (budget.to(torch::kDouble) * static_cast<double>(options.num_patches()) + 1e-9).floor().to(torch::kLong);
  }
  state.positions =
      torch::arange(x.size(1), torch::TensorOptions().dtype(torch::kInt64).device(x.device()))
          .unsqueeze(0)
          .expand({batch, x.size(1)});
  return state;
}

TokenState VitImpl::forward_blocks(TokenState state, int64_t begin, int64_t end, SelectionMode mode,
                                   std::vector<BlockStats>* stats) {
  return run_blocks(std::move(state), begin, end, mode, stats, /*cls_only_last=*/false);
}

TokenState VitImpl::run_blocks(TokenState state, int64_t begin, int64_t end, SelectionMode mode,
                               std::vector<BlockStats>* stats, bool cls_only_last) {
  if (begin < 0 || begin > end || end > options.depth()) {
    throw UsageError(fmt::format("Vit::forward_blocks: block range [{}, {}) outside [0, {})", begin,
                                 end, options.depth()));
  }
  // `tokcom --precision bf16` outside training (core/precision.h); the tokens, masks and stats
  // leave in the model's dtype, so the channel and the server see what an fp32 model would send.
  const AutocastScope autocast(forward_precision(is_training()), state.x.device());
  const auto dtype = pos_embed.scalar_type();
  torch::Tensor key_bias = key_padding_bias(state);
  for (int64_t i = begin; i < end; ++i) {
    Block& block = block_list_[i];
    if (adaptive_[i] && state.has_budget) {
      BlockStats stat;
      stat.block = i;
      const bool had_padding = state.padding.defined();
      state = mode == SelectionMode::kSoft ? select_soft(block, i, std::move(state), &stat)
                                           : select_hard(block, i, std::move(state), &stat);
      if (state.padding.defined() || had_padding) key_bias = key_padding_bias(state);
      if (stats) stats->push_back(std::move(stat));
    } else {
      // classify(): the head reads token 0 alone, so the range's last block computes only its row.
      const bool cls_only = cls_only_last && i == end - 1;
      const auto run = [&](const torch::Tensor& x) {
        return cls_only ? block->forward_cls(x, key_bias) : block(x, key_bias);
      };
      if (state.mask.defined()) {  // METHOD §3.4: X ← Block(X ⊙ m) ⊙ m after selection began
        torch::Tensor m = state.mask.unsqueeze(-1);
        state.x = run(state.x * m) * (cls_only ? m.narrow(1, 0, 1) : m);
      } else {
        state.x = run(state.x);
      }
    }
  }
  if (autocast.active()) {
    state.x = state.x.to(dtype);
    if (state.mask.defined()) state.mask = state.mask.to(dtype);
    if (stats)
      for (BlockStats& s : *stats)
        if (s.patch_mask.defined()) s.patch_mask = s.patch_mask.to(dtype);
  }
  return state;
}

torch::Tensor VitImpl::forward_head(const TokenState& state) {
  // LayerNorm is per token, so normalising only the cls token equals normalising all tokens.
  const AutocastScope autocast(forward_precision(is_training()), state.x.device());
  return head(norm(state.x.select(1, 0))).to(pos_embed.scalar_type());
}

torch::Tensor VitImpl::classify(TokenState state, int64_t begin, SelectionMode mode, std::vector<BlockStats>* stats) {
  // Only token 0 of the last block's output reaches the head. Training keeps every row (the
  // trainers call forward_blocks and read the tokens for distillation; train mode here runs whole).
  return forward_head(run_blocks(std::move(state), begin, options.depth(), mode, stats, !is_training()));
}

VitOutput VitImpl::forward(const torch::Tensor& images, const torch::Tensor& budget, SelectionMode mode) {
  VitOutput out;
  out.logits = classify(embed(images, budget), 0, mode, &out.stats);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> VitImpl::forward_hidden(const torch::Tensor& images,
                                                                           const torch::Tensor& budget) {
  std::vector<std::pair<std::string, torch::Tensor>> hidden;
  TokenState state = embed(images, budget);
  hidden.emplace_back("embed", state.x);
  for (int64_t i = 0; i < options.depth(); ++i) {
    state = forward_blocks(std::move(state), i, i + 1, SelectionMode::kSoft);
    hidden.emplace_back("block." + std::to_string(i), state.x);
  }
  return hidden;
}

VitOptions vit_options_from_config(const Config& c) {
  return VitOptions()
      .image_size(c.get_int("model.image_size"))
      .patch_size(c.get_int("model.patch_size"))
      .in_chans(c.get_int("model.in_chans"))
      .num_classes(c.get_int("model.num_classes"))
      .dim(c.get_int("model.dim"))
      .depth(c.get_int("model.depth"))
      .heads(c.get_int("model.heads"))
      .mlp_ratio(c.get_double("model.mlp_ratio"))
      .drop_path(c.get_double("model.drop_path"))
      .adaptive_blocks(c.get_ints("model.adaptive_blocks"))
      .reference(c.get_bool("model.reference"))
      .eval_cutoff(c.get_double("model.eval_cutoff"))
      .calibration_kept(c.get_doubles("model.calibration_kept"))
      .calibration_budget(c.get_doubles("model.calibration_budget"))
      .budget_cap(c.get_bool("model.budget_cap"))
      .budget_cap_train(c.get_bool("model.budget_cap_train"));
}

Vit make_vit(const Config& config) { return Vit(vit_options_from_config(config)); }

torch::Tensor tokens_sent(const BlockStats& stats) { return stats.kept + 2; }

std::pair<double, double> kept_mean_std(const BlockStats& stats) {
  torch::Tensor k = stats.kept.to(torch::kDouble);
  return {k.mean().item<double>(), k.std(/*unbiased=*/false).item<double>()};
}

double vit_forward_flops(const VitOptions& o, bool budget_token, double keep, bool cls_only_last) {
  const double n = static_cast<double>(o.num_patches()), d = static_cast<double>(o.dim());
  const double hidden = static_cast<double>(static_cast<int64_t>(o.dim() * o.mlp_ratio()));
  const double patch_in = static_cast<double>(o.in_chans() * o.patch_size() * o.patch_size());
  const double extra = budget_token ? 1.0 : 0.0;
  const bool drops = budget_token && keep < 1.0 && !o.adaptive_blocks().empty();
  const int64_t first_drop = drops ? o.adaptive_blocks().front() : o.depth();
  const double kept_tokens = 1.0 + std::round(keep * n) + extra;
  double flops = 2.0 * n * patch_in * d;  // patch embedding
  for (int64_t i = 0; i < o.depth(); ++i) {
    const double t = i >= first_drop ? kept_tokens : 1.0 + n + extra;
    const bool adaptive = std::find(o.adaptive_blocks().begin(), o.adaptive_blocks().end(), i) != o.adaptive_blocks().end();
    // Queries: every token, or the class token alone in inference's last block (not a selecting one).
    const double q = cls_only_last && i == o.depth() - 1 && !(budget_token && adaptive) ? 1.0 : t;
    flops += 2.0 * t * d * (2.0 * d) + 2.0 * q * d * d  // k, v of every token; q of the queries
           + 2.0 * 2.0 * q * t * d     // q·kᵀ and attention·v over all heads
           + 2.0 * q * d * d           // proj
           + 2.0 * 2.0 * q * d * hidden;  // fc1, fc2
    if (budget_token && adaptive) flops += 2.0 * t * d * 2.0;  // gate and threshold heads
  }
  return flops + 2.0 * d * static_cast<double>(o.num_classes());  // head on the class token
}

}  // namespace tokcom

// Adaptive token selection: per-block masks (METHOD §3.3), soft masking (3.4) and hard dropping (3.5)
// with the choices of METHOD §10 P1, P3, P4 and P5.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tokcom/model/vit.h"

namespace tokcom {
namespace {

// Benchmark/test hook (VitImpl::keep_fraction_hook): keep the k highest gate scores per sample.
torch::Tensor top_k_scores(const torch::Tensor& gate, const torch::Tensor& patch_padding, int64_t k) {
  k = std::min<int64_t>(k, gate.size(1));
  torch::Tensor keep = torch::zeros_like(gate);
  if (k == 0) return keep;
  torch::Tensor ranked = patch_padding.defined() ? gate.masked_fill(patch_padding, -1.0) : gate;
  keep.scatter_(1, std::get<1>(ranked.topk(k, 1)), 1.0);
  return gate * keep;
}

}  // namespace

// (B, T) values over the current sequence → (B, N) patch grid by original position, 0 where the
// patch is no longer in the sequence (dropped by the hard path).
torch::Tensor to_patch_grid(const torch::Tensor& values, const TokenState& state, int64_t patches) {
  const int64_t batch = values.size(0), tokens = values.size(1);
  // Gathering keeps order and only removes tokens, so a full-length unpadded sequence is the identity.
  if (!state.padding.defined() && tokens == patches + 2) return values.slice(1, 1, tokens - 1);
  // Padded slots (position −1) land in a spare column that is cut off.
  torch::Tensor index = state.positions.masked_fill(state.positions < 0, patches + 2);
  return torch::zeros({batch, patches + 3}, values.options())
      .scatter(1, index, values)
      .slice(1, 1, patches + 1);
}

torch::Tensor key_padding_bias(const TokenState& state) {
  if (!state.padding.defined()) return {};
  // (B, 1, 1, T): −inf at padded keys; cls and budget are never padded, so no row is all −inf.
  return torch::zeros(state.padding.sizes(), state.x.options())
      .masked_fill_(state.padding, -std::numeric_limits<float>::infinity())
      .view({state.padding.size(0), 1, 1, state.padding.size(1)});
}

// (B, T) selection values over [cls, patches…, budget]: 1 at cls and budget, s_i = ReLU(g_i − τ)
// at patches, 0 at padded slots; eval mode zeroes s ≤ eval_cutoff (METHOD §3.3).
torch::Tensor VitImpl::selection_scores(Block& block, const TokenState& state, torch::Tensor* margin) {
  const torch::Tensor& x = state.x;
  const int64_t batch = x.size(0), tokens = x.size(1), dim = x.size(2);
  // Gate over the whole (contiguous) sequence, then keep the patch slots: cheaper than slicing x.
  torch::Tensor gate = torch::sigmoid(block->gate(x).squeeze(-1).slice(1, 1, tokens - 1));
  torch::Tensor patch_padding;
  if (state.padding.defined()) patch_padding = state.padding.slice(1, 1, tokens - 1);
  torch::Tensor s;
  if (keep_fraction_hook >= 0.0) {
    const auto k = static_cast<int64_t>(std::lround(keep_fraction_hook * options.num_patches()));
    s = top_k_scores(gate, patch_padding, k);
  } else {
    torch::Tensor source;
    if (!options.reference()) {
      source = x.select(1, tokens - 1);  // METHOD §10 P1: τ reads the budget token (always last)
    } else if (!state.padding.defined()) {
      source = x.select(1, tokens - 2);  // reference: position −2, the last patch token
    } else {
      // Reference on a packed batch: the last surviving patch sits at slot n_valid − 2 of
      // [cls, kept…, padding…, budget].
      torch::Tensor slot = (tokens - 2) - state.padding.sum(1);
      source = x.gather(1, slot.view({batch, 1, 1}).expand({batch, 1, dim})).squeeze(1);
    }
    torch::Tensor tau = torch::sigmoid(block->threshold(source));  // (B, 1)
    torch::Tensor z = gate - tau;
    if (margin) *margin = z;
    s = torch::relu(z);
  }
  if (!is_training()) s = s.masked_fill(s <= options.eval_cutoff(), 0.0);
  if (patch_padding.defined()) s = s.masked_fill(patch_padding, 0.0);
  if (state.cap.defined()) {  // set only where the mode's cap is on (Vit::embed)
    // budget_cap: only the cap[b] patches with the highest cumulative mask after this block stay
    // (ties by position; patches already at 0 rank last and stay 0).
    torch::Tensor cumulative = state.mask.defined() ? s * state.mask.slice(1, 1, tokens - 1) : s;
    torch::Tensor order = std::get<1>(cumulative.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
    torch::Tensor rank = order.argsort(/*dim=*/1, /*descending=*/false);  // inverse permutation: each patch's place
    s = s.masked_fill(rank >= state.cap.to(rank.device()).unsqueeze(1), 0.0);
  }
  torch::Tensor one = torch::ones({batch, 1}, s.options());
  return torch::cat({one, s, one}, 1);
}

// METHOD §3.4: m^l = s^l ⊙ m^{l−1}; X^{l+1} = Block(X^l ⊙ m^l) ⊙ m^l. Zeroed tokens stay as keys.
TokenState VitImpl::select_soft(Block& block, int64_t index, TokenState state, BlockStats* stat) {
  torch::Tensor margin;
  torch::Tensor s = selection_scores(block, state, &margin);
  state.mask = state.mask.defined() ? s * state.mask : s;
  torch::Tensor m = state.mask.unsqueeze(-1);
  state.x = block(state.x * m, key_padding_bias(state)) * m;
  stat->patch_mask = to_patch_grid(state.mask, state, options.num_patches());
  if (margin.defined()) {
    // to_patch_grid reads (B, T) values over [cls, patches…, budget]; the end columns are cut.
    torch::Tensor one = torch::ones({margin.size(0), 1}, margin.options());
    stat->patch_margin = to_patch_grid(torch::cat({one, margin, one}, 1), state, options.num_patches());
  }
  stat->kept = (stat->patch_mask > 0).sum(1);
  return state;
}

// METHOD §3.5 / P3: kept tokens are gathered into [cls, kept…, padding…, budget] (per-sample lengths
// packed to the longest with a key-padding mask), then the block runs on the shorter sequence.
// P4: kept tokens carry and are scaled by the cumulative soft mask, as in training (so with no
// drops this equals the soft path); reference mode does not scale. P5: a sample that drops every
// patch keeps cls + budget; reference mode keeps all its tokens at that block.
TokenState VitImpl::select_hard(Block& block, int64_t index, TokenState state, BlockStats* stat) {
  const int64_t batch = state.x.size(0), tokens = state.x.size(1), dim = state.x.size(2);
  torch::Tensor s = selection_scores(block, state);  // 0 at dropped and padded slots
  torch::Tensor keep = s > 0;
  torch::Tensor counts = keep.sum(1);  // (B) kept tokens incl. cls and budget
  torch::Tensor valid_counts = state.padding.defined() ? tokens - state.padding.sum(1) : torch::Tensor();
  // One device → host copy: per-sample kept and valid counts.
  torch::Tensor host = (valid_counts.defined() ? torch::stack({counts, valid_counts})
                                               : counts.unsqueeze(0)).to(torch::kCPU);
  auto h = host.accessor<int64_t, 2>();
  int64_t all_dropped = 0, total = 0, longest = 0, shortest = tokens;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t valid = valid_counts.defined() ? h[1][b] : tokens;
    if (h[0][b] == 2 && valid > 2) ++all_dropped;
  }
  if (all_dropped > 0 && options.reference()) {
    // Reference fallback: a sample with no surviving patch keeps every valid token at this block.
    torch::Tensor valid = state.padding.defined() ? state.padding.logical_not() : torch::ones_like(keep);
    torch::Tensor fallback = (counts == 2).unsqueeze(1);
    keep = torch::where(fallback, valid, keep);
    s = torch::where(fallback, valid.to(s.dtype()), s);
    counts = keep.sum(1);
    host = counts.unsqueeze(0).to(torch::kCPU);
    h = host.accessor<int64_t, 2>();
  } else if (all_dropped > 0) {
    spdlog::debug("Vit block {}: {} sample(s) dropped every patch; keeping cls + budget (METHOD §10 P5)",
                  index, all_dropped);
  }
  for (int64_t b = 0; b < batch; ++b) {
    total += h[0][b];
    longest = std::max(longest, h[0][b]);
    shortest = std::min(shortest, h[0][b]);
  }
  torch::Tensor m;  // cumulative mask that scales tokens (P4); undefined in reference mode
  if (!options.reference()) m = state.mask.defined() ? s * state.mask : s;
  torch::Tensor grid_values = m.defined() ? m : s;
  if (total != batch * tokens) {
    // Sort keys: kept non-budget tokens by position, then dropped/padded, budget last.
    torch::Tensor pos = torch::arange(tokens, counts.options()).unsqueeze(0).expand({batch, tokens});
    torch::Tensor key = torch::where(keep, pos, pos + tokens);
    key.select(1, tokens - 1).fill_(3 * tokens);
    torch::Tensor order = std::get<1>(key.sort(1));
    torch::Tensor idx = torch::cat({order.slice(1, 0, longest - 1), order.slice(1, tokens - 1, tokens)}, 1);
    state.x = state.x.gather(1, idx.unsqueeze(-1).expand({batch, longest, dim}));
    state.positions = state.positions.gather(1, idx);
    grid_values = grid_values.gather(1, idx);
    if (m.defined()) m = m.gather(1, idx);
    state.padding = torch::Tensor();
    if (shortest < longest) {
      torch::Tensor slot = torch::arange(longest - 1, counts.options()).unsqueeze(0);
      torch::Tensor pad = torch::cat(
          {slot >= (counts - 1).unsqueeze(1), torch::zeros({batch, 1}, keep.options())}, 1);
      state.padding = pad;
      state.x = state.x.masked_fill(pad.unsqueeze(-1), 0.0);
      state.positions = state.positions.masked_fill(pad, -1);
      grid_values = grid_values.masked_fill(pad, 0.0);
      if (m.defined()) m = m.masked_fill(pad, 0.0);
    }
  }
  state.mask = m;
  torch::Tensor bias = key_padding_bias(state);
  if (m.defined()) {
    torch::Tensor mm = m.unsqueeze(-1);
    state.x = block(state.x * mm, bias) * mm;
  } else {
    state.x = block(state.x, bias);
  }
  stat->patch_mask = to_patch_grid(grid_values, state, options.num_patches());
  stat->kept = counts - 2;
  return state;
}

}  // namespace tokcom

// Moving ViT weights between tokcom and timm/DeiT safetensors (DESIGN "Conventions": same names,
// no key map). Used by `tokcom weights import|export` (apps/tokcom/cmd_weights_io.cpp).
#pragma once
#include <string>
#include <vector>

#include "tokcom/core/safetensors.h"
#include "tokcom/model/vit.h"

namespace tokcom {

// The method's own tensors (METHOD §3): budget_token_a/b, blocks.{i}.gate.*, blocks.{i}.threshold.*.
bool is_method_tensor(const std::string& name);

// timm's resample_abs_pos_embed (bicubic, antialiased, in float32): the patch rows of `pos_embed`
// (1, prefix + g², D), a row-major g × g grid after `prefix` class-token rows, resampled to a
// `grid` × `grid` grid; the prefix rows unchanged; the result in pos_embed's dtype. So a checkpoint
// trained at one image size starts a model at another with the same patch size (DeiT-Tiny's 14 × 14
// grid at 224 px into the 8 × 8 of 128 px; a backbone pre-trained at low resolution).
torch::Tensor resample_pos_embed(const torch::Tensor& pos_embed, int64_t grid, int64_t prefix = 1);

// If `tensors` holds a pos_embed whose patch rows form another square grid than `model`'s (same
// width), replaces it by resample_pos_embed to the model's grid, logs it and returns the old grid
// side; otherwise leaves everything as it is (a loader's shape check reports any other mismatch)
// and returns 0.
int64_t fit_pos_embed(TensorMap& tensors, const Vit& model, const std::string& origin);

struct WeightsImport {
  std::vector<std::string> loaded;  // copied from the file
  std::vector<std::string> fresh;   // method tensors absent from the file: kept as initialised
  bool head_reinitialised = false;  // file head had another class count: kept the fresh head
  int64_t pos_embed_resampled_from = 0;  // > 0: the file's grid side, resampled to the model's
};
// Copies a timm/DeiT state dict (timm names) into `model`. A head of another size (e.g. 1000
// ImageNet classes) keeps the model's fresh head; missing method tensors keep their fresh init; a
// pos_embed of another square grid (another image size) is resampled as timm does (fit_pos_embed);
// any other missing tensor, an unexpected tensor (e.g. a distillation token) or a shape mismatch
// (e.g. another patch size) is an error naming the tensor. Logs what it did.
WeightsImport import_timm_weights(Vit& model, const TensorMap& tensors, const std::string& origin);
// The model's tensors under timm names; timm_only drops the method tensors.
TensorMap export_timm_weights(const Vit& model, bool timm_only);

}  // namespace tokcom

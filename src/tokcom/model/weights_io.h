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

struct WeightsImport {
  std::vector<std::string> loaded;  // copied from the file
  std::vector<std::string> fresh;   // method tensors absent from the file: kept as initialised
  bool head_reinitialised = false;  // file head had another class count: kept the fresh head
};
// Copies a timm/DeiT state dict (timm names) into `model`. A head of another size (e.g. 1000
// ImageNet classes) keeps the model's fresh head; missing method tensors keep their fresh init;
// any other missing tensor, an unexpected tensor (e.g. a distillation token) or a shape mismatch
// (e.g. pos_embed of another image size) is an error naming the tensor. Logs what it did.
WeightsImport import_timm_weights(Vit& model, const TensorMap& tensors, const std::string& origin);
// The model's tensors under timm names; timm_only drops the method tensors.
TensorMap export_timm_weights(const Vit& model, bool timm_only);

}  // namespace tokcom

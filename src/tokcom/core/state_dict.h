// A module's parameters and buffers as a TensorMap, and loading one back, with the names
// `named_parameters()` gives (timm keys such as `blocks.0.attn.qkv.weight`, DESIGN "Conventions"),
// so weights move between tokcom and PyTorch through safetensors without a key map.
#pragma once
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "tokcom/core/safetensors.h"

namespace tokcom {

// Parameters AND buffers (recursively), keyed by their dotted names. The values are the module's
// own tensors (aliases, not copies); undefined ones (e.g. a Linear without bias) are skipped.
TensorMap named_tensors(const torch::nn::Module& module);

struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the tensors (sorted)
  std::vector<std::string> unexpected;  // in the tensors, not in the module (sorted)
};

// Copies `tensors` into the module's parameters/buffers in place (under NoGradGuard; each value
// goes onto the device of the tensor it replaces). No lossy conversion: a shape that differs from
// the module's, or a dtype that does not widen into it exactly (F16/BF16 into F32 does; F64 into F32
// does not), is a ShapeError naming the tensor, expected vs actual. With `strict`,
// a missing or unexpected name is a FormatError naming it; otherwise they are only reported.
// Everything is checked before anything is copied: on error the module is unchanged.
// `origin` (a file name) prefixes the messages.
LoadReport load_tensors(torch::nn::Module& module,
                        const TensorMap& tensors,
                        const std::string& origin,
                        bool strict = true);

// named_tensors(module) → safetensors file (atomic write), with optional string metadata.
void save_module(const std::string& path,
                 const torch::nn::Module& module,
                 const std::map<std::string, std::string>& metadata = {});
// read_safetensors(path) → load_tensors(module, ..., path, strict).
LoadReport load_module(const std::string& path, torch::nn::Module& module, bool strict = true);

}  // namespace tokcom

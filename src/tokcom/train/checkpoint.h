// Crash-safe training checkpoints: weights, optimiser state and a JSON state whose atomic write is
// the commit point (a kill at any moment leaves the previous checkpoint or the new one, never a mix).
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace tokcom {

struct CheckpointState {
  int64_t epoch = 0;                                     // epochs finished
  nlohmann::json records = nlohmann::json::array();      // the stage's per-epoch records
};

// <dir>/{model.safetensors, optimizer.pt, state.json}; state.json (with the config digest) last.
void save_checkpoint(const std::string& dir, const CheckpointState& state, const torch::nn::Module& model,
                     const torch::optim::Optimizer& optimizer, const std::string& config_digest);

// false if <dir>/state.json does not exist; otherwise loads everything into model and optimizer.
// FormatError for a malformed state, ConfigError when it was made with another config digest.
bool load_checkpoint(const std::string& dir, CheckpointState* state, torch::nn::Module& model,
                     torch::optim::Optimizer& optimizer, const std::string& config_digest);

}  // namespace tokcom

#include "tokcom/train/checkpoint.h"

#include <filesystem>

#include <fmt/format.h>
#include <torch/serialize.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/state_dict.h"

namespace tokcom {
namespace fs = std::filesystem;

void save_checkpoint(const std::string& dir, const CheckpointState& state, const torch::nn::Module& model,
                     const torch::optim::Optimizer& optimizer, const std::string& config_digest) {
  fs::create_directories(dir);
  // Order matters for crash safety: weights and optimiser first, state.json (the commit point) last.
  save_module(dir + "/model.safetensors", model, {{"epoch", std::to_string(state.epoch)}});
  const std::string optim_tmp = dir + "/optimizer.pt.tmp";
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to(optim_tmp);
  fs::rename(optim_tmp, dir + "/optimizer.pt");
  nlohmann::json j;
  j["epoch"] = state.epoch;
  j["config_digest"] = config_digest;
  j["records"] = state.records;
  write_file_atomic(dir + "/state.json", j.dump(2) + "\n");
}

bool load_checkpoint(const std::string& dir, CheckpointState* state, torch::nn::Module& model,
                     torch::optim::Optimizer& optimizer, const std::string& config_digest) {
  if (!fs::exists(dir + "/state.json")) return false;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(dir + "/state.json"));
    state->epoch = j.at("epoch");
    state->records = j.at("records");
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}/state.json: malformed checkpoint state: {}", dir, e.what()));
  }
  if (j.value("config_digest", "") != config_digest) {
    throw ConfigError(fmt::format("{}: checkpoint was made with a different config (digest {} vs {}); "
                                  "use a fresh train.out or drop --resume",
                                  dir, j.value("config_digest", "?"), config_digest));
  }
  load_module(dir + "/model.safetensors", model, /*strict=*/true);
  // A damaged optimiser state must name its file (LibTorch's own message does not).
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(dir + "/optimizer.pt");
    optimizer.load(archive);
  } catch (const c10::Error& e) {
    throw FormatError(fmt::format("{}/optimizer.pt: not a readable optimiser state ({}); the checkpoint is damaged: "
                                  "restore the file, or delete {} to start this stage over",
                                  dir, e.what_without_backtrace(), dir));
  }
  return true;
}

}  // namespace tokcom

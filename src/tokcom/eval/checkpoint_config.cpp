#include "tokcom/eval/checkpoint_config.h"

#include <filesystem>

#include "tokcom/core/errors.h"

namespace tokcom {

Config checkpoint_config(const std::string& checkpoint, const std::string& config,
                         const std::vector<std::string>& overrides) {
  if (!config.empty()) return Config::load(config, overrides);
  const std::filesystem::path file(checkpoint);
  // Its own config first (weights/adaptive.safetensors → weights/adaptive.config.yaml: several models
  // in one folder), then the folder's (a training run's model.safetensors → config.yaml).
  const auto own = file.parent_path() / (file.stem().string() + ".config.yaml");
  if (std::filesystem::exists(own)) return Config::load(own.string(), overrides);
  const auto beside = file.parent_path() / "config.yaml";
  if (!std::filesystem::exists(beside)) {
    throw ConfigError("no config for checkpoint '" + checkpoint + "': pass --config or keep the config.yaml that "
                      "`tokcom train` wrote beside it (looked for '" + own.string() + "' and '" + beside.string() +
                      "')");
  }
  return Config::load(beside.string(), overrides);
}

}  // namespace tokcom

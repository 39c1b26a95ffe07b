#include "tokcom/eval/checkpoint_config.h"

#include <filesystem>

#include "tokcom/core/errors.h"

namespace tokcom {

Config checkpoint_config(const std::string& checkpoint, const std::string& config,
                         const std::vector<std::string>& overrides) {
  if (!config.empty()) return Config::load(config, overrides);
  const auto beside = std::filesystem::path(checkpoint).parent_path() / "config.yaml";
  if (!std::filesystem::exists(beside)) {
    throw ConfigError("no config for checkpoint '" + checkpoint + "': pass --config or keep the config.yaml that "
                      "`tokcom train` wrote beside it (looked for '" + beside.string() + "')");
  }
  return Config::load(beside.string(), overrides);
}

}  // namespace tokcom

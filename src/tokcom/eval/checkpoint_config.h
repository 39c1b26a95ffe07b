#pragma once
#include <string>
#include <vector>

#include "tokcom/core/config.h"

namespace tokcom {

// The config a checkpoint was trained with: `config` if given, else config.yaml beside the
// checkpoint (written by `tokcom train`), then `overrides`. ConfigError if neither exists.
Config checkpoint_config(const std::string& checkpoint, const std::string& config,
                         const std::vector<std::string>& overrides);

}  // namespace tokcom

#pragma once
#include <string>
#include <vector>

#include "tokcom/core/config.h"

namespace tokcom {

// The config a checkpoint was trained with: `config` if given, else <stem>.config.yaml beside the
// checkpoint (a folder of several models, e.g. a study's weights/), else config.yaml beside it
// (written by `tokcom train`); then `overrides`. ConfigError if none exists.
Config checkpoint_config(const std::string& checkpoint, const std::string& config,
                         const std::vector<std::string>& overrides);

}  // namespace tokcom

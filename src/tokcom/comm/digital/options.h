// comm/digital/options.h — the `digital` config section (configs/defaults/digital.yaml) as codec
// options, link model and method list, checked once.
#pragma once
#include <string>
#include <vector>

#include "tokcom/comm/digital/capacity.h"
#include "tokcom/comm/digital/codec.h"
#include "tokcom/core/config.h"

namespace tokcom::digital {

struct DigitalSettings {
  std::vector<std::string> methods;  // codec names, validated
  CapacityModel capacity = CapacityModel::kShannon;
  CodecOptions codec;
};

// Reads digital.*; unknown method, capacity model or search → ConfigError naming the key.
DigitalSettings digital_settings(const Config& config);

}  // namespace tokcom::digital

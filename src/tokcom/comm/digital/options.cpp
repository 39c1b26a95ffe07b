#include "tokcom/comm/digital/options.h"

#include <fmt/format.h>

#include <algorithm>

#include "tokcom/core/errors.h"

namespace tokcom::digital {

DigitalSettings digital_settings(const Config& config) {
  DigitalSettings s;
  s.methods = config.get_strings("digital.methods");
  for (const std::string& m : s.methods) {
    const auto& names = codec_names();
    if (std::find(names.begin(), names.end(), m) == names.end()) {
      throw ConfigError(fmt::format("digital.methods: '{}' is unknown, expected any of: {}", m,
                                    fmt::join(names, ", ")));
    }
  }
  s.capacity = parse_capacity_model(config.get_string("digital.capacity"));
  s.codec.reference = config.get_bool("digital.reference");
  const std::string search = config.get_string("digital.search");
  if (search != "bisect" && search != "linear") {
    throw ConfigError(
        fmt::format("digital.search: '{}' is unknown, expected bisect or linear", search));
  }
  s.codec.search = search == "bisect" ? QualitySearch::kBisect : QualitySearch::kLinear;
  s.codec.bisect_window = static_cast<int>(config.get_int("digital.bisect_window"));
  s.codec.avif_speed = static_cast<int>(config.get_int("digital.avif_speed"));
  if (s.codec.bisect_window < 0 || s.codec.avif_speed < 0 || s.codec.avif_speed > 10) {
    throw ConfigError(
        fmt::format("digital.bisect_window {} must be >= 0, digital.avif_speed {} "
                    "in 0..10",
                    s.codec.bisect_window, s.codec.avif_speed));
  }
  return s;
}

}  // namespace tokcom::digital

// libFuzzer target: YAML text → Config::from_yaml (core/config.h) and typed reads of a few keys.
// Any input must end in a config or a tokcom::Error (ConfigError); never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const tokcom::Config config = tokcom::Config::from_yaml(text);
    (void)config.get_int("model.depth");
    (void)config.get_doubles("comm.ratios");
    (void)config.get_string("data.dataset");
    (void)config.get_bool("comm.reference_power");
  } catch (const tokcom::Error&) {
  }
  return 0;
}

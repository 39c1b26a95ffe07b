// libFuzzer target: bytes of a .safetensors file → parse_safetensors (core/safetensors.h).
// Any input must end in tensors or a tokcom::Error; never a crash or an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tokcom::Safetensors st =
        tokcom::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "<fuzz>");
    for (const auto& [name, tensor] : st.tensors) (void)tensor.numel();
  } catch (const tokcom::Error&) {
  }
  return 0;
}

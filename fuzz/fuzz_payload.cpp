// libFuzzer target: a request off the network → protobuf parse → the server's validation
// (net/wire.h). Any input must end in a parsed request or a tokcom::Error; never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "edge.pb.h"
#include "tokcom/core/errors.h"
#include "tokcom/net/wire.h"

namespace {
// protobuf logs every invalid UTF-8 string it refuses: a parse failure is an expected outcome here.
void quiet(google::protobuf::LogLevel, const char*, int, const std::string&) {}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool silenced = (google::protobuf::SetLogHandler(&quiet), true);
  (void)silenced;
  static const tokcom::net::ServedModel served = [] {
    tokcom::net::ServedModel m;
    m.method = "proposal";
    m.mode = "hard";
    m.regime = "robust";
    m.ratios = {0.1, 0.5};
    m.symbols_per_token = {3, 16};
    m.max_tokens = 18;
    m.num_classes = 10;
    m.input_values = 784;
    return m;
  }();
  tokcom::v1::InferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  try {
    const tokcom::net::DecodedRequest r = tokcom::net::from_message(request.payload(), served);
    if (r.payload.symbols.size(1) != request.payload().tokens()) __builtin_trap();
  } catch (const tokcom::Error&) {
  }
  return 0;
}

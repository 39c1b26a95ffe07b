// libFuzzer target: a request off the network → protobuf parse → the server's validation
// (net/wire.h), against a token server and a digital (JPEG) server in turn (chosen by the request
// id's low bit). Any input must end in a parsed request or a tokcom::Error; never a crash.
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
  static const tokcom::net::ServedModel digital = [] {
    tokcom::net::ServedModel m;
    m.method = "jpeg";
    m.num_classes = 10;
    m.input_values = 784;
    m.max_codec_bytes = 2 * 784 + 1024;
    return m;
  }();
  tokcom::v1::InferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const bool to_digital = (request.request_id() & 1) != 0;
  try {
    const tokcom::net::DecodedRequest r = tokcom::net::from_message(request.payload(), to_digital ? digital : served);
    if (to_digital) {
      if (r.payload.bytes.size() != 1 || r.payload.bytes[0].empty() || r.payload.symbols.defined()) __builtin_trap();
    } else if (r.payload.symbols.size(1) != request.payload().tokens()) {
      __builtin_trap();
    }
  } catch (const tokcom::Error&) {
  }
  return 0;
}

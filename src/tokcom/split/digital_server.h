// split/digital_server.h — the server half of a digital baseline (METHOD §6.3, Q7): each received
// encoded image (resize, jpeg, webp, avif) is decoded at the model's input size and classified by
// the clean backbone. What `tokcom serve --method <codec>` runs; the sweep evaluates the same
// pipeline in-process (eval/digital_eval.h).
#pragma once
#include <memory>
#include <string>

#include <c10/core/Device.h>

#include "tokcom/comm/digital/codec.h"
#include "tokcom/data/transforms.h"
#include "tokcom/model/vit.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

class Config;

class DigitalServer final : public ServerHalf {
 public:
  // `backbone` in eval mode on `device`; images are C × S × S with C = model.in_chans and
  // S = data.image_size, normalised as the config's evaluation transform. ConfigError for an
  // unknown codec.
  DigitalServer(Vit backbone, const std::string& codec, const Config& config, c10::Device device);
  // Logits (B, classes) of the payload's images. FormatError naming payload.method or
  // payload.bytes[b] (corrupt or of the wrong size).
  torch::Tensor decode(const Payload& received) override;
  // The decoded, normalised images (B, C, S, S) on CPU; the same errors as decode().
  torch::Tensor images(const Payload& received) const;
  const std::string& codec_name() const { return codec_name_; }
  // Largest encoded image a client may send: twice the raw image plus 1 KiB (codec headers).
  int64_t max_codec_bytes() const { return 2 * channels_ * side_ * side_ + 1024; }

 private:
  Vit backbone_;
  std::string codec_name_;
  std::unique_ptr<digital::DigitalCodec> codec_;
  TransformOptions transform_;
  int64_t channels_ = 3, side_ = 0;
  c10::Device device_;
};

}  // namespace tokcom

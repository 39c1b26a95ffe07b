#include "tokcom/split/digital_server.h"

#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/data/dataset.h"

namespace tokcom {

DigitalServer::DigitalServer(Vit backbone, const std::string& codec, const Config& config, c10::Device device)
    : backbone_(std::move(backbone)), codec_name_(codec), codec_(digital::make_codec(codec)), device_(device) {
  channels_ = backbone_->options.in_chans();
  side_ = config.get_int("data.image_size");
  // The evaluation transform of the config's data set (normalisation by its name and channels).
  ImageDataset shape;
  shape.name = config.get_string("data.dataset");
  shape.images = torch::zeros({1, channels_, 1, 1}, torch::kUInt8);
  transform_ = transform_options(config, shape);
  backbone_->to(device_);
  backbone_->eval();
}

torch::Tensor DigitalServer::images(const Payload& received) const {
  if (received.method != codec_name_) {
    throw FormatError(fmt::format("DigitalServer::decode: payload.method is '{}', expected '{}'", received.method,
                                  codec_name_));
  }
  if (!received.is_digital() || received.bytes.empty()) {
    throw FormatError("DigitalServer::decode: payload.bytes is empty, expected one encoded image per sample");
  }
  std::vector<torch::Tensor> decoded;
  for (size_t b = 0; b < received.bytes.size(); ++b) {
    digital::Encoded e;
    e.bytes = received.bytes[b];
    e.fits = true;
    e.choice = 0;
    if (codec_name_ == "resize") {  // raw C·L·L bytes: the side follows from the size
      e.choice = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(e.bytes.size()) / channels_)));
    }
    try {
      decoded.push_back(codec_->decode(e, channels_, side_, side_));
    } catch (const Error& err) {
      throw FormatError(fmt::format("payload.bytes[{}] ({} bytes) is not a decodable {} image of {}×{}×{}: {}", b,
                                    e.bytes.size(), codec_name_, channels_, side_, side_, err.what()));
    }
  }
  return eval_transform(torch::stack(decoded), transform_);
}

torch::Tensor DigitalServer::decode(const Payload& received) {
  const torch::Tensor x = images(received).to(device_);
  torch::NoGradGuard no_grad;
  return backbone_->forward(x, {}, SelectionMode::kHard).logits;
}

}  // namespace tokcom

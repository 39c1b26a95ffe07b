#include "tokcom/split/mobilenet_split.h"

#include <filesystem>

#include <fmt/format.h>
#include <torch/torch.h>

#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"
#include "tokcom/split/frozen_check.h"
#include "tokcom/split/method.h"
#include "tokcom/split/proposal.h"

namespace tokcom {
namespace fs = std::filesystem;

MobileNetJsccNetImpl::MobileNetJsccNetImpl(MobileNetV3 mobilenet_in, std::string method_in, double ratio_in,
                                           int64_t image_size)
    : mobilenet(std::move(mobilenet_in)), method(std::move(method_in)), ratio(ratio_in) {
  if (!is_mobilenet_method(method)) {
    throw ConfigError(fmt::format("MobileNet JSCC method '{}', expected mobilenet-flat or mobilenet-cnn", method));
  }
  map_shape = mobilenet->device_shape(image_size, image_size);
  // torchvision's names at the top level, so the file also loads into a plain MobileNetV3.
  for (auto& c : mobilenet->named_children()) register_module(c.key(), c.value());
  if (method == "mobilenet-flat") {
    flat = register_module("jscc", JsccCodec(JsccOptions().dim(map_shape[1] * map_shape[2]).ratio(ratio)));
  } else {
    if (map_shape[1] != map_shape[2]) {
      throw ConfigError(fmt::format("mobilenet-cnn needs a square device map, got {}×{}", map_shape[1], map_shape[2]));
    }
    cnn = register_module("jscc", CnnJsccCodec(CnnJsccOptions().channels(map_shape[0]).side(map_shape[1]).ratio(ratio)));
  }
}

torch::Tensor MobileNetJsccNetImpl::encode_features(const torch::Tensor& f) {
  check_shape("MobileNetJsccNet::encode_features", "f", f, {-1, map_shape[0], map_shape[1], map_shape[2]});
  if (flat) return flat->encoder(f.flatten(2));  // channels as tokens (METHOD §6.2)
  return cnn->encoder(f);
}

torch::Tensor MobileNetJsccNetImpl::decode_features(const torch::Tensor& y) {
  if (flat) return flat->decoder(y).view({y.size(0), map_shape[0], map_shape[1], map_shape[2]});
  return cnn->decoder(y);
}

void MobileNetJsccNetImpl::set_jscc_training_mode() {
  train();
  // METHOD §6.2 / 5.6: the device half runs frozen with its BatchNorm statistics frozen; the
  // classifier is frozen too (no dropout on a frozen head).
  for (int64_t i = 0; i < MobileNetV3Impl::kSplit; ++i) mobilenet->features[i]->eval();
  mobilenet->classifier->eval();
}

int64_t MobileNetJsccNetImpl::symbols_per_image() const {
  if (flat) return map_shape[0] * flat->options.symbols_per_token();
  const int64_t s = cnn->encoder->plan.side;
  return map_shape[0] * s * s;
}

Payload mobilenet_encode(MobileNetJsccNet& net, const torch::Tensor& features, int64_t ratio_index) {
  Payload p;
  p.method = net->method;
  p.ratio_index = ratio_index;
  p.symbols = net->encode_features(features);
  return p;
}

torch::Tensor mobilenet_server_logits(MobileNetJsccNet& net, const Payload& received) {
  const std::string caller = "MobileNetServer::decode";
  validate(received, caller, -1, /*check_values=*/false);
  if (received.method != net->method) {
    throw FormatError(fmt::format("{}: payload.method is '{}', expected '{}'", caller, received.method, net->method));
  }
  const int64_t c = net->map_shape[0];
  if (net->flat) {
    check_shape(caller, "payload.symbols", received.symbols, {-1, c, net->flat->options.symbols_per_token()});
  } else {
    const int64_t s = net->cnn->encoder->plan.side;
    check_shape(caller, "payload.symbols", received.symbols, {-1, c, s, s});
  }
  if (received.token_mask.defined() || received.token_scale.defined()) {
    throw FormatError(fmt::format("{}: payload '{}' carries a token_mask/token_scale; a MobileNet payload sends every "
                                  "channel",
                                  caller, received.method));
  }
  return net->mobilenet->forward_server(net->decode_features(received.symbols));
}

MobileNetDevice::MobileNetDevice(std::vector<MobileNetJsccNet> nets) : nets_(std::move(nets)) {
  if (nets_.empty()) throw UsageError("MobileNetDevice: no codecs");
}

Payload MobileNetDevice::encode(const torch::Tensor& images, const Decision& decision, DeviceStats* stats) {
  return encode_each_ratio(images, decision.budget, {decision.ratio_index}, stats).front();
}

std::vector<Payload> MobileNetDevice::encode_each_ratio(const torch::Tensor& images, double budget,
                                                        const std::vector<int64_t>& ratio_indices, DeviceStats* stats) {
  for (int64_t r : ratio_indices) validate_decision(Decision{budget, r}, num_ratios(), "MobileNetDevice::encode");
  torch::NoGradGuard no_grad;
  // The frozen device half is the same in every file of a bank (checked at load): the first one runs.
  const torch::Tensor f = nets_.front()->mobilenet->forward_device(images);
  if (stats) {
    stats->kept_patches = torch::full({images.size(0)}, nets_.front()->map_shape[0], images.options().dtype(torch::kLong));
  }
  std::vector<Payload> out;
  for (int64_t r : ratio_indices) out.push_back(mobilenet_encode(nets_[r], f, r));
  return out;
}

MobileNetServer::MobileNetServer(std::vector<MobileNetJsccNet> nets) : nets_(std::move(nets)) {
  if (nets_.empty()) throw UsageError("MobileNetServer: no codecs");
}

torch::Tensor MobileNetServer::decode(const Payload& received) {
  if (received.ratio_index < 0 || received.ratio_index >= static_cast<int64_t>(nets_.size())) {
    throw FormatError(fmt::format("MobileNetServer::decode: payload.ratio_index is {}, expected in [0, {})",
                                  received.ratio_index, nets_.size()));
  }
  torch::NoGradGuard no_grad;
  return mobilenet_server_logits(nets_[received.ratio_index], received);
}

bool is_mobilenet_pair_tensor(const std::string& name) {
  return name.rfind("jscc.", 0) == 0 ||
         (name.rfind("features.", 0) == 0 && std::stoll(name.substr(9)) >= MobileNetV3Impl::kSplit);
}

SplitModel load_mobilenet_split(const Config& config, const std::string& bank_dir, const std::string& regime,
                                const std::vector<double>& ratios, const std::string& method, torch::Device device) {
  if (!is_mobilenet_method(method)) {
    throw UsageError(fmt::format("load_mobilenet_split: method '{}', expected mobilenet-flat or mobilenet-cnn", method));
  }
  if (ratios.empty()) throw UsageError("load_mobilenet_split: no ratios asked for");
  const int64_t image_size = config.get_int("data.image_size");
  std::vector<MobileNetJsccNet> nets;
  // features[0:3] and the classifier: every file must agree; the codec and features[3:] are per r.
  FrozenCheck frozen(is_mobilenet_pair_tensor);
  for (double r : ratios) {
    const std::string path = jscc_file(bank_dir, regime, r);
    if (!fs::exists(path)) {
      throw DataError(fmt::format("{}: no trained {} model for regime '{}' and r = {} (train it with `tokcom train -c "
                                  "<config> train.stage=jscc train.method={} train.init=<mobilenet backbone> "
                                  "train.ratios={} comm.train_regime={} train.out={}`)",
                                  path, method, regime, r, method, r, regime, bank_dir));
    }
    const Safetensors file = read_safetensors(path);
    const auto it = file.metadata.find("method");
    if (it == file.metadata.end() || it->second != method) {
      throw FormatError(fmt::format("{}: trained for method '{}', expected '{}' (a bank folder holds one method)", path,
                                    it == file.metadata.end() ? "?" : it->second, method));
    }
    MobileNetJsccNet net(make_mobilenet(config), method, r, image_size);
    load_tensors(*net, file.tensors, path, /*strict=*/true);
    frozen.add(path, file.tensors);
    net->to(device);
    net->eval();
    nets.push_back(net);
  }
  SplitModel split;
  split.device = std::make_shared<MobileNetDevice>(nets);
  split.server = std::make_shared<MobileNetServer>(nets);
  split.input_values = input_values(config);
  return split;
}

namespace {

class MobileNetPair : public TrainablePair {
 public:
  MobileNetPair(const Config& config, const std::string& init, const std::string& method, double ratio)
      : method_(method) {
    MobileNetV3 mobilenet = make_mobilenet(config);
    const LoadReport report = load_module(init, *mobilenet, /*strict=*/false);
    if (!report.missing.empty()) {
      throw FormatError(fmt::format("{}: {} MobileNetV3 tensors missing (first: {}); train.init must be a MobileNet "
                                    "backbone of the configured variant (train.model=mobilenet)",
                                    init, report.missing.size(), report.missing.front()));
    }
    net_ = MobileNetJsccNet(mobilenet, method, ratio, config.get_int("data.image_size"));
    for (auto& item : mobilenet->named_parameters()) {
      const bool train = is_mobilenet_pair_tensor(item.key());
      item.value().set_requires_grad(train);
      if (train) trained_.push_back(item.value());
    }
    for (auto& p : net_->named_parameters()) {
      if (p.key().rfind("jscc.", 0) == 0) codec_parameters_.push_back(p.value());
    }
    trained_.insert(trained_.end(), codec_parameters_.begin(), codec_parameters_.end());
    link_.device = std::make_shared<MobileNetDevice>(std::vector<MobileNetJsccNet>{net_});
    link_.server = std::make_shared<MobileNetServer>(std::vector<MobileNetJsccNet>{net_});
    link_.input_values = input_values(config);
  }

  std::string method() const override { return method_; }
  torch::nn::Module& module() override { return *net_; }
  const std::vector<torch::Tensor>& trained() const override { return trained_; }
  const std::vector<torch::Tensor>& codec_parameters() const override { return codec_parameters_; }
  bool has_budget() const override { return false; }
  void train_mode() override { net_->set_jscc_training_mode(); }
  FrozenBatch frozen(const torch::Tensor& images, const torch::Tensor&) override {
    torch::NoGradGuard no_grad;
    return {{net_->mobilenet->forward_device(images)}};  // the feature map
  }
  Payload encode(const FrozenBatch& batch) override { return mobilenet_encode(net_, batch.tensors.at(0), 0); }
  torch::Tensor receive(const Payload& received) override { return mobilenet_server_logits(net_, received); }
  torch::Tensor codec_rows(const torch::Tensor& images, const torch::Tensor&) override {
    torch::NoGradGuard no_grad;
    return net_->mobilenet->forward_device(images);  // one feature map per row
  }
  Payload encode_rows(const torch::Tensor& maps) override { return mobilenet_encode(net_, maps, 0); }
  torch::Tensor decode_rows(const Payload& received) override { return net_->decode_features(received.symbols); }
  SplitModel link() override { return link_; }

 private:
  std::string method_;
  MobileNetJsccNet net_{nullptr};
  std::vector<torch::Tensor> trained_, codec_parameters_;
  SplitModel link_;
};

}  // namespace

std::unique_ptr<TrainablePair> make_mobilenet_pair(const Config& config, const std::string& init,
                                                   const std::string& method, double ratio) {
  return std::make_unique<MobileNetPair>(config, init, method, ratio);
}

}  // namespace tokcom

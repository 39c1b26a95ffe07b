// split/mobilenet_split.h — the MobileNetV3 baselines as split models (METHOD §6.2). The device runs
// features[0:3] (24×H/8×W/8 for Small) and one of two JSCC codecs:
//   "mobilenet-flat": every channel is a token of H'·W' reals, the token JSCC of METHOD §5.2–5.4
//                     with width H'·W' → (B, 24, d_r) symbols, d_r = max(⌊H'W'·r⌋, 1);
//   "mobilenet-cnn":  the convolutional JSCC on the map → (B, 24, s, s), s = max(⌊H'·r⌋, 1).
// The server decodes back to the 24×H'×W' map and runs features[3:], pooling and the classifier.
// Static methods: every image sends the same number of symbols, the budget α is ignored (= 1).
//
// A trained bank is a folder written by `tokcom train train.stage=jscc train.method=<method>` with
// one file per (regime, r), jscc-<regime>-r<r>.safetensors: the whole MobileNet under torchvision
// names (features[3:] fine-tuned for that r) + the codec under "jscc." (flat: encoder.re/im.{0,2,4},
// decoder.mlp.{0,2,4}; CNN: encoder.re/im.{0,2,4}, decoder.net.{0,2,4}), metadata "method".
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "tokcom/comm/cnn_jscc.h"
#include "tokcom/comm/jscc.h"
#include "tokcom/model/mobilenet_v3.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

class Config;

// One (method, r): the MobileNet's modules under their torchvision names at the top level (shared
// with `mobilenet`, not copied) and the codec under "jscc.".
class MobileNetJsccNetImpl : public torch::nn::Module {
 public:
  // `image_size`: the input side (sets the device map's side). ConfigError for an unknown method.
  MobileNetJsccNetImpl(MobileNetV3 mobilenet, std::string method, double ratio, int64_t image_size);
  // Device features (B, C, h, w) → complex symbols (B, C, d_r) (flat) or (B, C, s, s) (CNN).
  torch::Tensor encode_features(const torch::Tensor& f);
  // Received symbols → features (B, C, h, w) for the server half.
  torch::Tensor decode_features(const torch::Tensor& y);
  // Frozen parts (features[0:3], classifier) in eval mode, features[3:] and the codec in train mode.
  void set_jscc_training_mode();
  // Complex symbols per image for this (method, r): C·d_r or C·s².
  int64_t symbols_per_image() const;

  MobileNetV3 mobilenet;
  std::string method;
  double ratio = 0;
  std::vector<int64_t> map_shape;  // (C, h, w) of the device output
  JsccCodec flat{nullptr};         // mobilenet-flat
  CnnJsccCodec cnn{nullptr};       // mobilenet-cnn
};
TORCH_MODULE(MobileNetJsccNet);

// Device half of one net on images (B, C, H, W): features[0:3] then the encoder (grad flows through
// the encoder only if the caller allows it; the device half runs under the caller's grad mode).
Payload mobilenet_encode(MobileNetJsccNet& net, const torch::Tensor& features, int64_t ratio_index);
// Server half: received payload → logits. ShapeError/FormatError naming the payload field.
torch::Tensor mobilenet_server_logits(MobileNetJsccNet& net, const Payload& received);

class MobileNetDevice final : public DeviceHalf {
 public:
  explicit MobileNetDevice(std::vector<MobileNetJsccNet> nets);
  std::string method() const override { return nets_.front()->method; }
  int64_t num_ratios() const override { return static_cast<int64_t>(nets_.size()); }
  double ratio(int64_t index) const override { return nets_.at(index)->ratio; }
  Payload encode(const torch::Tensor& images, const Decision& decision, DeviceStats* stats = nullptr) override;
  std::vector<Payload> encode_each_ratio(const torch::Tensor& images, double budget,
                                         const std::vector<int64_t>& ratio_indices,
                                         DeviceStats* stats = nullptr) override;

 private:
  std::vector<MobileNetJsccNet> nets_;
};

class MobileNetServer final : public ServerHalf {
 public:
  explicit MobileNetServer(std::vector<MobileNetJsccNet> nets);
  torch::Tensor decode(const Payload& received) override;

 private:
  std::vector<MobileNetJsccNet> nets_;
};

// The tensors one (regime, r) file of a MobileNet bank trains and owns: the codec ("jscc.*") and
// features[kSplit:]. features[0:kSplit] (BatchNorm statistics included) and the classifier are the
// frozen model every file of a bank shares.
bool is_mobilenet_pair_tensor(const std::string& name);

// Loads the `method` bank in `bank_dir` for `regime` and `ratios` onto `device`, in eval mode.
// DataError naming a missing file (and the command that trains it); FormatError if a file was
// trained for another method or the files disagree on the frozen device half.
SplitModel load_mobilenet_split(const Config& config, const std::string& bank_dir, const std::string& regime,
                                const std::vector<double>& ratios, const std::string& method, torch::Device device);

// One (regime, r) of a mobilenet-flat / mobilenet-cnn bank for the JSCC stage, from the MobileNet
// backbone in `init` and a fresh codec: features[kSplit:] and the codec train; features[0:kSplit]
// (BatchNorm statistics included) and the classifier stay frozen. FormatError when `init` lacks
// tensors of the configured variant.
std::unique_ptr<TrainablePair> make_mobilenet_pair(const Config& config, const std::string& init,
                                                   const std::string& method, double ratio);

}  // namespace tokcom

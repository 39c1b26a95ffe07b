// split/split_model.h — the interface every method implements (DESIGN "One idea carries the
// architecture"):
//
//   images ─▶ DeviceHalf(decision) ─▶ Payload ─▶ Channel(snr, rng) ─▶ Payload ─▶ ServerHalf ─▶ logits
//
// A Decision is what the controller picks per slot; the Payload is what crosses the air (and what
// the network transport serialises); ζ is counted from the payload alone (comm/zeta.h).
#pragma once
#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokcom/comm/payload.h"
#include "tokcom/split/decision.h"

namespace tokcom {

class Config;
enum class SelectionMode;  // model/vit.h

// Per-image statistics the device half reports next to its payload (for the sweep's CSV).
struct DeviceStats {
  torch::Tensor kept_patches;  // (B) int64 patch tokens kept after selection (all N when static)
};

class DeviceHalf {
 public:
  virtual ~DeviceHalf() = default;
  virtual std::string method() const = 0;
  // Number of decisions' ratio indices this device can encode (the trained bank's size).
  virtual int64_t num_ratios() const = 0;
  virtual double ratio(int64_t index) const = 0;
  // images (B, C, H, W) normalised → payload (symbols on the images' device). Throws UsageError
  // for a budget outside (0, 1] or a ratio index outside the bank.
  virtual Payload encode(const torch::Tensor& images, const Decision& decision,
                         DeviceStats* stats = nullptr) = 0;
  // The payloads of several ratio indices at one budget, in their order, equal to one encode() per
  // index; what runs before the codec (the device blocks and the token selection, which do not depend
  // on r) runs once for all of them. What a sweep does per batch: its cells share a budget over the
  // whole bank. The default calls encode() per index.
  virtual std::vector<Payload> encode_each_ratio(const torch::Tensor& images, double budget,
                                                 const std::vector<int64_t>& ratio_indices,
                                                 DeviceStats* stats = nullptr);
};

class ServerHalf {
 public:
  virtual ~ServerHalf() = default;
  // Received payload → logits (B, num_classes). Validates the payload (method, ratio index, width)
  // and throws ShapeError/FormatError naming the field.
  virtual torch::Tensor decode(const Payload& received) = 0;
};

struct SplitModel {
  std::shared_ptr<DeviceHalf> device;
  std::shared_ptr<ServerHalf> server;
  int64_t input_values = 0;  // C·H·W of the model's input: the n of ζ = k / n (METHOD §5.5)
};

// What a pair's frozen device half computed for one training batch, packed by the pair (undefined
// entries allowed). Opaque to the trainer, which keeps it: every pair of a bank trained in one
// process sees the same batches and budgets, so they share it (jscc_stage.cpp, FrozenCache).
struct FrozenBatch {
  std::vector<torch::Tensor> tensors;
  int64_t bytes() const;  // storage of the defined tensors
};

// One (regime, r) model of a method's bank while the JSCC stage trains it (METHOD §5.6): the device
// and server halves of the SplitModel it becomes, in their training form (soft token selection with
// a budget per image, no gradient into the frozen device half, gradient through the codec and the
// server half), and what the codec warm start needs. Made by the method's registry entry
// (split/method.h), so the trainer knows no method by name.
class TrainablePair {
 public:
  virtual ~TrainablePair() = default;
  virtual std::string method() const = 0;
  virtual torch::nn::Module& module() = 0;                                  // checkpointed; one bank file
  virtual const std::vector<torch::Tensor>& trained() const = 0;            // server half + codec
  virtual const std::vector<torch::Tensor>& codec_parameters() const = 0;   // the codec alone (warm start)
  virtual bool has_budget() const = 0;                                      // draws a budget per image
  virtual void train_mode() = 0;                                            // frozen parts stay in eval mode
  // images (B, C, H, W), budgets (B) or undefined → the payload sent, in two steps: the frozen device
  // half (no gradient; the same images and budgets give the same batch), then the trained encoder.
  virtual FrozenBatch frozen(const torch::Tensor& images, const torch::Tensor& budgets) = 0;
  virtual Payload encode(const FrozenBatch& batch) = 0;
  // The received payload → logits (B, classes).
  virtual torch::Tensor receive(const Payload& received) = 0;
  // Warm start: what the codec must carry for a batch (no gradient), one channel "image" per row
  // along dim 0, and rows → payload → decoded rows.
  virtual torch::Tensor codec_rows(const torch::Tensor& images, const torch::Tensor& budgets) = 0;
  virtual Payload encode_rows(const torch::Tensor& rows) = 0;
  virtual torch::Tensor decode_rows(const Payload& received) = 0;
  // The same weights as a SplitModel (hard path, every token) for validation through the pipeline.
  virtual SplitModel link() = 0;
};

// n of ζ = k / n for a config: comm.input_values when > 0, else model.in_chans · image_size²
// (issue "semantic channel": ζ is counted against the model's own input size, so 64-px runs are
// self-consistent; the paper's 224-px RGB case is 150 528).
int64_t input_values(const Config& config);

// The trained bank of any method in `bank_dir` (proposal and vit-ae: split/proposal.h;
// mobilenet-flat and mobilenet-cnn: split/mobilenet_split.h), in eval mode on `device`. UsageError
// for an unknown method or a bank of another method; DataError naming a missing file.
SplitModel load_split(const Config& config, const std::string& bank_dir, const std::string& method,
                      const std::string& regime, const std::vector<double>& ratios, SelectionMode mode,
                      c10::Device device);

// Throws UsageError unless budget ∈ (0, 1] and 0 ≤ ratio_index < num_ratios.
void validate_decision(const Decision& decision, int64_t num_ratios, const std::string& caller);

}  // namespace tokcom

// split/frozen_check.h — the files of one trained bank must share their frozen tensors (the device
// half and whatever stage 3 does not train), or their device halves would disagree.
#pragma once
#include <functional>
#include <string>

#include "tokcom/core/safetensors.h"

namespace tokcom {

class FrozenCheck {
 public:
  // `trained(name)`: tensors fine-tuned per r (and the codec), which may differ between files.
  explicit FrozenCheck(std::function<bool(const std::string&)> trained) : trained_(std::move(trained)) {}
  // The first file's frozen tensors are kept; every later file must hold the same ones, equal
  // bit for bit. FormatError naming the file, the tensor and the first file otherwise.
  void add(const std::string& path, const TensorMap& tensors);

 private:
  std::function<bool(const std::string&)> trained_;
  TensorMap frozen_;
  std::string first_;
};

}  // namespace tokcom

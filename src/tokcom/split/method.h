// split/method.h — the methods tokcom compares, in one table. Every place that takes a method name
// (sweep, reproduce, serve, the JSCC stage, load_split, the report) asks this registry what the
// method is instead of comparing strings. Adding a method: its split model in one file under
// split/ (a DeviceHalf + ServerHalf pair, a bank loader and its TrainablePair) and one line in
// method.cpp's table
// (docs/ARCHITECTURE.md walks through it).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "tokcom/model/vit.h"
#include "tokcom/split/split_model.h"

namespace tokcom {

class Config;

enum class MethodKind {
  kTokens,     // a ViT split: tokens through a token JSCC (proposal, vit-ae)
  kMobileNet,  // a MobileNetV3 split: its feature map through a JSCC (mobilenet-flat, mobilenet-cnn)
  kDigital,    // a capacity-achieving codec on the image (METHOD §6.3); ζ is a coordinate, not a result
};

// The trained bank of a method: `bank_dir` for `regime` and `ratios`, in eval mode on `device`.
using BankLoader = SplitModel (*)(const Config& config, const std::string& bank_dir, const std::string& method,
                                  const std::string& regime, const std::vector<double>& ratios, SelectionMode mode,
                                  c10::Device device);

// One (regime, r) of its bank for the JSCC stage to train, from the model in `init`.
using PairMaker = std::unique_ptr<TrainablePair> (*)(const Config& config, const std::string& init,
                                                     const std::string& method, double ratio);

struct Method {
  const char* name;         // in flags, configs and CSVs: "proposal"
  MethodKind kind;
  const char* paper_label;  // the paper's name for it ("Proposal", "ViT AE", "MNv3 CNN", "JPEG")
  bool has_budget;          // α is a decision (tokens selected before the split)
  const char* bank_flag;    // `tokcom sweep`'s flag for its bank folder ("" without a bank)
  const char* stage;        // the `reproduce` stage whose folder holds its bank ("" without one)
  BankLoader load;          // nullptr for digital codecs (no trained bank)
  PairMaker make_pair;      // how the JSCC stage trains one file of the bank (nullptr: nothing to train)
  const char* about;        // one line for --help and the docs

  bool has_bank() const { return load != nullptr; }
  bool digital() const { return kind == MethodKind::kDigital; }
};

// Every method, in the paper's order.
const std::vector<Method>& methods();
// The method called `name`; a digital codec may carry the suffix "/practical" (a practical link
// model instead of the capacity). nullptr when unknown.
const Method* find_method(const std::string& name);
// The same, or a UsageError "<what>: unknown method '<name>' (expected …)" naming every method.
const Method& method_named(const std::string& name, const std::string& what);
// Comma-separated names of the methods for which `keep` holds (all by default).
std::string method_names(bool (*keep)(const Method&) = nullptr);

// Shorthands asked in many places; false for unknown names.
bool method_has_budget(const std::string& name);
bool is_digital_method(const std::string& name);
bool is_mobilenet_method(const std::string& name);

}  // namespace tokcom

#include "tokcom/split/method.h"

#include <fmt/format.h>

#include "tokcom/core/errors.h"
#include "tokcom/split/mobilenet_split.h"
#include "tokcom/split/proposal.h"

namespace tokcom {
namespace {

// proposal and vit-ae share a loader; the bank's config says which one it holds.
SplitModel load_token_bank(const Config& config, const std::string& bank_dir, const std::string& method,
                           const std::string& regime, const std::vector<double>& ratios, SelectionMode mode,
                           c10::Device device) {
  SplitModel model = load_proposal(config, bank_dir, regime, ratios, mode, device);
  if (model.device->method() != method) {
    throw UsageError(fmt::format("{}: the bank holds a '{}' model (its config's model.adaptive_blocks), not '{}'",
                                 bank_dir, model.device->method(), method));
  }
  return model;
}

SplitModel load_mobilenet_bank(const Config& config, const std::string& bank_dir, const std::string& method,
                               const std::string& regime, const std::vector<double>& ratios, SelectionMode,
                               c10::Device device) {
  return load_mobilenet_split(config, bank_dir, regime, ratios, method, device);
}

const std::vector<Method> kMethods = {
    // name, kind, paper label, budget, sweep's bank flag, reproduce stage, bank loader, JSCC-stage pair, about
    {"proposal", MethodKind::kTokens, "Proposal", true, "--bank", "bank", load_token_bank, make_proposal_pair,
     "adaptive token selection + token JSCC (METHOD §3, §5)"},
    {"vit-ae", MethodKind::kTokens, "ViT AE", false, "--vit-ae-bank", "vit-ae", load_token_bank, make_proposal_pair,
     "static ViT, every token through the token JSCC (METHOD §6.1)"},
    {"mobilenet-flat", MethodKind::kMobileNet, "MNv3", false, "--mobilenet-flat-bank", "mobilenet-flat",
     load_mobilenet_bank, make_mobilenet_pair,
     "MobileNetV3-Small map, each channel a token of the token JSCC (METHOD §6.2)"},
    {"mobilenet-cnn", MethodKind::kMobileNet, "MNv3 CNN", false, "--mobilenet-cnn-bank", "mobilenet-cnn",
     load_mobilenet_bank, make_mobilenet_pair, "MobileNetV3-Small map through a convolutional JSCC (METHOD §6.2)"},
    {"resize", MethodKind::kDigital, "Resize", false, "", "", nullptr, nullptr,
     "downsampled image at the channel's capacity (METHOD §6.3)"},
    {"jpeg", MethodKind::kDigital, "JPEG", false, "", "", nullptr, nullptr, "JPEG at the channel's capacity (METHOD §6.3)"},
    {"webp", MethodKind::kDigital, "WebP", false, "", "", nullptr, nullptr, "WebP at the channel's capacity"},
    {"avif", MethodKind::kDigital, "AVIF", false, "", "", nullptr, nullptr, "AVIF at the channel's capacity"},
};

}  // namespace

const std::vector<Method>& methods() { return kMethods; }

const Method* find_method(const std::string& name) {
  const size_t slash = name.find('/');
  const std::string base = name.substr(0, slash);
  const std::string suffix = slash == std::string::npos ? "" : name.substr(slash);
  for (const Method& m : kMethods) {
    if (base != m.name) continue;
    if (suffix.empty() || (m.digital() && suffix == "/practical")) return &m;
  }
  return nullptr;
}

const Method& method_named(const std::string& name, const std::string& what) {
  const Method* m = find_method(name);
  if (!m) {
    throw UsageError(fmt::format("{}: unknown method '{}' (expected {}; codecs optionally with /practical)", what, name,
                                 method_names()));
  }
  return *m;
}

std::string method_names(bool (*keep)(const Method&)) {
  std::string out;
  for (const Method& m : kMethods) {
    if (keep && !keep(m)) continue;
    out += (out.empty() ? "" : ", ") + std::string(m.name);
  }
  return out;
}

bool method_has_budget(const std::string& name) {
  const Method* m = find_method(name);
  return m && m->has_budget;
}

bool is_digital_method(const std::string& name) {
  const Method* m = find_method(name);
  return m && m->digital();
}

bool is_mobilenet_method(const std::string& name) {
  const Method* m = find_method(name);
  return m && m->kind == MethodKind::kMobileNet;
}

}  // namespace tokcom

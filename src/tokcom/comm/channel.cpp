// Channel base helpers, noiseless and AWGN channels, the registry (fading.cpp: FadingChannel).
#include "tokcom/comm/channel.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <map>

#include "tokcom/core/check.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"

namespace tokcom {

double db_to_lin(double db) { return std::pow(10.0, db / 10.0); }

torch::Tensor complex_normal(at::IntArrayRef shape, double variance, torch::Generator& rng,
                             c10::optional<torch::Device> device) {
  std::vector<int64_t> sizes(shape.begin(), shape.end());
  sizes.push_back(2);  // (re, im) pairs, each N(0, variance/2)
  const auto options = torch::TensorOptions().dtype(torch::kFloat).device(rng.device());
  auto z = torch::view_as_complex(torch::randn(sizes, rng, options) * std::sqrt(variance / 2.0));
  return device && *device != rng.device() ? z.to(*device) : z;
}

torch::Generator make_generator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

torch::Tensor Channel::noise_variance(const std::string& caller, const Payload& sent,
                                      const torch::Tensor& snr_db) const {
  validate(sent, caller, /*expected_width=*/-1, /*check_values=*/false);
  if (sent.is_digital()) return {};
  const auto& z = sent.symbols;
  const int64_t batch = z.size(0);
  check_shape(caller, "snr_db", snr_db, {batch});
  if (!snr_db.is_floating_point()) {
    throw ShapeError(fmt::format("{}: snr_db has dtype {}, expected a floating type (dB)", caller,
                                 c10::toString(snr_db.scalar_type())));
  }
  const auto snr_cpu = snr_db.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const double* values = snr_cpu.data_ptr<double>();
  for (int64_t b = 0; b < batch; ++b) {
    if (!std::isfinite(values[b])) {
      throw FormatError(fmt::format(
          "{}: snr_db[{}] is {}, expected a finite SNR in dB (use the noiseless channel for no noise)",
          caller, b, values[b]));
    }
  }
  std::vector<int64_t> view(z.dim(), 1);
  view[0] = batch;
  // σ² = P_sig / 10^{SNR/10} per token (METHOD §5.3); P_sig clamped so that sqrt has a finite
  // gradient at all-zero (padded) tokens.
  const auto inv_snr = torch::pow(10.0, -snr_cpu.to(z.device(), torch::kFloat) / 10.0).view(view);
  // Not masked here: sqrt(0) at padded slots would turn their zero gradient into NaN.
  return signal_power(z, power_).clamp_min(1e-30) * inv_snr;
}

std::string Channel::power_suffix() const {
  std::string s;
  if (power_.reference_power()) s += ",power=reference";
  if (power_.axes() == 1) s += ",power_axes=last";
  return s;
}

namespace {

// "base" + options (each starting with ','), as a registry spec "base:k=v,k=v".
std::string join_spec(const std::string& base, const std::string& options) {
  return options.empty() ? base : base + ":" + options.substr(1);
}

torch::Tensor ones_gain(const Payload& sent) {
  const auto device = sent.is_digital() ? torch::Device(torch::kCPU) : sent.symbols.device();
  return torch::ones({sent.batch_size()}, torch::TensorOptions().dtype(torch::kComplexFloat).device(device));
}

}  // namespace

torch::Tensor mask_slots(const torch::Tensor& y, const torch::Tensor& token_mask) {
  return token_mask.defined() ? y * token_mask.unsqueeze(-1) : y;
}

std::string NoiselessChannel::name() const { return join_spec("noiseless", power_suffix()); }

Received NoiselessChannel::apply(const Payload& sent, const torch::Tensor& snr_db,
                                 torch::Generator& rng) const {
  Received out{sent, ones_gain(sent), {}};
  if (snr_db.defined()) {
    out.noise_var = noise_variance("NoiselessChannel::apply", sent, snr_db);
  } else {
    validate(sent, "NoiselessChannel::apply", -1, /*check_values=*/false);
  }
  if (!sent.is_digital()) {
    out.payload.symbols = mask_slots(sent.symbols, sent.token_mask);
    std::vector<int64_t> view(sent.symbols.dim(), 1);
    view[0] = sent.batch_size();
    out.noise_var = torch::zeros(view, sent.symbols.options().dtype(torch::kFloat));
  }
  return out;
}

std::string AwgnChannel::name() const { return join_spec("awgn", power_suffix()); }

Received AwgnChannel::apply(const Payload& sent, const torch::Tensor& snr_db,
                            torch::Generator& rng) const {
  const auto var = noise_variance("AwgnChannel::apply", sent, snr_db);
  Received out{sent, ones_gain(sent), {}};
  if (sent.is_digital()) return out;
  const auto& z = sent.symbols;
  const auto noise = complex_normal(z.sizes(), 1.0, rng, z.device()) * var.sqrt();
  out.payload.symbols = mask_slots(z + noise, sent.token_mask);
  out.noise_var = mask_slots(var, sent.token_mask);
  return out;
}

namespace {

const std::vector<std::string> kNames = {"noiseless",     "awgn",            "rayleigh", "rayleigh-csi",
                                         "rayleigh-mmse", "rayleigh-symbol", "rician"};

double parse_number(const std::string& spec, const std::string& key, const std::string& value) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || std::isnan(x)) {
    throw ConfigError(fmt::format("channel '{}': {}={} is not a number", spec, key, value));
  }
  return x;
}

}  // namespace

std::vector<std::string> split_channel_specs(const std::string& text) {
  if (text.find(';') != std::string::npos) return split_list(text, ';');
  std::vector<std::string> specs;
  for (const std::string& item : split_list(text, ',')) {
    const bool option = item.find('=') != std::string::npos && item.find(':') == std::string::npos;
    if (option && !specs.empty()) specs.back() += "," + item;
    else specs.push_back(item);
  }
  return specs;
}

std::vector<std::string> channel_names() { return kNames; }

std::unique_ptr<Channel> make_channel(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  if (std::find(kNames.begin(), kNames.end(), name) == kNames.end()) {
    throw ConfigError(fmt::format("unknown channel '{}' (spec '{}'); valid names: {}", name, spec,
                                  fmt::join(kNames, ", ")));
  }
  std::vector<std::string> allowed = {"power", "power_axes"};
  if (name == "rayleigh" || name == "rayleigh-symbol" || name == "rician") allowed.push_back("csi");
  if (name == "rayleigh-symbol") allowed.push_back("var");
  if (name == "rician") allowed.push_back("K");
  std::map<std::string, std::string> options;
  if (colon != std::string::npos) {
    const std::string rest = spec.substr(colon + 1);
    size_t start = 0;
    while (start <= rest.size()) {
      const size_t end = std::min(rest.find(',', start), rest.size());
      const std::string item = rest.substr(start, end - start);
      const auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0) {
        throw ConfigError(fmt::format("channel '{}': option '{}' is not key=value", spec, item));
      }
      const std::string key = item.substr(0, eq);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        throw ConfigError(fmt::format("channel '{}': unknown option '{}'; '{}' accepts: {}", spec, key,
                                      name, fmt::join(allowed, ", ")));
      }
      options[key] = item.substr(eq + 1);
      start = end + 1;
    }
  }
  PowerOptions power;
  if (options.count("power")) {
    const auto& v = options["power"];
    if (v != "squared" && v != "reference") {
      throw ConfigError(fmt::format("channel '{}': power={}, expected squared|reference", spec, v));
    }
    power.reference_power(v == "reference");
  }
  if (options.count("power_axes")) {
    const auto& v = options["power_axes"];
    if (v != "auto" && v != "last") {
      throw ConfigError(fmt::format("channel '{}': power_axes={}, expected auto|last", spec, v));
    }
    power.axes(v == "last" ? 1 : 0);
  }
  if (name == "noiseless") return std::make_unique<NoiselessChannel>(power);
  if (name == "awgn") return std::make_unique<AwgnChannel>(power);

  FadingOptions fading;
  if (name == "rayleigh-csi") fading.equalizer(Equalizer::kZeroForcing);
  if (name == "rayleigh-mmse") fading.equalizer(Equalizer::kMmse);
  if (name == "rayleigh-symbol") fading.per_symbol(true);
  if (name == "rician") fading.rician_k(4.0);
  if (options.count("csi")) {
    const auto& v = options["csi"];
    if (v == "none") fading.equalizer(Equalizer::kNone);
    else if (v == "zf") fading.equalizer(Equalizer::kZeroForcing);
    else if (v == "mmse") fading.equalizer(Equalizer::kMmse);
    else throw ConfigError(fmt::format("channel '{}': csi={}, expected none|zf|mmse", spec, v));
  }
  if (options.count("K")) {
    const double k = parse_number(spec, "K", options["K"]);
    if (k < 0) throw ConfigError(fmt::format("channel '{}': K={} must be >= 0 (linear)", spec, k));
    fading.rician_k(k);
  }
  if (options.count("var")) {
    const double v = parse_number(spec, "var", options["var"]);
    if (!(v > 0) || std::isinf(v)) {
      throw ConfigError(fmt::format("channel '{}': var={} must be positive and finite", spec, v));
    }
    fading.variance(v);
  }
  return std::make_unique<FadingChannel>(fading, power);
}

}  // namespace tokcom

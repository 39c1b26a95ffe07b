#include "tokcom/control/snr_process.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"

namespace tokcom {
namespace {

double normal_cdf(double x, double mean, double sd) {
  if (sd == 0.0) return x >= mean ? 1.0 : 0.0;
  return 0.5 * std::erfc(-(x - mean) / (sd * std::sqrt(2.0)));
}

class GaussProcess final : public SnrProcess {
 public:
  GaussProcess(double mean, double sd) : mean_(mean), sd_(sd) {}
  double next(std::mt19937_64& rng) override {
    return sd_ == 0.0 ? mean_ : mean_ + sd_ * std::normal_distribution<double>()(rng);
  }
  std::string spec() const override {
    return sd_ == 0.0 ? "fixed:" + csv::format_number(mean_)
                      : "gauss:" + csv::format_number(mean_) + "," + csv::format_number(sd_);
  }
  double marginal_cdf(double x) const override { return normal_cdf(x, mean_, sd_); }

 private:
  double mean_, sd_;
};

class GaussMarkovProcess final : public SnrProcess {
 public:
  GaussMarkovProcess(double mean, double sd, double rho) : mean_(mean), sd_(sd), rho_(rho) {}
  double next(std::mt19937_64& rng) override {
    const double e = std::normal_distribution<double>()(rng);
    // First slot from the stationary law, then AR(1) with the same marginal N(mean, sd²).
    x_ = started_ ? mean_ + rho_ * (x_ - mean_) + sd_ * std::sqrt(1.0 - rho_ * rho_) * e : mean_ + sd_ * e;
    started_ = true;
    return x_;
  }
  void reset() override { started_ = false; }
  std::string spec() const override {
    return fmt::format("gauss-markov:{},{},rho={}", csv::format_number(mean_), csv::format_number(sd_),
                       csv::format_number(rho_));
  }
  double marginal_cdf(double x) const override { return normal_cdf(x, mean_, sd_); }

 private:
  double mean_, sd_, rho_, x_ = 0.0;
  bool started_ = false;
};

class GilbertElliottProcess final : public SnrProcess {
 public:
  GilbertElliottProcess(double good, double bad, double p_gb, double p_bg, double sd)
      : good_(good), bad_(bad), p_gb_(p_gb), p_bg_(p_bg), sd_(sd) {}
  double next(std::mt19937_64& rng) override {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (!started_) {
      state_good_ = u(rng) < stationary_good();
      started_ = true;
    } else {
      state_good_ = state_good_ ? !(u(rng) < p_gb_) : (u(rng) < p_bg_);
    }
    const double base = state_good_ ? good_ : bad_;
    return sd_ == 0.0 ? base : base + sd_ * std::normal_distribution<double>()(rng);
  }
  void reset() override { started_ = false; }
  std::string spec() const override {
    return fmt::format("gilbert-elliott:good={},bad={},p_gb={},p_bg={},sd={}", csv::format_number(good_),
                       csv::format_number(bad_), csv::format_number(p_gb_), csv::format_number(p_bg_),
                       csv::format_number(sd_));
  }
  double marginal_cdf(double x) const override {
    const double g = stationary_good();
    return g * normal_cdf(x, good_, sd_) + (1.0 - g) * normal_cdf(x, bad_, sd_);
  }
  double stationary_good() const { return p_bg_ / (p_gb_ + p_bg_); }

 private:
  double good_, bad_, p_gb_, p_bg_, sd_;
  bool started_ = false, state_good_ = true;
};

class TraceProcess final : public SnrProcess {
 public:
  TraceProcess(std::string path, std::vector<double> values)
      : path_(std::move(path)), values_(std::move(values)), sorted_(values_) {
    std::sort(sorted_.begin(), sorted_.end());
  }
  double next(std::mt19937_64&) override {
    if (pos_ == values_.size()) {
      if (!warned_) spdlog::warn("SNR trace '{}' has {} slots; replaying it from the start", path_, values_.size());
      warned_ = true;
      pos_ = 0;
    }
    return values_[pos_++];
  }
  void reset() override { pos_ = 0; }
  std::string spec() const override { return "trace:" + path_; }
  double marginal_cdf(double x) const override {  // empirical: the replay cycles over the values
    return static_cast<double>(std::upper_bound(sorted_.begin(), sorted_.end(), x) - sorted_.begin()) /
           static_cast<double>(sorted_.size());
  }

 private:
  std::string path_;
  std::vector<double> values_, sorted_;
  size_t pos_ = 0;
  bool warned_ = false;
};

// "a,b,key=v" → positional {a, b} and named {key: v}.
struct Args {
  std::vector<double> positional;
  std::map<std::string, double> named;
};

Args parse_args(const std::string& spec, const std::string& body, const std::string& form) {
  Args a;
  if (body.empty()) throw ConfigError("SNR process '" + spec + "': no parameters, expected " + form);
  for (const std::string& item : split_list(body)) {
    const size_t eq = item.find('=');
    const std::string where = "SNR process '" + spec + "' (expected " + form + ")";
    try {
      if (eq == std::string::npos) {
        a.positional.push_back(csv::parse_number(item, where, "value"));
      } else {
        a.named[item.substr(0, eq)] = csv::parse_number(item.substr(eq + 1), where, item.substr(0, eq));
      }
    } catch (const FormatError& e) {
      throw ConfigError(std::string(e.what()).substr(std::string("FormatError: ").size()));
    }
  }
  return a;
}

double take(Args& a, const std::string& key, const std::string& spec, const std::string& form,
            std::optional<double> fallback = std::nullopt) {
  auto it = a.named.find(key);
  if (it == a.named.end()) {
    if (fallback) return *fallback;
    throw ConfigError("SNR process '" + spec + "': missing " + key + "=, expected " + form);
  }
  const double v = it->second;
  a.named.erase(it);
  return v;
}

void expect_done(const Args& a, size_t positional, const std::string& spec, const std::string& form) {
  if (a.positional.size() != positional)
    throw ConfigError(fmt::format("SNR process '{}': {} positional values, expected {} ({})", spec,
                                  a.positional.size(), positional, form));
  if (!a.named.empty())
    throw ConfigError("SNR process '" + spec + "': unknown parameter '" + a.named.begin()->first + "', expected " + form);
}

void expect(bool ok, const std::string& spec, const std::string& what) {
  if (!ok) throw ConfigError("SNR process '" + spec + "': " + what);
}

}  // namespace

std::vector<double> read_snr_trace(const std::string& path) {
  const std::string name = "SNR trace '" + path + "'";
  std::string text;
  try {
    text = read_file(path);
  } catch (const DataError&) {
    throw DataError(name + " cannot be opened");
  }
  // One value per line, or a CSV with an snr_db column (e.g. a trace.csv we wrote).
  const bool headerless = text.find("snr_db") == std::string::npos;
  csv::Table t = csv::parse(headerless ? "snr_db\n" + text : text, name);
  if (headerless) {
    for (int64_t& line : t.lines) --line;  // the header line was ours
  }
  std::vector<double> values;
  for (size_t i = 0; i < t.rows.size(); ++i) values.push_back(t.number(i, "snr_db"));
  if (values.empty())
    throw FormatError(name + " is empty: expected one SNR value (dB) per line, one line per slot");
  return values;
}

std::unique_ptr<SnrProcess> make_snr_process(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos)
    throw ConfigError("SNR process '" + spec + "': expected KIND:PARAMS with KIND one of gauss, fixed, "
                      "gauss-markov, gilbert-elliott, trace (e.g. gauss:10,2.5)");
  const std::string kind = spec.substr(0, colon), body = spec.substr(colon + 1);
  if (kind == "trace") {
    if (body.empty()) throw ConfigError("SNR process '" + spec + "': expected trace:FILE");
    return std::make_unique<TraceProcess>(body, read_snr_trace(body));
  }
  if (kind == "fixed") {
    const std::string form = "fixed:SNR";
    Args a = parse_args(spec, body, form);
    expect_done(a, 1, spec, form);
    return std::make_unique<GaussProcess>(a.positional[0], 0.0);
  }
  if (kind == "gauss") {
    const std::string form = "gauss:MEAN,SD";
    Args a = parse_args(spec, body, form);
    expect_done(a, 2, spec, form);
    expect(a.positional[1] >= 0.0, spec, "SD must be >= 0");
    return std::make_unique<GaussProcess>(a.positional[0], a.positional[1]);
  }
  if (kind == "gauss-markov") {
    const std::string form = "gauss-markov:MEAN,SD,rho=R";
    Args a = parse_args(spec, body, form);
    const double rho = take(a, "rho", spec, form);
    expect_done(a, 2, spec, form);
    expect(a.positional[1] >= 0.0, spec, "SD must be >= 0");
    expect(rho >= 0.0 && rho < 1.0, spec, fmt::format("rho is {}, expected 0 <= rho < 1", rho));
    return std::make_unique<GaussMarkovProcess>(a.positional[0], a.positional[1], rho);
  }
  if (kind == "gilbert-elliott") {
    const std::string form = "gilbert-elliott:good=G,bad=B,p_gb=P,p_bg=Q[,sd=S]";
    Args a = parse_args(spec, body, form);
    const double good = take(a, "good", spec, form), bad = take(a, "bad", spec, form);
    const double p_gb = take(a, "p_gb", spec, form), p_bg = take(a, "p_bg", spec, form);
    const double sd = take(a, "sd", spec, form, 0.0);
    expect_done(a, 0, spec, form);
    expect(p_gb > 0.0 && p_gb <= 1.0 && p_bg > 0.0 && p_bg <= 1.0, spec,
           fmt::format("p_gb = {} and p_bg = {} must lie in (0, 1]", p_gb, p_bg));
    expect(sd >= 0.0, spec, "sd must be >= 0");
    return std::make_unique<GilbertElliottProcess>(good, bad, p_gb, p_bg, sd);
  }
  throw ConfigError("SNR process '" + spec + "': unknown kind '" + kind +
                    "', expected gauss, fixed, gauss-markov, gilbert-elliott or trace");
}

std::vector<std::string> paper_scenarios() {
  return {"gauss:0,2.5", "gauss:10,2.5", "gauss:20,2.5", "fixed:10", "fixed:20"};
}

std::vector<std::string> split_scenarios(const std::string& list) {
  std::vector<std::string> specs;
  std::string normalised = list;
  std::replace(normalised.begin(), normalised.end(), ';', ',');
  for (const std::string& item : split_list(normalised)) {
    if (item.empty()) continue;
    if (item.find(':') != std::string::npos || specs.empty()) {
      specs.push_back(item);
    } else {
      specs.back() += "," + item;
    }
  }
  return specs;
}

std::vector<double> draw_snr(SnrProcess& process, int64_t count, std::mt19937_64& rng) {
  process.reset();
  std::vector<double> out(static_cast<size_t>(count));
  for (auto& v : out) v = process.next(rng);
  return out;
}

}  // namespace tokcom

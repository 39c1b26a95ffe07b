// SNR processes, one value in dB per slot (block fading: constant within a slot). The paper's
// i.i.d. Gaussian and fixed scenarios (METHOD §8.4) plus correlated and measured ones:
//   gauss:MEAN,SD                         i.i.d. N(MEAN, SD²)
//   fixed:SNR                             the same value every slot
//   gauss-markov:MEAN,SD,rho=R            AR(1): x' = MEAN + R·(x − MEAN) + SD·√(1−R²)·ε, R ∈ [0, 1)
//                                         (stationary N(MEAN, SD²); R is the slot-to-slot coherence)
//   gilbert-elliott:good=G,bad=B,p_gb=P,p_bg=Q[,sd=S]
//                                         two-state Markov chain (good → bad w.p. P, bad → good
//                                         w.p. Q), SNR G or B plus optional N(0, S²) jitter
//   trace:FILE                            replays FILE (one value per line, or the `snr_db` column
//                                         of a CSV with a header), cycling when the run is longer
#pragma once
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tokcom {

class SnrProcess {
 public:
  virtual ~SnrProcess() = default;
  // Next slot's SNR in dB; the first call after construction/reset starts from the stationary law.
  virtual double next(std::mt19937_64& rng) = 0;
  // Back to the initial state (trace position 0, Markov state undrawn).
  virtual void reset() {}
  // The spec this process was made from (canonical form).
  virtual std::string spec() const = 0;
  // Stationary marginal CDF P(SNR ≤ x) (right-continuous): what the oracle bound averages over.
  virtual double marginal_cdf(double snr_db) const = 0;
};

// Parses a spec (grammar above); ConfigError naming the spec and the expected form on bad input,
// FormatError/DataError for an unreadable or malformed trace file.
std::unique_ptr<SnrProcess> make_snr_process(const std::string& spec);

// Reads an SNR trace file (see above); FormatError naming file and line on a non-numeric value,
// an empty file or a file without values.
std::vector<double> read_snr_trace(const std::string& path);

// The paper's five scenarios (METHOD §8.4): gauss:0,2.5 gauss:10,2.5 gauss:20,2.5 fixed:10 fixed:20.
std::vector<std::string> paper_scenarios();

// Splits "gauss:0,2.5,fixed:10" (or ';'-separated) into specs: a comma-separated item that contains
// ':' starts a new spec, one without ':' continues the previous spec.
std::vector<std::string> split_scenarios(const std::string& list);

// `count` consecutive slots from `process` (after reset()).
std::vector<double> draw_snr(SnrProcess& process, int64_t count, std::mt19937_64& rng);

}  // namespace tokcom

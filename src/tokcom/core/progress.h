// Progress of long work: a live line with items/s and ETA on a terminal, plain log lines every
// `log_every_s` seconds otherwise (CI, Slurm logs).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace tokcom {

class Progress {
 public:
  // total <= 0: unknown length (no ETA).
  Progress(std::string label, int64_t total, std::string unit = "it", double log_every_s = 10.0);
  ~Progress();
  // Adds `n` finished items; `status` is appended to the line (e.g. "loss 0.41").
  void tick(int64_t n = 1, const std::string& status = "");
  // Prints the final line (idempotent; the destructor calls it).
  void finish(const std::string& status = "");
  double rate() const;  // items per second so far
  int64_t done() const { return done_; }

 private:
  void print(bool final_line);
  std::string label_, unit_, status_;
  int64_t total_, done_ = 0;
  double log_every_s_;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// "1h02m", "3m05s", "12.3s".
std::string format_duration(double seconds);

}  // namespace tokcom

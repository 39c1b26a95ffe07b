#include "tokcom/core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tokcom {

std::string format_duration(double s) {
  if (s < 0 || s != s) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t < 3600) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
}

Progress::Progress(std::string label, int64_t total, std::string unit, double log_every_s)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), log_every_s_(log_every_s),
      tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()), last_print_(start_) {}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {
  }
}

double Progress::rate() const {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return el > 0 ? done_ / el : 0.0;
}

void Progress::tick(int64_t n, const std::string& status) {
  done_ += n;
  if (!status.empty()) status_ = status;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if ((tty_ && since >= 0.2) || (!tty_ && since >= log_every_s_)) {
    last_print_ = now;
    print(false);
  }
}

void Progress::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  if (!status.empty()) status_ = status;
  print(true);
}

void Progress::print(bool final_line) {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double r = el > 0 ? done_ / el : 0.0;
  std::string line = total_ > 0 ? fmt::format("{}: {}/{} {} ({:.0f}%)", label_, done_, total_, unit_, 100.0 * done_ / total_)
                                : fmt::format("{}: {} {}", label_, done_, unit_);
  line += fmt::format(", {:.1f} {}/s", r, unit_);
  if (final_line) {
    line += ", took " + format_duration(el);
  } else if (total_ > 0 && r > 0) {
    line += ", ETA " + format_duration((total_ - done_) / r);
  }
  if (!status_.empty()) line += ", " + status_;
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final_line ? "\n" : "");
    std::fflush(stderr);
  } else {
    spdlog::info("{}", line);
  }
}

}  // namespace tokcom

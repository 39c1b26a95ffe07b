#include "stages.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"
#include "tokcom/net/wire.h"

extern char** environ;

namespace tokcom::cli {
namespace {
namespace fs = std::filesystem;

std::string self_path() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw UsageError("cannot find this program's path (/proc/self/exe): " + ec.message());
  // Rebuilt while a pipeline runs: the kernel reports the old file as "<path> (deleted)"; the stages
  // still to come run the new binary at the same path (a finished stage is not rerun).
  const std::string deleted = " (deleted)", s = p.string();
  if (s.size() > deleted.size() && s.compare(s.size() - deleted.size(), deleted.size(), deleted) == 0) {
    const std::string rebuilt = s.substr(0, s.size() - deleted.size());
    if (fs::exists(rebuilt)) return rebuilt;
  }
  return s;
}

}  // namespace

Stages::Stages(std::string label, std::string out, int total)
    : label_(std::move(label)), out_(std::move(out)), total_(total) {}

void Stages::skip(const std::string& name) {
  ++index_;
  std::fprintf(stderr, "[%s %d/%d] %s: not selected\n", label_.c_str(), index_, total_, name.c_str());
}

// What identifies one finished run of a stage: its command digest and its wall time (a rerun with
// the same command writes another time). Empty if it never finished.
static std::string stage_stamp(const std::string& dir) {
  if (!fs::exists(dir + "/.done")) return "";
  return read_file(dir + "/.done") + (fs::exists(dir + "/.seconds") ? read_file(dir + "/.seconds") : "");
}

void Stages::run(const std::string& name, const std::vector<std::string>& args, const std::vector<std::string>& inputs) {
  ++index_;
  const StartupOptions& g = global_options();
  std::vector<std::string> argv = {self_path(), "--seed", std::to_string(g.seed), "--threads", std::to_string(g.threads),
                                   "--log-level", g.log_level};
  if (!g.precision.empty()) argv.insert(argv.end(), {"--precision", g.precision});
  const size_t globals = argv.size();
  argv.insert(argv.end(), args.begin(), args.end());
  // `line` is the command without the global options (what identifies the stage); `full` is what
  // .command records and --plan prints.
  std::string line = "tokcom", full = "tokcom";
  for (size_t i = globals; i < argv.size(); ++i) line += " " + argv[i];
  for (size_t i = 1; i < argv.size(); ++i) full += " " + argv[i];
  // The seed is part of what a stage computes (a rerun with another seed must not reuse it); the
  // thread count and log level are not. Seed 0 (the default) hashes the bare command, as every
  // stage did before the seed counted, so those runs are still reused; so does a precision given
  // with --precision (fp32, given or not, keeps the old digests).
  const bool bf16 = g.precision == "bf16";
  const std::string identity = (bf16 ? "--precision bf16 " : "") + line;
  const std::string dir = out_ + "/" + name, done = dir + "/.done",
                    digest = fnv1a_hex(g.seed == 0 ? identity : fmt::format("--seed {} {}", g.seed, identity));
  std::string stamps;
  for (const auto& input : inputs) stamps += input + "\n" + stage_stamp(out_ + "/" + input);
  const bool same_command = fs::exists(done) && read_file(done) == digest + "\n";
  bool inputs_same = !fs::exists(dir + "/.inputs") || read_file(dir + "/.inputs") == stamps;
  if (dry_run_) {
    for (const auto& input : inputs)
      inputs_same = inputs_same && std::find(would_run_.begin(), would_run_.end(), input) == would_run_.end();
    const bool reused = same_command && inputs_same;
    if (!reused) would_run_.push_back(name);
    std::fprintf(stderr, "[%s %d/%d] %s: %s\n  $ %s\n", label_.c_str(), index_, total_, name.c_str(),
                 reused ? "would be reused" : same_command ? "would run again (an input stage would run)" : "would run",
                 full.c_str());
    return;
  }
  fs::create_directories(dir);
  if (same_command && inputs_same) {
    std::fprintf(stderr, "[%s %d/%d] %s: reused (same command and inputs, finished before)\n", label_.c_str(), index_,
                 total_, name.c_str());
    return;
  }
  if (same_command) {
    std::fprintf(stderr, "[%s %d/%d] %s: an input stage ran again since; running it again\n", label_.c_str(), index_,
                 total_, name.c_str());
  }
  fs::remove(done);  // a stage killed from here on is not mistaken for finished
  std::fprintf(stderr, "[%s %d/%d] %s\n  $ %s\n", label_.c_str(), index_, total_, name.c_str(), line.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, cargv[0], nullptr, nullptr, cargv.data(), environ) != 0) {
    throw UsageError(label_ + ": cannot start " + argv[0]);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error(fmt::format("{} stage '{}' failed (exit {}): {}", label_, name,
                            WIFEXITED(status) ? WEXITSTATUS(status) : -1, line),
                WIFEXITED(status) ? WEXITSTATUS(status) : 1);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // For `tokcom report` (timing, provenance): the wall time and the full command line.
  write_file_atomic(dir + "/.seconds", fmt::format("{:.3f}\n", seconds));
  write_file_atomic(dir + "/.command", full + "\n");
  write_file_atomic(dir + "/.inputs", stamps);
  write_file_atomic(done, digest + "\n");
  std::fprintf(stderr, "[%s %d/%d] %s: done in %.0f s\n", label_.c_str(), index_, total_, name.c_str(), seconds);
}

void run_plan(Stages& stages, const std::vector<PlannedStage>& plan, const std::vector<std::string>& selected) {
  const auto in = [](const std::string& name, const std::string& prefix) {
    return name == prefix || name.rfind(prefix + "/", 0) == 0;
  };
  std::vector<std::string> names;
  for (const PlannedStage& st : plan) {
    for (const std::string& input : st.inputs) {
      if (std::find(names.begin(), names.end(), input) == names.end()) {
        throw std::logic_error("pipeline: stage '" + st.name + "' reads '" + input + "', which is not an earlier stage");
      }
    }
    names.push_back(st.name);
  }
  for (const std::string& s : selected) {
    if (std::none_of(names.begin(), names.end(), [&](const std::string& n) { return in(n, s); })) {
      throw UsageError(fmt::format("--stages: unknown stage '{}' (stages: {})", s, fmt::join(names, ", ")));
    }
  }
  for (const PlannedStage& st : plan) {
    const bool run = selected.empty() || std::any_of(selected.begin(), selected.end(),
                                                     [&](const std::string& s) { return in(st.name, s); });
    if (run) stages.run(st.name, st.args, st.inputs);
    else stages.skip(st.name);
  }
}

report::ReportOptions cli_report_options() {
  report::ReportOptions options;
  options.libraries = net::transport_versions();
  return options;
}

}  // namespace tokcom::cli

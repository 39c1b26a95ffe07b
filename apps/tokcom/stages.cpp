#include "stages.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/startup.h"
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

// ---------------------------------------------------------------- stopping on a signal
// The handler records the signal and forwards SIGTERM to the running stages (kill() is
// async-signal-safe): whichever thread the kernel delivers the signal to, the main thread's
// waitpid returns once they exit, and a signal that lands between a check and waitpid is not lost.
volatile std::sig_atomic_t g_stop_signal = 0;
constexpr int kMaxChildren = 256;
volatile pid_t g_children[kMaxChildren] = {};

extern "C" void on_stop_signal(int signal_number) {
  g_stop_signal = signal_number;
  for (int i = 0; i < kMaxChildren; ++i) {
    const pid_t pid = g_children[i];
    if (pid > 0) kill(pid, SIGTERM);
  }
}

void track_child(pid_t pid) {
  for (int i = 0; i < kMaxChildren; ++i) {
    if (g_children[i] == 0) {
      g_children[i] = pid;
      break;
    }
  }
  if (g_stop_signal != 0) kill(pid, SIGTERM);  // the signal came while it was starting
}

void untrack_child(pid_t pid) {
  for (int i = 0; i < kMaxChildren; ++i) {
    if (g_children[i] == pid) g_children[i] = 0;
  }
}

// Installs the handler for the life of run_plan and puts the previous ones back after.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: waitpid returns EINTR in the thread that takes the signal
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &action, &old_[i]);
  }
  ~StopSignals() {
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &old_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals = {SIGTERM, SIGINT, SIGHUP};
  std::array<struct sigaction, 3> old_{};
};

// waitpid, retried when a signal interrupts it.
pid_t wait_child(pid_t pid, int* status) {
  pid_t r = -1;
  do {
    r = waitpid(pid, status, 0);
  } while (r < 0 && errno == EINTR);
  return r;
}

const char* signal_name(int signal_number) {
  switch (signal_number) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

struct Call {
  std::string started_utc;
  double seconds;
  int jobs, threads, ran, reused;
  std::string outcome;
};

// Appends one row to calls.csv (the file rewritten whole, atomically). A calls.csv this schema cannot
// read is kept aside as calls.csv.unreadable (.unreadable.2, … when an earlier one is there: none is
// overwritten) and the ledger starts again beside it.
void append_call(const std::string& path, const Call& call) {
  csv::Writer w(report::calls_schema());
  if (fs::exists(path)) {
    try {
      const csv::Table old = csv::read(path, path, report::calls_schema());
      for (const auto& row : old.rows) w.row(row);
    } catch (const std::exception& e) {
      std::string aside = path + ".unreadable";
      for (int k = 2; fs::exists(aside); ++k) aside = path + ".unreadable." + std::to_string(k);
      std::error_code ec;
      fs::rename(path, aside, ec);
      std::fprintf(stderr, "warning: %s; kept as %s, a new one started\n", e.what(), aside.c_str());
    }
  }
  w.text(call.started_utc).fixed(call.seconds, 1).integer(call.jobs).integer(call.threads).integer(call.ran);
  w.integer(call.reused).text(call.outcome).end_row();
  w.write(path);
}

}  // namespace

Interrupted::Interrupted(int signal_number)
    : Error(fmt::format("stopped by {}: the running stages were stopped (training resumes from its last epoch); "
                        "rerun the same command to continue",
                        signal_name(signal_number)),
            128 + signal_number) {}

Stages::Stages(std::string label, std::string out, int total)
    : label_(std::move(label)), out_(std::move(out)), total_(total) {}

void Stages::skip(const std::string& name) { skip(++index_, name); }

void Stages::skip(int index, const std::string& name) {
  std::fprintf(stderr, "[%s %d/%d] %s: not selected\n", label_.c_str(), index, total_, name.c_str());
}

// What identifies one finished run of a stage: its command digest and its wall time (a rerun with
// the same command writes another time). Empty if it never finished.
static std::string stage_stamp(const std::string& dir) {
  if (!fs::exists(dir + "/.done")) return "";
  return read_file(dir + "/.done") + (fs::exists(dir + "/.seconds") ? read_file(dir + "/.seconds") : "");
}

// The paths a stage's command writes: the value of -o / --out, or of train.out=.
static std::vector<std::string> command_outputs(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "-o" || args[i] == "--out") && i + 1 < args.size()) out.push_back(args[i + 1]);
    if (starts_with(args[i], "train.out=")) out.push_back(args[i].substr(10));
  }
  return out;
}

// Every file a finished stage left at its outputs (a folder: the files under it, but not its
// mid-run checkpoints, which a finished stage no longer needs), one path per line: `.outputs`.
static std::string output_manifest(const std::vector<std::string>& outputs) {
  std::vector<std::string> files;
  for (const auto& o : outputs) {
    std::error_code ec;
    if (fs::is_regular_file(o, ec)) files.push_back(o);
    if (!fs::is_directory(o, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(o, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (it->is_directory(ec) && starts_with(name, "checkpoint")) it.disable_recursion_pending();
      else if (it->is_regular_file(ec) && !starts_with(name, ".")) files.push_back(it->path().string());
    }
  }
  std::sort(files.begin(), files.end());
  std::string manifest;
  for (const auto& f : files) manifest += f + "\n";
  return manifest;
}

// The first file of a finished stage's `.outputs` that is gone ("" when all are there, or when the
// stage finished before stages kept the list).
static std::string missing_output(const std::string& dir) {
  if (!fs::exists(dir + "/.outputs")) return "";
  for (const auto& f : split_list(read_file(dir + "/.outputs"), '\n'))
    if (!f.empty() && !fs::exists(f)) return f;
  return "";
}

static double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Stages::run(const std::string& name, const std::vector<std::string>& args, const std::vector<std::string>& inputs) {
  const Started started = start(++index_, name, args, inputs);
  if (started.pid == 0) return;
  int status = 0;
  wait_child(started.pid, &status);
  untrack_child(started.pid);
  if (g_stop_signal != 0) {
    bank(started);
    throw Interrupted(g_stop_signal);
  }
  finish(started, status);
}

Stages::Identity Stages::identify(const std::string& name, const std::vector<std::string>& args,
                                  const std::vector<std::string>& inputs) const {
  const StartupOptions& g = global_options();
  Identity id;
  id.line = "tokcom";
  for (const auto& a : args) id.line += " " + a;
  // The seed is part of what a stage computes (a rerun with another seed must not reuse it); the
  // thread count and log level are not. Seed 0 (the default) hashes the bare command, as every
  // stage did before the seed counted, so those runs are still reused; so does a precision given
  // with --precision (fp32, given or not, keeps the old digests).
  const bool bf16 = g.precision == "bf16";
  const std::string identity = (bf16 ? "--precision bf16 " : "") + id.line;
  id.dir = out_ + "/" + name;
  id.digest = fnv1a_hex(g.seed == 0 ? identity : fmt::format("--seed {} {}", g.seed, identity));
  for (const auto& input : inputs) id.stamps += input + "\n" + stage_stamp(out_ + "/" + input);
  // `.done` holds the digest of the command that finished here. Anything else there (a file cut short,
  // another tool's) is not a finished stage: the stage runs again, and says why.
  const std::string done = id.dir + "/.done";
  const std::string stamp = fs::exists(done) ? read_file(done) : "";
  id.damaged = !stamp.empty() && !std::regex_match(stamp, std::regex("[0-9a-f]{16}\n"));
  id.same_command = !stamp.empty() && stamp == id.digest + "\n";
  // A finished stage whose outputs were removed since is not finished any more.
  id.gone = id.same_command ? missing_output(id.dir) : "";
  id.same_command = id.same_command && id.gone.empty();
  id.inputs_same = !fs::exists(id.dir + "/.inputs") || read_file(id.dir + "/.inputs") == id.stamps;
  return id;
}

bool Stages::settle(int index, const std::string& name, const std::vector<std::string>& args,
                    const std::vector<std::string>& inputs) {
  const Identity id = identify(name, args, inputs);
  if (!(id.same_command && id.inputs_same)) return false;
  report_reused(index, name);
  return true;
}

void Stages::report_reused(int index, const std::string& name) {
  std::fprintf(stderr, "[%s %d/%d] %s: reused (same command and inputs, finished before)\n", label_.c_str(), index,
               total_, name.c_str());
  ++reused_;
}

Stages::Started Stages::start(int index, const std::string& name, const std::vector<std::string>& args,
                              const std::vector<std::string>& inputs) {
  const StartupOptions& g = global_options();
  const int threads = child_threads_ > 0 ? child_threads_ : g.threads;
  std::vector<std::string> argv = {self_path(), "--seed", std::to_string(g.seed), "--threads", std::to_string(threads),
                                   "--log-level", g.log_level};
  if (!g.precision.empty()) argv.insert(argv.end(), {"--precision", g.precision});
  argv.insert(argv.end(), args.begin(), args.end());
  Started st;
  st.index = index;
  st.name = name;
  st.threads = threads;
  // `line` is the command without the global options (what identifies the stage); `full` is what
  // .command records and --plan prints.
  st.full = "tokcom";
  for (size_t i = 1; i < argv.size(); ++i) st.full += " " + argv[i];
  const Identity id = identify(name, args, inputs);
  st.line = id.line;
  st.dir = id.dir;
  st.digest = id.digest;
  st.stamps = id.stamps;
  st.outputs = command_outputs(args);
  const std::string done = st.dir + "/.done";
  if (dry_run_) {
    bool inputs_same = id.inputs_same;
    for (const auto& input : inputs)
      inputs_same = inputs_same && std::find(would_run_.begin(), would_run_.end(), input) == would_run_.end();
    const bool reused = id.same_command && inputs_same;
    if (!reused) would_run_.push_back(name);
    std::fprintf(stderr, "[%s %d/%d] %s: %s\n  $ %s\n", label_.c_str(), index, total_, name.c_str(),
                 reused           ? "would be reused"
                 : id.same_command ? "would run again (an input stage would run)"
                                   : "would run",
                 st.full.c_str());
    return st;
  }
  if (id.same_command && id.inputs_same) {
    report_reused(index, name);
    return st;
  }
  fs::create_directories(st.dir);
  if (id.same_command) {
    std::fprintf(stderr, "[%s %d/%d] %s: an input stage ran again since; running it again\n", label_.c_str(), index,
                 total_, name.c_str());
  } else if (id.damaged) {
    std::fprintf(stderr, "[%s %d/%d] %s: %s is damaged (expected one command digest); running the stage again\n",
                 label_.c_str(), index, total_, name.c_str(), done.c_str());
  } else if (!id.gone.empty()) {
    std::fprintf(stderr, "[%s %d/%d] %s: its output %s is gone since it finished; running it again\n", label_.c_str(),
                 index, total_, name.c_str(), id.gone.c_str());
  }
  fs::remove(done);  // a stage killed from here on is not mistaken for finished
  // Time an interrupted call spent on the same command counts toward this stage's .seconds:
  // "<digest> <seconds>" (Stages::bank).
  const std::string partial = st.dir + "/.seconds-partial";
  if (fs::exists(partial)) {
    std::istringstream text(read_file(partial));
    std::string digest, seconds, extra;
    if (text >> digest >> seconds && !(text >> extra) && digest == st.digest) {
      st.banked = csv::parse_number(seconds, partial, "seconds");
    } else {
      fs::remove(partial);  // another command's (or damaged): not this stage's time
    }
  }
  std::fprintf(stderr, "[%s %d/%d] %s\n  $ %s\n", label_.c_str(), index, total_, name.c_str(), st.line.c_str());
  st.t0 = steady_seconds();
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  if (posix_spawn(&st.pid, cargv[0], nullptr, nullptr, cargv.data(), environ) != 0) {
    throw UsageError(label_ + ": cannot start " + argv[0]);
  }
  track_child(st.pid);
  return st;
}

void Stages::bank(const Started& st) const {
  const double seconds = st.banked + steady_seconds() - st.t0;
  write_file_atomic(st.dir + "/.seconds-partial", fmt::format("{} {:.3f}\n", st.digest, seconds));
  std::fprintf(stderr, "[%s %d/%d] %s: stopped after %.0f s (kept in .seconds-partial; a rerun continues it)\n",
               label_.c_str(), st.index, total_, st.name.c_str(), seconds);
}

void Stages::finish(const Started& st, int status) {
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw Error(fmt::format("{} stage '{}' failed (exit {}): {}", label_, st.name,
                            WIFEXITED(status) ? WEXITSTATUS(status) : -1, st.line),
                WIFEXITED(status) ? WEXITSTATUS(status) : 1);
  }
  const double seconds = st.banked + steady_seconds() - st.t0;
  // For `tokcom report` (timing, provenance): the wall time (over every call that worked on this
  // command, interrupted ones included) and the full command line.
  write_file_atomic(st.dir + "/.seconds", fmt::format("{:.3f}\n", seconds));
  write_file_atomic(st.dir + "/.command", st.full + "\n");
  write_file_atomic(st.dir + "/.inputs", st.stamps);
  write_file_atomic(st.dir + "/.outputs", output_manifest(st.outputs));
  write_file_atomic(st.dir + "/.done", st.digest + "\n");
  fs::remove(st.dir + "/.seconds-partial");
  ++ran_;
  if (st.banked > 0) {
    std::fprintf(stderr, "[%s %d/%d] %s: done in %.0f s (%.0f s of them in earlier, interrupted calls)\n",
                 label_.c_str(), st.index, total_, st.name.c_str(), seconds, st.banked);
  } else {
    std::fprintf(stderr, "[%s %d/%d] %s: done in %.0f s\n", label_.c_str(), st.index, total_, st.name.c_str(),
                 seconds);
  }
}

namespace {

// Up to `jobs` stages at once, each starting when the stages it reads are finished, the `threads`
// cores shared among them: a stage gets the free cores divided among the stages ready to start
// with it, brief ones not counted (so a long stage that starts alone, the other chain finished or
// waiting, gets them all); the sum never exceeds `threads`, and a running stage keeps what it
// started with. A brief stage takes one core when one is free.
void run_parallel(Stages& stages, const std::vector<PlannedStage>& plan, const std::vector<bool>& selected, int jobs,
                  int threads) {
  const size_t n = plan.size();
  std::vector<int> state(n, 0);  // 0 waiting, 1 running, 2 finished (or not selected)
  std::map<pid_t, Stages::Started> running;
  std::map<std::string, size_t> index_of;
  for (size_t i = 0; i < n; ++i) index_of[plan[i].name] = i;
  for (size_t i = 0; i < n; ++i) {
    if (!selected[i]) {
      stages.skip(static_cast<int>(i) + 1, plan[i].name);
      state[i] = 2;
    }
  }
  const auto stop_all = [&] {
    for (const auto& [pid, st] : running) kill(pid, SIGTERM);
    for (const auto& [pid, st] : running) {
      wait_child(pid, nullptr);
      untrack_child(pid);
      if (g_stop_signal != 0) stages.bank(st);
    }
    running.clear();
  };
  const auto stop_if_signalled = [&] {
    if (g_stop_signal == 0) return;
    stop_all();
    throw Interrupted(g_stop_signal);
  };
  const auto ready = [&](size_t i) {
    return state[i] == 0 && std::all_of(plan[i].inputs.begin(), plan[i].inputs.end(),
                                        [&](const std::string& in) { return state[index_of.at(in)] == 2; });
  };
  threads = std::max(threads, jobs);  // at least one thread per job, as with --threads below --jobs
  int busy = 0;                       // threads of the running stages
  size_t finished = std::count(state.begin(), state.end(), 2);
  while (finished < n) {
    stop_if_signalled();
    // Reused stages finish at once: settle them first (in plan order, so a chain of them settles in
    // one pass), so that the free cores go to the stages that really start; a resumed study's one
    // stage left to run then gets them all, not a share beside stages that never start.
    for (size_t i = 0; i < n && !stages.dry_run(); ++i) {
      if (!ready(i) || !stages.settle(static_cast<int>(i) + 1, plan[i].name, plan[i].args, plan[i].inputs)) continue;
      state[i] = 2;
      ++finished;
    }
    // Start every stage whose inputs are finished, in plan order, while there is room.
    for (size_t i = 0; i < n && static_cast<int>(running.size()) < jobs && busy < threads; ++i) {
      if (!ready(i)) continue;
      int starting = 0;  // the long stages that start in this pass, this one included
      for (size_t j = i; j < n; ++j) starting += ready(j) && !plan[j].brief ? 1 : 0;
      starting = std::min(starting, jobs - static_cast<int>(running.size()));
      stages.set_child_threads(plan[i].brief ? 1 : std::max(1, (threads - busy) / std::max(starting, 1)));
      Stages::Started st;
      try {
        st = stages.start(static_cast<int>(i) + 1, plan[i].name, plan[i].args, plan[i].inputs);
      } catch (...) {
        stop_all();
        throw;
      }
      if (st.pid == 0) {  // reused: finished now; the stages it frees come later in the plan, so this pass reaches them
        state[i] = 2;
        ++finished;
        continue;
      }
      state[i] = 1;
      busy += st.threads;
      running.emplace(st.pid, std::move(st));
    }
    if (running.empty()) {
      if (finished < n) throw std::logic_error("pipeline: no stage can start (a cycle in the declared inputs?)");
      break;
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;  // a signal: stop_if_signalled above
    const auto it = running.find(pid);
    if (it == running.end()) continue;  // not one of ours
    const Stages::Started st = it->second;
    running.erase(it);
    untrack_child(pid);
    busy -= st.threads;
    if (g_stop_signal != 0) {  // stopped by the signal, not finished: its time is banked
      stages.bank(st);
      stop_if_signalled();
    }
    try {
      stages.finish(st, status);
    } catch (...) {
      stop_all();
      throw;
    }
    state[index_of.at(st.name)] = 2;
    ++finished;
  }
}

}  // namespace

void run_plan(Stages& stages, const std::vector<PlannedStage>& plan, const std::vector<std::string>& selected, int jobs) {
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
  std::vector<bool> run(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    run[i] = selected.empty() ||
             std::any_of(selected.begin(), selected.end(), [&](const std::string& s) { return in(plan[i].name, s); });
  }
  const auto in_order = [&] {
    for (size_t i = 0; i < plan.size(); ++i) {
      if (run[i]) stages.run(plan[i].name, plan[i].args, plan[i].inputs);
      else stages.skip(plan[i].name);
    }
  };
  if (stages.dry_run()) {
    in_order();
    return;
  }
  const int threads = global_options().threads > 0 ? global_options().threads : core_count();
  const std::string started_utc = utc_now();
  const double t0 = steady_seconds();
  std::string outcome = "failed";
  const auto record = [&] {
    append_call(stages.out() + "/calls.csv", {started_utc, steady_seconds() - t0, jobs, threads, stages.ran(),
                                              stages.reused(), outcome});
  };
  StopSignals signals;
  try {
    if (jobs > 1) run_parallel(stages, plan, run, jobs, threads);
    else in_order();
    // A signal after the last stage finished still means "stop here" (no report).
    if (g_stop_signal != 0) throw Interrupted(g_stop_signal);
    outcome = "finished";
  } catch (const Interrupted&) {
    outcome = "interrupted";
    record();
    throw;
  } catch (...) {
    record();
    throw;
  }
  record();
}

report::ReportOptions cli_report_options() {
  report::ReportOptions options;
  options.libraries = net::transport_versions();
  return options;
}

}  // namespace tokcom::cli

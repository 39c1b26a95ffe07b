// A pipeline of tokcom commands run as children of this binary (`tokcom demo`, `tokcom reproduce`):
// each stage is printed as the command it runs (so a pipeline also teaches the CLI); a stage whose
// command did not change since its last success is reused (its folder holds .done with the
// command's digest). Training stages pass --resume, so a killed pipeline loses at most one epoch.
// SIGTERM, SIGINT or SIGHUP stop a pipeline cleanly: its running stages are stopped (SIGTERM), the
// time they ran is banked in their folder (.seconds-partial) and counted in their .seconds when a
// later call finishes them, and every call leaves a row in <out>/calls.csv (its wall time and how it
// ended), so a study that spans interruptions has its whole wall time on record.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "tokcom/core/errors.h"
#include "tokcom/report/report.h"

namespace tokcom::cli {

class Stages {
 public:
  // `label` prefixes progress lines ("demo", "reproduce"); `total` is the number of run() calls.
  Stages(std::string label, std::string out, int total);
  // Runs `tokcom <args>` unless <out>/<name>/.done holds the digest of the same command (and seed) and the
  // stages it reads (`inputs`, names of earlier stages) have not run again since: a stage's .inputs
  // records their (.done, .seconds) stamps, so a merge reruns when a shard reran even though its own
  // command is unchanged. A stage finished before .inputs existed is reused on its command alone.
  // The child gets this process's --seed, --threads and --log-level. Error with the child's exit
  // code if it fails.
  void run(const std::string& name, const std::vector<std::string>& args, const std::vector<std::string>& inputs = {});
  // run() in two halves, for stages that run side by side (run_plan with jobs > 1): start() prints
  // the stage as number `index` of the total and starts its child, or returns pid 0 when it is
  // reused (or in a dry run); finish() records a child that exited with `status` (waitpid's), or
  // throws as run() does.
  struct Started {
    pid_t pid = 0;
    int index = 0;
    std::string name, dir, digest, stamps, line, full;
    std::vector<std::string> outputs;  // what the command writes (its -o / --out / train.out= paths)
    double t0 = 0;  // steady-clock seconds at the start
    double banked = 0;  // seconds this stage (same command) ran in earlier, interrupted calls
    int threads = 0;  // its --threads
  };
  Started start(int index, const std::string& name, const std::vector<std::string>& args,
                const std::vector<std::string>& inputs);
  void finish(const Started& started, int status);
  // A stage start() would reuse (same command and seed, outputs there, inputs not run again since)
  // is printed as reused, counted, and true returned; otherwise nothing happens. run_plan settles
  // those first, so the free cores go to the stages that really start.
  bool settle(int index, const std::string& name, const std::vector<std::string>& args,
              const std::vector<std::string>& inputs);
  // A started stage stopped by an interruption: its time so far (this call's and the banked) goes
  // into <dir>/.seconds-partial with its command digest.
  void bank(const Started& started) const;
  // --threads of the children started from now on (0 = this process's own); run_plan gives each
  // of J parallel stages its share of the cores that are free when it starts.
  void set_child_threads(int threads) { child_threads_ = threads; }
  bool dry_run() const { return dry_run_; }
  const std::string& out() const { return out_; }
  // Dry run (`reproduce --plan`): run() prints each stage's full command (as its .command will read)
  // and whether it would be reused or run, and touches nothing.
  void set_dry_run(bool on) { dry_run_ = on; }
  // The stages this call ran to the end and those it reused (calls.csv).
  int ran() const { return ran_; }
  int reused() const { return reused_; }
  // Counts a stage that is not run this time (filtered out), so the [k/n] numbering stays stable.
  void skip(const std::string& name);
  void skip(int index, const std::string& name);

 private:
  // What identifies a stage's run and decides whether it is reused (start() and reusable()).
  struct Identity {
    std::string dir, line, digest, stamps, gone;  // gone: an output removed since it finished
    bool same_command = false, damaged = false, inputs_same = false;
  };
  Identity identify(const std::string& name, const std::vector<std::string>& args,
                    const std::vector<std::string>& inputs) const;
  void report_reused(int index, const std::string& name);

  std::string label_, out_;
  int total_, index_ = 0;
  int child_threads_ = 0;
  bool dry_run_ = false;
  int ran_ = 0, reused_ = 0;
  std::vector<std::string> would_run_;  // dry run: the stages that would run (their readers would too)
};

// One stage of a pipeline, declared with the earlier stages whose outputs it reads: when one of
// them runs again, so does this one (Stages::run's `inputs`). demo and reproduce both declare their
// pipelines this way and run them with run_plan().
struct PlannedStage {
  std::string name;                 // its folder under the output ("sweep/part-0-of-2")
  std::vector<std::string> args;    // the tokcom command
  std::vector<std::string> inputs;  // names of earlier stages of the same plan
  // A stage of seconds (a figure, a small table): side by side it waits for a free core rather than
  // taking a share of the cores from a long stage that starts with it.
  bool brief = false;
};

// Runs `plan`: every stage, or those `selected` names and their sub-stages ("sweep" selects
// "sweep/part-0-of-2" …; the others are counted as skipped). UsageError naming the stages for a
// selected name that is not in the plan; std::logic_error for an input that is not an earlier stage.
// jobs = 1 runs the stages in order. jobs > 1 runs up to that many side by side, a stage starting
// once every stage it reads has finished (the declared inputs are the whole dependency graph), each
// child with the free cores divided among the stages that start with it (brief ones not counted),
// so the children's threads never exceed max(threads, jobs); a stage that fails stops the others (SIGTERM; training
// resumes from its last epoch) and run_plan throws its error. A dry run is always in order.
// SIGTERM / SIGINT / SIGHUP while it runs: the running stages are stopped and their time banked
// (Stages::bank), and run_plan throws Interrupted. Every call that is not a dry run appends a row to
// <out>/calls.csv (report::calls_schema): when it started, its wall seconds, jobs, threads, the stages it
// ran and reused, and its outcome (finished, failed, interrupted).
void run_plan(Stages& stages, const std::vector<PlannedStage>& plan, const std::vector<std::string>& selected = {},
              int jobs = 1);

// A pipeline stopped by a signal (exit code 128 + the signal's number, as a shell reports it).
class Interrupted : public Error {
 public:
  explicit Interrupted(int signal_number);
};

// The report options every verb that writes a report uses (the provenance names the transport
// libraries, which report/ does not link).
report::ReportOptions cli_report_options();

}  // namespace tokcom::cli

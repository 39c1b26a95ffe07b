// A pipeline of tokcom commands run as children of this binary (`tokcom demo`, `tokcom reproduce`):
// each stage is printed as the command it runs (so a pipeline also teaches the CLI); a stage whose
// command did not change since its last success is reused (its folder holds .done with the
// command's digest). Training stages pass --resume, so a killed pipeline loses at most one epoch.
#pragma once
#include <string>
#include <vector>

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
  // Dry run (`reproduce --plan`): run() prints each stage's full command (as its .command will read)
  // and whether it would be reused or run, and touches nothing.
  void set_dry_run(bool on) { dry_run_ = on; }
  // Counts a stage that is not run this time (filtered out), so the [k/n] numbering stays stable.
  void skip(const std::string& name);

 private:
  std::string label_, out_;
  int total_, index_ = 0;
  bool dry_run_ = false;
  std::vector<std::string> would_run_;  // dry run: the stages that would run (their readers would too)
};

}  // namespace tokcom::cli

// report/report.h — `tokcom report DIR`: a report of a run folder made from its files only (the
// CSVs, their JSON sidecars, the stages' configs and epochs.csv, pictures already on disk).
// load_run() discovers and validates what is there; write_report() writes OUT/report.md,
// OUT/report.html (self-contained) and OUT/report/figures/*.{gp,csv,svg,png} (gnuplot).
//
// Dependency direction: report uses eval/control/core; nothing but apps uses report.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokcom/core/csv.h"

namespace tokcom::report {

// The CSVs a report reads, each checked against its writer's schema: sweep_schema() (eval/sweep.h),
// summary_schema(), search_schema(), deploy_schema() (control/optimize.h), epochs_schema()
// (train/trainer.h), jscc_epochs_schema() (train/jscc_stage.h), eval_schema() (eval/evaluate.h),
// calls_schema() (below).

// <run>/calls.csv, the ledger of a pipeline's calls (`tokcom reproduce` / `demo` append one row per
// call): when it started (UTC), its wall seconds, --jobs, threads, the stages it ran to the end and
// reused, and how it ended (finished, failed, interrupted). Declared here, where it is read; the
// pipelines in apps/ write it.
const csv::Schema& calls_schema();

struct SweepFile {
  csv::Table table;
  nlohmann::json sidecar;  // <csv>.json (null when absent)
  bool proxy = false;      // built on the training split (a controller's proxy table): not in Figs 6–7
};

struct EpochsFile {
  std::string stage;  // folder relative to the run ("backbone", "bank")
  csv::Table table;
  bool jscc = false;  // epochs-<tag>.csv of the JSCC stage (one per regime and ratio)
};

struct ControlRun {
  std::string dir;  // relative to the run
  csv::Table summary;
  std::optional<csv::Table> search, deploy;
  nlohmann::json summary_json, deploy_json;  // sidecars (null when absent)
};

struct StageInfo {
  std::string name;     // folder relative to the run
  bool done = false;    // holds .done (a finished `tokcom demo` stage)
  std::optional<double> seconds;  // .seconds (wall time the demo measured)
  std::string command;  // .command (the demo's command line), empty when absent
  std::string config;   // config.yaml / *.config.yaml relative path, empty when none
  std::string config_digest;  // FNV-1a 64 of the config file's bytes
};

struct RunData {
  std::string dir;
  std::vector<SweepFile> sweeps;
  std::vector<EpochsFile> epochs;
  std::vector<ControlRun> controls;
  std::vector<StageInfo> stages;
  std::vector<std::string> pictures;  // fig9*.png / visualize*.png, relative to the run
  std::vector<csv::Table> evals;        // `tokcom eval` CSVs (kept fraction and accuracy per α)
  std::optional<csv::Table> calls;      // calls.csv at the run's top (calls_schema)
  std::vector<std::pair<std::string, nlohmann::json>> sidecars;  // every JSON sidecar read
  std::vector<std::string> inputs;    // every file read, relative
};

// Discovers and validates the run folder. DataError: no such folder, none of the files a report is
// made from, or a file that another one implies is missing (e.g. control/summary.csv beside
// control/deploy_summary.csv, a finished demo stage without its output). FormatError: a CSV whose
// header, field count or numbers are not what its writer produces (file and line named).
RunData load_run(const std::string& dir);

struct ReportOptions {
  std::string out_dir;  // default: the run folder
  bool plots = true;    // gnuplot figures (skipped with a note when gnuplot is missing)
  std::string libraries;  // more library versions for the provenance line ("protobuf …, gRPC …")
};

struct ReportFiles {
  std::string markdown, html;
  std::vector<std::string> figures;  // PNGs written
};

ReportFiles write_report(const RunData& run, const ReportOptions& options);

// Pieces the demo prints in the terminal (Markdown tables).
// Best accuracy of each method and regime at ζ ≤ each bound, at one channel and SNR.
std::string accuracy_table(const RunData& run, const std::string& channel, double snr_db);
// Deployment rows (mean over repeats) with the oracle bound and ζ ≤ ζ_max.
std::string deployment_table(const RunData& run);

}  // namespace tokcom::report

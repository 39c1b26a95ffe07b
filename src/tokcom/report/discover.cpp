// report/discover.cpp — load_run(): what a run folder holds, found and validated before anything
// is written.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "tokcom/control/optimize.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"
#include "tokcom/eval/evaluate.h"
#include "tokcom/eval/sweep.h"
#include "tokcom/report/report.h"
#include "tokcom/report/report_util.h"
#include "tokcom/split/method.h"
#include "tokcom/train/jscc_stage.h"
#include "tokcom/train/trainer.h"

namespace tokcom::report {
namespace fs = std::filesystem;
namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

nlohmann::json read_json(const fs::path& path, const std::string& name) {
  try {
    return nlohmann::json::parse(read_file(path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("{}: not valid JSON ({}), expected the sidecar its command writes", name, e.what()));
  }
}

std::string rel(const fs::path& p, const fs::path& root) { return fs::relative(p, root).generic_string(); }

void require(const fs::path& root, const std::string& stage, const std::string& file) {
  if (!fs::exists(root / stage / file)) {
    throw DataError(fmt::format("{}/{} is missing in {}, but {}/.done says the stage finished (restore the file or "
                                "rerun the stage)",
                                stage, file, root.string(), stage));
  }
}

std::string first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// A sweep CSV that is one shard k/n (n > 1) of its grid: its sidecar says so (`sweep --shard`).
bool is_shard_part(const nlohmann::json& sidecar) {
  if (!sidecar.is_object() || !sidecar.contains("grid") || !sidecar.contains("shard") || !sidecar["shard"].is_string())
    return false;
  const std::string shard = sidecar["shard"].get<std::string>();
  const size_t slash = shard.find('/');
  return slash != std::string::npos && shard.substr(slash + 1) != "1";
}

}  // namespace

const csv::Schema& calls_schema() {
  static const csv::Schema s = csv::schema("the calls of a pipeline (calls.csv, written by `tokcom reproduce` / `demo`)",
                                           "started_utc,seconds,jobs,threads,ran,reused,outcome",
                                           {"started_utc", "outcome"});
  return s;
}

RunData load_run(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) {
    throw DataError(dir + ": no such folder (expected a run folder, e.g. the output of `tokcom demo`)");
  }
  RunData run;
  run.dir = dir;
  std::vector<fs::path> files;
  std::set<std::string> skip = {"report", "checkpoint", "deploy", "traces"};
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory()) {
      if (skip.count(name) || starts_with(name, ".")) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());

  std::map<std::string, fs::path> summaries, deploys, searches;
  std::map<std::string, StageInfo> stages;
  auto stage = [&](const fs::path& folder) -> StageInfo& {
    const std::string r = folder == root ? "." : rel(folder, root);
    StageInfo& s = stages[r];
    s.name = r;
    return s;
  };
  // Sweep CSVs, each with its sidecar. A shard of a grid (`sweep --shard k/n`, n > 1) is read only
  // where the run does not also hold the grid's merge: a study keeps both, and its cells count once.
  std::vector<std::pair<std::string, SweepFile>> parts;
  auto add_sweep = [&run](const std::string& r, SweepFile sf) {
    const nlohmann::json sidecar = sf.sidecar;
    run.sweeps.push_back(std::move(sf));
    run.inputs.push_back(r);
    if (!sidecar.is_null()) {
      run.sidecars.emplace_back(r + ".json", sidecar);
      run.inputs.push_back(r + ".json");
    }
  };
  for (const fs::path& f : files) {
    const std::string name = f.filename().string(), r = rel(f, root);
    const fs::path parent = f.parent_path();
    const std::string folder = parent == root ? "." : rel(parent, root);
    if (name == "epochs.csv" || (starts_with(name, "epochs-") && ends_with(name, ".csv"))) {
      const bool jscc = name != "epochs.csv";
      run.epochs.push_back(
          EpochsFile{folder, csv::read(f.string(), r, jscc ? jscc_epochs_schema() : epochs_schema()), jscc});
      run.inputs.push_back(r);
      stage(parent);
    } else if (name == "summary.csv") {
      summaries[folder] = f;
    } else if (name == "deploy_summary.csv") {
      deploys[folder] = f;
    } else if (name == "search.csv") {
      searches[folder] = f;
    } else if (name == "calls.csv" && parent == root) {
      run.calls = csv::read(f.string(), r, calls_schema());
      run.inputs.push_back(r);
    } else if (ends_with(name, ".csv") && starts_with(first_line(f), "alpha,mode,accuracy,kept_fraction")) {
      run.evals.push_back(csv::read(f.string(), r, eval_schema()));
      run.inputs.push_back(r);
    } else if (ends_with(name, ".csv")) {
      const fs::path side = f.string() + ".json";
      nlohmann::json sidecar;
      if (fs::exists(side)) sidecar = read_json(side, r + ".json");
      const bool known = name == "sweep.csv" || name == "digital.csv" || name == "proxy.csv";
      if (!known && !(sidecar.is_object() && sidecar.contains("grid"))) continue;  // not a sweep CSV
      SweepFile sf{csv::read(f.string(), r, sweep_schema()), sidecar, false};
      sf.proxy = name == "proxy.csv" || (sidecar.is_object() && sidecar.value("split", "") == "train");
      if (is_shard_part(sidecar)) {
        parts.emplace_back(r, std::move(sf));  // read below, unless their merge is here too
        continue;
      }
      add_sweep(r, std::move(sf));
    } else if (ends_with(name, ".csv.json")) {
      const fs::path csv = f.string().substr(0, f.string().size() - 5);
      if (!fs::exists(csv)) {
        const nlohmann::json side = read_json(f, r);
        if (side.is_object() && side.contains("grid")) {
          throw DataError(fmt::format("{} is missing in {}: its sidecar {} is there (a sweep writes both)",
                                      rel(csv, root), dir, r));
        }
      }
    } else if (ends_with(name, ".png") &&
               (starts_with(name, "fig9") || starts_with(name, "visualize") ||
                parent.filename() == "fig9" || parent.filename() == "visualize")) {
      run.pictures.push_back(r);
    } else if (name == ".done") {
      stage(parent).done = true;
    } else if (name == ".seconds") {
      try {
        stage(parent).seconds = csv::parse_number(trimmed(read_file(f.string())), r, "seconds");
      } catch (const FormatError& e) {
        throw FormatError(std::string(e.what()).substr(13));  // drop the doubled "FormatError: "
      }
    } else if (name == ".command") {
      stage(parent).command = trimmed(read_file(f.string()));
    } else if (name == "config.yaml" || ends_with(name, ".config.yaml")) {
      StageInfo& s = stage(parent);
      if (s.config.empty() || name == "config.yaml") {
        s.config = r;
        s.config_digest = fnv1a_hex(read_file(f.string()));
      }
      run.inputs.push_back(r);
    }
  }

  // Control folders: deploy_summary.csv needs the summary.csv of the same search.
  std::set<std::string> control_dirs;
  for (const auto& [d, p] : summaries) control_dirs.insert(d);
  for (const auto& [d, p] : deploys) {
    if (!summaries.count(d)) {
      throw DataError(fmt::format("{}/summary.csv is missing in {}: {}/deploy_summary.csv is there, and `tokcom "
                                  "optimize` writes both (the report takes the oracle bound from summary.csv)",
                                  d, dir, d));
    }
  }
  for (const std::string& d : control_dirs) {
    const std::string prefix = d == "." ? "" : d + "/";
    ControlRun c{d, csv::read(summaries[d].string(), prefix + "summary.csv", summary_schema()), std::nullopt,
                 std::nullopt, nullptr, nullptr};
    run.inputs.push_back(prefix + "summary.csv");
    if (searches.count(d)) {
      c.search = csv::read(searches[d].string(), prefix + "search.csv", search_schema());
      run.inputs.push_back(prefix + "search.csv");
    }
    if (deploys.count(d)) {
      c.deploy = csv::read(deploys[d].string(), prefix + "deploy_summary.csv", deploy_schema());
      run.inputs.push_back(prefix + "deploy_summary.csv");
    }
    const fs::path sj = root / d / "summary.json";
    if (fs::exists(sj)) {
      c.summary_json = read_json(sj, prefix + "summary.json");
      run.sidecars.emplace_back(prefix + "summary.json", c.summary_json);
      run.inputs.push_back(prefix + "summary.json");
    }
    for (const char* n : {"deploy_summary.json", "deploy_summary.csv.json"}) {
      if (fs::exists(root / d / n)) {
        c.deploy_json = read_json(root / d / n, prefix + n);
        run.sidecars.emplace_back(prefix + n, c.deploy_json);
        run.inputs.push_back(prefix + n);
      }
    }
    run.controls.push_back(std::move(c));
  }

  for (auto& [r, part] : parts) {
    const bool merged = std::any_of(run.sweeps.begin(), run.sweeps.end(), [&part = part](const SweepFile& whole) {
      return !is_shard_part(whole.sidecar) && whole.sidecar.is_object() &&
             whole.sidecar.value("grid", nlohmann::json()) == part.sidecar.at("grid") &&
             whole.sidecar.value("seed", nlohmann::json()) == part.sidecar.value("seed", nlohmann::json());
    });
    if (!merged) add_sweep(r, std::move(part));
  }

  // A finished demo stage must still hold its output.
  for (auto& [name, s] : stages) {
    if (!s.done) continue;
    const std::string base = fs::path(name).filename().string();
    if (base == "backbone" || base == "adaptive") require(root, name, "epochs.csv");
    if (base == "sweep") require(root, name, "sweep.csv");
    if (base == "digital") require(root, name, "digital.csv");
    if (base == "proxy") require(root, name, "proxy.csv");
    if (base == "control") {
      require(root, name, "summary.csv");
      require(root, name, "deploy_summary.csv");
    }
    const bool bank_stage = std::any_of(methods().begin(), methods().end(),
                                        [&](const Method& m) { return m.has_bank() && base == m.stage; });
    if (bank_stage) {
      const bool any = std::any_of(run.epochs.begin(), run.epochs.end(),
                                   [&](const EpochsFile& e) { return e.stage == name && e.jscc; });
      if (!any) {
        throw DataError(fmt::format("{}/epochs-<regime>-r<ratio>.csv is missing in {}, but {}/.done says the JSCC "
                                    "stage finished",
                                    name, dir, name));
      }
    }
  }
  for (auto& [name, s] : stages) run.stages.push_back(s);

  if (run.sweeps.empty() && run.epochs.empty() && run.controls.empty() && run.evals.empty()) {
    throw DataError(fmt::format(
        "{} holds none of the files a report is made from (looked for sweep CSVs: sweep.csv, digital.csv, "
        "proxy.csv or any *.csv with a sweep .json sidecar; epochs.csv / epochs-*.csv of `tokcom train`; "
        "summary.csv / deploy_summary.csv of `tokcom optimize`)",
        dir));
  }
  return run;
}

}  // namespace tokcom::report

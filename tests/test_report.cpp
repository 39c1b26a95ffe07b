// `tokcom report`: a report from a small synthetic run folder (known numbers → known table rows),
// the self-contained HTML, and the errors for a folder with missing or malformed files.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/eval/sweep.h"
#include "tokcom/report/document.h"
#include "tokcom/report/report.h"

using namespace tokcom;
namespace fs = std::filesystem;

namespace {

const char* kSweepHeader = "method,regime,channel,snr_db,ratio,alpha,zeta,kept_tokens,symbols,accuracy,n_images,seed,mode\n";

void put(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  write_file_atomic(path, text);
}

// A run folder as `tokcom demo` leaves it, with a few known numbers.
std::string synthetic_run() {
  const std::string dir = test::temp_dir("report-run");
  put(dir + "/sweep/sweep.csv", std::string(kSweepHeader) +
                                    "proposal,robust,awgn,20,0.1,0.25,0.01,10,100,0.5,64,1,hard\n"
                                    "proposal,robust,awgn,20,0.1,0.5,0.05,20,200,0.7,64,2,hard\n"
                                    "proposal,robust,awgn,20,0.5,1,0.1,40,400,0.6,64,3,hard\n"
                                    "proposal,robust,awgn,10,0.1,1,0.1,40,400,0.3,64,4,hard\n");
  put(dir + "/sweep/sweep.csv.json", R"({"grid": {}, "seed": 7, "split": "val", "git_hash": "abc123"})");
  put(dir + "/digital/digital.csv", std::string(kSweepHeader) + "jpeg,none,awgn,20,0,1,0.2,0,0,0.4,64,5,hard\n");
  put(dir + "/proxy/proxy.csv", std::string(kSweepHeader) + "proposal,robust,awgn,20,0.1,1,0.001,1,1,0.99,64,6,soft\n");
  put(dir + "/proxy/proxy.csv.json", R"({"grid": {}, "seed": 7, "split": "train"})");
  put(dir + "/control/summary.csv",
      "scenario,zeta_max,rule,V,mu,accuracy,zeta,feasible,queue_final,oracle_accuracy,oracle_zeta,gap\n"
      "\"gauss:10,2.5\",0.05,paper,100,10,0.86,0.048,1,0.5,0.88,0.0499,0.02\n"
      "\"gauss:10,2.5\",0.05,reference,1000,1,0.85,0.049,1,0.5,0.88,0.0499,0.03\n"
      "fixed:20,0.02,paper,,,,,0,,0.8,0.02,\n"
      "fixed:20,0.02,reference,,,,,0,,0.8,0.02,\n");
  put(dir + "/control/summary.json",
      R"({"tool": "tokcom optimize", "seed": 3, "git_hash": "abc123", "selection": "paper",
          "table": {"method": "proposal", "regime": "robust", "channel": "awgn"}})");
  put(dir + "/control/search.csv", "scenario,zeta_max,V,mu,accuracy,zeta,feasible,selected_paper,selected_reference\n"
                                   "\"gauss:10,2.5\",0.05,100,10,0.86,0.048,1,1,0\n");
  put(dir + "/control/deploy_summary.csv",
      "scenario,zeta_max,repeat,V,mu,accuracy,constrained_accuracy,zeta,slots,queue_final\n"
      "\"gauss:10,2.5\",0.05,0,100,10,0.800000,0.700000,0.04,20,0.1\n"
      "\"gauss:10,2.5\",0.05,1,100,10,0.900000,0.800000,0.045,20,0.2\n"
      "fixed:20,0.02,0,100,10,0.500000,0.250000,0.03,20,0.3\n");
  put(dir + "/backbone/epochs.csv", "epoch,lr,loss,ce,budget_loss,train_accuracy,val_accuracy,images_per_s\n"
                                    "1,0.001,0.9,0.9,0,0.6,0.55,100\n"
                                    "2,0.001,0.5,0.5,0,0.8,0.75,300\n");
  put(dir + "/backbone/config.yaml", "train:\n  stage: backbone\n");
  put(dir + "/backbone/.done", "0123\n");
  put(dir + "/backbone/.seconds", "12.5\n");
  put(dir + "/backbone/.command", "tokcom --seed 0 train -c fmnist\n");
  put(dir + "/calls.csv", "started_utc,seconds,jobs,threads,ran,reused,outcome\n"
                          "2026-12-05T21:00:00Z,3000.5,2,2,3,1,interrupted\n"
                          "2026-12-05T23:00:00Z,4200,2,2,5,4,finished\n");
  put(dir + "/bank/epochs-robust-r0.1.csv", "regime,ratio,epoch,lr,loss,train_accuracy,images_per_s,val_accuracy_snr0,"
                                            "val_accuracy_snr20\n"
                                            "robust,0.1,1,0.001,1.25,0.4,50,0.2,0.6\n");
  put(dir + "/bank/config.yaml", "train:\n  stage: jscc\n  init: elsewhere/backbone/model.safetensors\n");
  put(dir + "/fig9/fig9.png", std::string("\x89PNG\r\n\x1a\n", 8) + "not really a picture");
  put(dir + "/eval/adaptive-hard.csv",
      "alpha,mode,accuracy,kept_fraction,kept_mean_block1,kept_std_block1,images_per_s,n_images\n"
      "0.25,hard,0.612994,0.275525,17.6336,3.9997,447.47,3925\n"
      "1,hard,0.671338,1.000000,64.0000,0.0000,207.84,3925\n");
  return dir;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

void expect_has(const std::string& text, const std::string& what) {
  EXPECT_NE(text.find(what), std::string::npos) << "missing: " << what << "\n--- in ---\n" << text;
}

}  // namespace

TEST(Report, SyntheticRunGivesItsNumbers) {
  const std::string dir = synthetic_run();
  const report::RunData run = report::load_run(dir);
  EXPECT_EQ(run.sweeps.size(), 3u);
  EXPECT_EQ(run.epochs.size(), 2u);
  ASSERT_EQ(run.controls.size(), 1u);
  report::ReportOptions options;
  options.plots = false;
  const report::ReportFiles files = report::write_report(run, options);
  EXPECT_EQ(files.markdown, dir + "/report.md");
  const std::string md = read_file(dir + "/report.md");
  EXPECT_EQ(md.rfind("# tokcom report: ", 0), 0u);
  for (const char* h : {"## Accuracy vs ζ (Figs 6–7)", "## Controller vs oracle bound (Fig. 8)",
                        "## Deployment (Table II)", "## Token selection (Fig. 9)",
                        "## Token budget: kept fraction vs α", "## Training curves", "## Timing",
                        "## Provenance"}) {
    expect_has(md, std::string(h) + "\n");
  }
  // Figs 6–7 at 20 dB: envelopes at ζ ≤ 0.01, 0.02, 0.05, 0.1, 0.2; the proxy table (training split) is left out.
  expect_has(md, "### awgn at 20 dB\n\n| method | ζ ≤ 0.01 | ζ ≤ 0.02 | ζ ≤ 0.05 | ζ ≤ 0.1 | ζ ≤ 0.2 |");
  // Each best accuracy with its 95 % Wilson interval over the cell's 64 images (values from the formula).
  expect_has(md, "| jpeg | – | – | – | – | 0.400 (0.289–0.522) |\n| proposal (robust) | 0.500 (0.381–0.619) | "
                 "0.500 (0.381–0.619) | 0.700 (0.579–0.798) | 0.700 (0.579–0.798) | 0.700 (0.579–0.798) |\n");
  expect_has(md, "### awgn at 10 dB\n\n| method | ζ ≤ 0.1 |\n| --- | --- |\n| proposal (robust) | 0.300 (0.202–0.421) |\n");
  EXPECT_EQ(md.find("0.990"), std::string::npos) << "the proxy table is not an evaluation";
  // Fig. 8 table: the paper rule's pick and the oracle bound; an infeasible ζ_max shows dashes.
  expect_has(md, "| gauss:10,2.5 | 0.05 | paper | 100 | 10 | 86.00 | 0.048 | yes | 88.00 | 2.00 |");
  expect_has(md, "| fixed:20 | 0.02 | paper | – | – | – | – | no | 80.00 | – |");
  EXPECT_EQ(md.find("| reference |"), std::string::npos);
  // Table II: means over repeats with their 95 % interval (2 repeats 0.8, 0.9: 0.85 ± 12.706·0.05, clipped
  // at 100 %; one run of 20 images: Wilson), ζ check, oracle, and the paper's G1–G5 range (Proposal, robust = b).
  expect_has(md, "| gauss:10,2.5 | 0.05 | 2 | 85.00 (21.47–100.00) | 75.00 | 0.0425 | yes | 88.00 | 82.04–84.46 |");
  expect_has(md, "| fixed:20 | 0.02 | 1 | 50.00 (29.93–70.07) | 25.00 | 0.03 | NO (largest repeat 0.03) | 80.00 | "
                 "79.88–83.73 |");
  // The same in the paper's layout; † where the real model's ζ exceeded ζ_max.
  expect_has(md, "| method | regime | scenario | ζ_max 0.02 | ζ_max 0.05 |\n| --- | --- | --- | --- | --- |\n"
                 "| proposal | robust | gauss:10,2.5 |  | 85.00 (21.47–100.00) |\n"
                 "| proposal | robust | fixed:20 | 50.00 (29.93–70.07) † |  |\n");
  expect_has(md, "| G1 | Proposal | 63.41 – 72.20 | 71.14 – 76.61 |");
  // Training: the last epoch; the JSCC stage's validation accuracy is the mean over its SNRs.
  expect_has(md, "| backbone | backbone/epochs.csv | 2 | 0.5000 | 0.8000 | 0.7500 | 200 |");
  expect_has(md, "| bank | bank/epochs-robust-r0.1.csv | 1 | 1.2500 | 0.4000 | 0.4000 | 50 |");
  // The JSCC model against the clean model its train.init names: 0.6 at 20 dB of the backbone's 0.75.
  expect_has(md, "| bank | robust | 0.1 | 0.6000 | backbone | 0.7500 | 80.0 |");
  expect_has(md, "0 of the 1 models with r ≥ 0.05 reach 97 % of their clean model");
  expect_has(md, "| backbone | 12.5 | yes |");
  // The pipeline's calls (calls.csv): each call's wall time and their sum.
  expect_has(md, "7200 s of wall time (2.00 h) over 2 calls");
  expect_has(md, "| 2026-12-05T21:00:00Z | 3000 | 2 | 2 | 3 | 1 | interrupted |");
  expect_has(md, "| all calls | 7200 (2.00 h) |");
  expect_has(md, "| backbone | backbone/config.yaml |");
  expect_has(md, "`tokcom --seed 0 train -c fmnist`");
  expect_has(md, "| control/summary.json | tokcom optimize | 3 | abc123 |");
  expect_has(md, "![fig9/fig9.png");
  // Claims, computed from the CSVs: the proposal's 0.700 (0.579–0.798) at ζ ≤ 0.2 and 20 dB is above jpeg's
  // 0.400 (0.289–0.522); jpeg's best (0.4 at ζ 0.2) the proposal reaches at ζ 0.01; one deployment misses ζ_max.
  expect_has(md, "## Claims\n");
  expect_has(md, "| proposal at or above jpeg | 1 | 0 | 0 | – |");
  expect_has(md, "| awgn | 20 | proposal (robust) | jpeg | 0.400 | 0.2 | 0.01 | 20.0× |");
  expect_has(md, "| ζ_max met, strict: proposal (control) | 1 | 1 | 0 | fixed:20 ζ_max 0.02 (ζ 0.03) |");
  expect_has(md, "| ζ_max met within 1 %: proposal (control) | 1 | 1 | 0 | fixed:20 ζ_max 0.02 (ζ 0.03) |");
  // Kept fraction vs α from the eval CSV, with the tracking error |kept − α|.
  ASSERT_EQ(run.evals.size(), 1u);
  expect_has(md, "| eval/adaptive-hard.csv | hard | 0.25 | 61.30 | 0.276 | 0.026 | 447 |");
  expect_has(md, "| eval/adaptive-hard.csv | hard | 1 | 67.13 | 1.000 | 0.000 | 208 |");

  const std::string html = read_file(dir + "/report.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n<html", 0), 0u);
  EXPECT_EQ(count(html, "<html"), 1u);
  EXPECT_EQ(count(html, "</html>"), 1u);
  EXPECT_EQ(html.substr(html.size() - 8), "</html>\n");
  EXPECT_EQ(count(html, "<img"), 1u);
  EXPECT_EQ(count(html, "<img"), count(html, "src=\"data:image/png;base64,"));
  EXPECT_EQ(count(html, "<table>"), count(html, "</table>"));
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  expect_has(html, "<td>gauss:10,2.5</td><td>0.05</td><td>2</td><td>85.00 (21.47–100.00)</td>");
  expect_has(html, report::base64(read_file(dir + "/fig9/fig9.png")));
}

TEST(Report, FiguresAreInlinedWhenGnuplotRuns) {
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) TOKCOM_SKIP_MISSING("gnuplot not installed");
  const std::string dir = synthetic_run(), out = test::temp_dir("report-out");
  const report::ReportFiles files = report::write_report(report::load_run(dir), report::ReportOptions{out, true, ""});
  for (const char* f : {"accuracy_vs_zeta_awgn_20dB", "fig8_control", "training", "jscc_share_vs_r"}) {
    EXPECT_TRUE(fs::exists(out + "/report/figures/" + f + ".png")) << f;
    EXPECT_TRUE(fs::exists(out + "/report/figures/" + f + ".svg")) << f;
    EXPECT_TRUE(fs::exists(out + "/report/figures/" + f + ".gp")) << f;
  }
  EXPECT_FALSE(fs::exists(dir + "/report.md")) << "-o writes elsewhere";
  const std::string html = read_file(out + "/report.html");
  EXPECT_EQ(count(html, "<img"), 6u);  // Figs 6–7 at 10 and 20 dB, Fig. 8, training curves, links vs r, fig9
  EXPECT_EQ(count(html, "<img"), count(html, "src=\"data:image/png;base64,"));
  const std::string md = read_file(out + "/report.md");
  expect_has(md, "](report/figures/fig8_control.png)");
  // The link against its clean model, the figure's data: r 0.1 at 0.6 / 0.75 = 80 %.
  expect_has(md, "](report/figures/jscc_share_vs_r.png)");
  expect_has(read_file(out + "/report/figures/jscc_share_vs_r.csv"), "# bank (robust) (r, % of the clean model at 20 dB)\n0.1,80\n");
  expect_has(md, "](" + fs::relative(dir + "/fig9/fig9.png", out).generic_string() + ")");
}

TEST(Report, Base64KnownAnswers) {
  EXPECT_EQ(report::base64(""), "");
  EXPECT_EQ(report::base64("f"), "Zg==");
  EXPECT_EQ(report::base64("fo"), "Zm8=");
  EXPECT_EQ(report::base64("foo"), "Zm9v");
  EXPECT_EQ(report::base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(report::base64(std::string("\xff\x00\x80", 3)), "/wCA");
}

TEST(Report, MissingFilesAreDataErrors) {
  EXPECT_NE(test::error_of([] { report::load_run("/nonexistent/run"); }).find("DataError: /nonexistent/run: no such"),
            std::string::npos);
  const std::string empty = test::temp_dir("report-empty");
  put(empty + "/notes.txt", "nothing here\n");
  EXPECT_NE(test::error_of([&] { report::load_run(empty); }).find("holds none of the files a report is made from"),
            std::string::npos);

  std::string dir = synthetic_run();
  fs::remove(dir + "/control/summary.csv");
  std::string e = test::error_of([&] { report::load_run(dir); });
  EXPECT_EQ(e.rfind("DataError: control/summary.csv is missing", 0), 0u) << e;

  dir = synthetic_run();
  put(dir + "/sweep/.done", "x\n");
  fs::remove(dir + "/sweep/sweep.csv");
  e = test::error_of([&] { report::load_run(dir); });
  EXPECT_EQ(e.rfind("DataError: sweep/sweep.csv is missing", 0), 0u) << e;

  dir = synthetic_run();
  fs::remove(dir + "/backbone/epochs.csv");
  e = test::error_of([&] { report::load_run(dir); });
  EXPECT_EQ(e.rfind("DataError: backbone/epochs.csv is missing", 0), 0u) << e;
}

TEST(Report, MalformedCsvsAreFormatErrorsNamingFileAndLine) {
  struct Case {
    std::string file, text, expected;
  };
  const std::vector<Case> cases = {
      {"sweep/sweep.csv", "method,regime,channel,snr,accuracy\nproposal,robust,awgn,20,0.5\n",
       "FormatError: sweep/sweep.csv line 1: header is 'method,regime,channel,snr,accuracy', expected "
       "'method,regime,channel,snr_db,"},
      {"sweep/sweep.csv", std::string(kSweepHeader) + "proposal,robust,awgn,20,0.1,1,0.1,40,400,0.6,64,3,hard\n" +
                              "proposal,robust,awgn,20,0.1,1,0.1,40,400,abc,64,3,hard\n",
       "FormatError: sweep/sweep.csv line 3: column 'accuracy' is 'abc', expected a finite number"},
      {"digital/digital.csv", std::string(kSweepHeader) + "\njpeg,none,awgn,20\n",
       "FormatError: digital/digital.csv line 3: 4 fields, expected 13"},
      {"control/deploy_summary.csv",
       "scenario,zeta_max,repeat,V,mu,accuracy,constrained_accuracy,zeta,slots,queue_final\n"
       "\"gauss:10,2.5\",0.05,0,100,10,0.8,0.7,,20,0.1\n",
       "FormatError: control/deploy_summary.csv line 2: column 'zeta' is '', expected a finite number"},
      {"control/summary.csv", "scenario,zeta_max\n\"gauss:10,2.5,0.05\n",
       "FormatError: control/summary.csv line 1: header is 'scenario,zeta_max', expected 'scenario,zeta_max,rule,"},
      {"control/summary.csv",
       "scenario,zeta_max,rule,V,mu,accuracy,zeta,feasible,queue_final,oracle_accuracy,oracle_zeta,gap\n"
       "\"gauss:10,2.5,0.05,paper,100,10,0.86,0.048,1,0.5,0.88,0.0499,0.02\n",
       "FormatError: control/summary.csv line 2: unterminated double quote"},
      {"backbone/epochs.csv", "", "FormatError: backbone/epochs.csv: empty file, expected the header 'epoch,lr,"},
      {"eval/adaptive-hard.csv", "alpha,mode,accuracy,kept_fraction\n0.5,hard,0.6,x\n",
       "FormatError: eval/adaptive-hard.csv line 2: column 'kept_fraction' is 'x', expected a finite number"},
  };
  for (const Case& c : cases) {
    const std::string dir = synthetic_run();
    put(dir + "/" + c.file, c.text);
    const std::string e = test::error_of([&] { report::load_run(dir); });
    EXPECT_EQ(e.rfind(c.expected, 0), 0u) << c.file << ": " << e;
  }
}

TEST(Report, CliRefusesABadFolderWithAClearMessage) {
  const std::string dir = synthetic_run();
  put(dir + "/sweep/sweep.csv", std::string(kSweepHeader) + "proposal,robust,awgn\n");
  std::string out;
  EXPECT_EQ(test::run_cli("report " + dir, &out), 4) << out;  // FormatError's exit code
  expect_has(out, "sweep/sweep.csv line 2: 3 fields, expected 13");
  EXPECT_FALSE(fs::exists(dir + "/report.md"));

  const std::string good = synthetic_run(), out_dir = test::temp_dir("report-cli-out");
  EXPECT_EQ(test::run_cli("report --no-plots " + good + " -o " + out_dir, &out), 0) << out;
  EXPECT_TRUE(fs::exists(out_dir + "/report.md"));
  EXPECT_TRUE(fs::exists(out_dir + "/report.html"));
}

// Each verdict of the claims table from known cells: separated intervals decide, overlapping ones do
// not (3,925 images: ±1.5 points; 64 images: ±12).
TEST(Report, ClaimsTableCountsHoldsFailsAndUndecided) {
  const std::string dir = test::temp_dir("report-claims");
  put(dir + "/sweep/sweep.csv", std::string(kSweepHeader) +
                                    "proposal,robust,awgn,0,0.1,0.5,0.01,10,100,0.60,3925,1,hard\n"
                                    "proposal,noiseless,awgn,0,0.1,0.5,0.01,10,100,0.50,3925,1,hard\n"
                                    "proposal,robust,awgn,0,0.1,1,0.02,20,200,0.62,3925,1,hard\n"
                                    "proposal,noiseless,awgn,0,0.1,1,0.02,20,200,0.61,3925,1,hard\n"
                                    "vit-ae,robust,awgn,0,0.1,1,0.01,17,170,0.70,3925,1,hard\n"
                                    "vit-ae,robust,awgn,0,0.2,1,0.02,17,340,0.71,64,1,hard\n");
  // Two deployments of the same regime: the gap proposal − ViT-AE shrinks at gauss:0 (10 → 2 points) and grows
  // at fixed:20 (1 → 3).
  for (const auto& [name, accuracies] : std::vector<std::pair<std::string, std::vector<double>>>{
           {"proposal", {0.80, 0.90, 0.70, 0.93}}, {"vit-ae", {0.70, 0.88, 0.69, 0.90}}}) {
    const std::string c = dir + "/control/" + name;
    put(c + "/summary.csv", "scenario,zeta_max,rule,V,mu,accuracy,zeta,feasible,queue_final,oracle_accuracy,oracle_zeta,gap\n"
                            "\"gauss:0,2.5\",0.01,paper,100,10,0.8,0.009,1,0.5,0.88,0.0099,0.08\n");
    put(c + "/summary.json", R"({"selection": "paper", "table": {"method": ")" + name + R"(", "regime": "robust"}})");
    put(c + "/deploy_summary.csv",
        "scenario,zeta_max,repeat,V,mu,accuracy,constrained_accuracy,zeta,slots,queue_final\n" +
            fmt::format("\"gauss:0,2.5\",0.01,0,100,10,{},0.5,0.009,100,0\n", accuracies[0]) +
            fmt::format("\"gauss:0,2.5\",0.1,0,100,10,{},0.5,0.09,100,0\n", accuracies[1]) +
            fmt::format("fixed:20,0.01,0,100,10,{},0.5,0.01,100,0\n", accuracies[2]) +
            fmt::format("fixed:20,0.1,0,100,10,{},0.5,0.1005,100,0\n", accuracies[3]));
  }
  report::ReportOptions options;
  options.plots = false;
  report::write_report(report::load_run(dir), options);
  const std::string md = read_file(dir + "/report.md");
  expect_has(md, "| gap to ViT-AE narrows as ζ_max grows (point estimates) | 1 | 1 | 0 | robust fixed:20: gap 1.00 at "
                 "ζ_max 0.01 → 3.00 at 0.1 |");
  // ζ 0.1005 against ζ_max 0.1: over by the strict rule, within 1 %.
  expect_has(md, "| ζ_max met, strict: proposal (control/proposal) | 3 | 1 | 0 | fixed:20 ζ_max 0.1 (ζ 0.1005) |");
  expect_has(md, "| ζ_max met within 1 %: proposal (control/proposal) | 4 | 0 | 0 | – |");
  // The same counts as CSV, for comparing runs.
  const std::string claims = read_file(dir + "/report/claims.csv");
  EXPECT_EQ(claims.rfind("claim,holds,fails,undecided,fails_at\n", 0), 0u) << claims;
  expect_has(claims, "\nζ_max met within 1 %: proposal (control/proposal),4,0,0,–\n");
  expect_has(claims, "\n\"ζ_max met, strict: proposal (control/proposal)\",3,1,0,fixed:20 ζ_max 0.1 (ζ 0.1005)\n");
  // Each proposal regime against ViT-AE: ζ ≤ 0.01: 0.60 and 0.50 vs 0.70 (3925 images each) fail; ζ ≤ 0.02:
  // 0.62 and 0.61 vs 0.71 (64 images) are undecided.
  expect_has(md, "| proposal at or above vit-ae (robust) | 0 | 2 | 2 | awgn 0 dB ζ ≤ 0.01 (proposal (noiseless)); "
                 "awgn 0 dB ζ ≤ 0.01 (proposal (robust)) |");
  // Below 10 dB, robust vs noiseless: 0.60 vs 0.50 holds at ζ ≤ 0.01; 0.62 vs 0.61 is undecided at ζ ≤ 0.02.
  expect_has(md, "| robust-trained at or above noiseless-trained below 10 dB | 1 | 0 | 1 | – |");
}

// Table II in the paper's layout says why a cell is empty: ζ_max below every mix of the method's decisions
// (the oracle has none), the closest (V, μ) over ζ_max on the proxy table (by how much), or exactly at it
// (the paper's strict "<"); a deployed cell carries its interval over 3 repeats (0.5, 0.6, 0.7: 0.6 ± 4.303·0.1/√3).
TEST(Report, TableTwoSaysWhyACellIsEmpty) {
  const std::string dir = test::temp_dir("report-table2");
  const std::string c = dir + "/control/proposal-robust";
  put(c + "/summary.csv", "scenario,zeta_max,rule,V,mu,accuracy,zeta,feasible,queue_final,oracle_accuracy,oracle_zeta,gap\n"
                          "fixed:10,0.001,paper,,,,,0,,,,\n"
                          "fixed:10,0.002,paper,,,,,0,,0.3,0.002,\n"
                          "fixed:10,0.005,paper,,,,,0,,0.4,0.005,\n"
                          "fixed:10,0.01,paper,100,10,0.6,0.009,1,0.5,0.62,0.0099,0.02\n");
  put(c + "/summary.json", R"({"selection": "paper", "table": {"method": "proposal", "regime": "robust"}})");
  put(c + "/search.csv", "scenario,zeta_max,V,mu,accuracy,zeta,feasible,selected_paper,selected_reference\n"
                         "fixed:10,0.002,1,1,0.3,0.00203,0,0,0\n"
                         "fixed:10,0.002,10,1,0.3,0.00201,0,0,0\n"
                         "fixed:10,0.005,1,1,0.4,0.005,0,0,0\n"
                         "fixed:10,0.01,100,10,0.6,0.009,1,1,0\n");
  put(c + "/deploy_summary.csv", "scenario,zeta_max,repeat,V,mu,accuracy,constrained_accuracy,zeta,slots,queue_final\n"
                                 "fixed:10,0.01,0,100,10,0.5,0.5,0.009,100,0\n"
                                 "fixed:10,0.01,1,100,10,0.6,0.5,0.009,100,0\n"
                                 "fixed:10,0.01,2,100,10,0.7,0.5,0.009,100,0\n");
  report::ReportOptions options;
  options.plots = false;
  report::write_report(report::load_run(dir), options);
  const std::string md = read_file(dir + "/report.md");
  expect_has(md, "| proposal | robust | fixed:10 | – below | – over +0.5 % | – at ζ_max | 60.00 (35.16–84.84) |\n");
  expect_has(md, "1 cells deployed, 3 \"–\": 1 below the method's cheapest operating point");
  expect_has(md, "2 where no (V, μ) the controller tried stayed strictly below ζ_max");
  expect_has(md, "the largest such overshoot +0.5 %");
  EXPECT_EQ(read_file(dir + "/report/table2.csv"),
            "method,regime,scenario,zeta_max,status,accuracy,low,high,repeats,zeta_exceeded,overshoot\n"
            "proposal,robust,fixed:10,0.001,below,,,,,,\n"
            "proposal,robust,fixed:10,0.002,over,,,,,,0.005\n"
            "proposal,robust,fixed:10,0.005,at,,,,,,0\n"
            "proposal,robust,fixed:10,0.01,deployed,0.6,0.351586,0.848414,3,0,\n");
}

// Beside the val envelope, each method at the decision its proxy table (training split) picks for each
// budget, with that decision's val accuracy: at ζ ≤ 0.05 the training split prefers (r 0.5, α 1), whose
// val accuracy (0.650) is below the envelope's best-of-val (0.700).
TEST(Report, OperatingPointsArePickedOnTheTrainingSplit) {
  const std::string dir = test::temp_dir("report-picked");
  put(dir + "/sweep/sweep.csv", std::string(kSweepHeader) +
                                    "proposal,robust,awgn,10,0.1,0.5,0.01,10,100,0.60,3925,1,hard\n"
                                    "proposal,robust,awgn,10,0.1,1,0.02,20,200,0.70,3925,1,hard\n"
                                    "proposal,robust,awgn,10,0.5,1,0.05,20,1000,0.65,3925,1,hard\n");
  put(dir + "/proxy/proxy.csv", std::string(kSweepHeader) +
                                    "proposal,robust,awgn,10,0.1,0.5,0.01,10,100,0.50,512,1,hard\n"
                                    "proposal,robust,awgn,10,0.1,1,0.02,20,200,0.80,512,1,hard\n"
                                    "proposal,robust,awgn,10,0.5,1,0.045,20,1000,0.90,512,1,hard\n");
  put(dir + "/proxy/proxy.csv.json", R"({"grid": {}, "seed": 7, "split": "train"})");
  report::ReportOptions options;
  options.plots = false;
  report::write_report(report::load_run(dir), options);
  const std::string md = read_file(dir + "/report.md");
  expect_has(md, "| proposal (robust) | 0.600 (0.585–0.615) | 0.700 (0.685–0.714) | 0.700 (0.685–0.714) |");
  expect_has(md, "| method, picked on the training split | ζ ≤ 0.01 | ζ ≤ 0.02 | ζ ≤ 0.05 |");
  expect_has(md, "| proposal (robust) | 0.600 (0.585–0.615) | 0.700 (0.685–0.714) | 0.650 (0.635–0.665) |");
}

// A sharded sweep (`reproduce` keeps its parts beside the merge): each cell counts once — the
// parts are read only where their merge is not in the run.
TEST(Report, ShardPartsCountOnceBesideTheirMerge) {
  const std::string dir = test::temp_dir("report-shards");
  SweepGrid grid;
  grid.methods = {"jpeg"};
  grid.channels = {"awgn"};
  grid.snrs = {0, 20};
  grid.zetas = {0.01, 0.1};
  const std::vector<SweepCell> cells = sweep_cells(grid);
  ASSERT_EQ(cells.size(), 4u);
  std::vector<std::string> parts;
  for (int64_t k = 0; k < 2; ++k) {
    std::vector<SweepRow> rows;
    for (int64_t i = 2 * k; i < 2 * k + 2; ++i) {
      SweepRow row;
      row.cell = cells[i];
      row.zeta = cells[i].zeta;
      row.accuracy = 0.1 * static_cast<double>(i + 1);
      row.n_images = 10;
      row.seed = 3;
      row.mode = "hard";
      rows.push_back(row);
    }
    parts.push_back(fmt::format("{}/digital/part-{}-of-2/digital.csv", dir, k));
    fs::create_directories(fs::path(parts.back()).parent_path());
    write_sweep(parts.back(), grid, Shard{k, 2}, 3, rows, nlohmann::json::object());
  }
  auto rows_read = [&] {
    size_t n = 0;
    for (const report::SweepFile& f : report::load_run(dir).sweeps) n += f.table.rows.size();
    return n;
  };
  EXPECT_EQ(rows_read(), 4u);  // the parts alone: each read
  merge_sweeps(parts, dir + "/digital/digital.csv");
  EXPECT_EQ(rows_read(), 4u);  // parts and merge: the merge only
  EXPECT_EQ(report::load_run(dir).sweeps.size(), 1u);
}

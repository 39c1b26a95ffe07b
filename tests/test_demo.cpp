// `tokcom demo --quick`: every stage runs end to end and writes the report (report.md and a
// self-contained report.html); the controller's deployment keeps its mean ζ within ζ_max; a second
// run reuses every finished stage (same commands), so an interrupted demo resumes where it stopped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "common/helpers.h"
#include "tokcom/control/optimize.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/report/report.h"

using namespace tokcom;

namespace {
size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST(Demo, QuickRunWritesReportAndRerunReusesStages) {
  const std::string dir = test::temp_dir("demo");
  std::string out;
  ASSERT_EQ(test::run_cli("--log-level warn --threads 2 demo --quick -o " + dir, &out), 0) << out;
  // Two stages at a time by default (--jobs 2): each starts only after the stages it reads are done,
  // and at some point two run at once.
  const auto started = [&](const std::string& name) { return out.find("/12] " + name + "\n"); };
  const auto done = [&](const std::string& name) { return out.find("/12] " + name + ": done in"); };
  const std::pair<std::string, std::vector<std::string>> reads[] = {
      {"adaptive", {"backbone"}}, {"bank", {"adaptive"}},     {"vit-ae", {"backbone"}},
      {"mobilenet-cnn", {"mobilenet"}}, {"sweep", {"bank", "vit-ae", "mobilenet-cnn"}},
      {"proxy", {"bank"}},       {"control", {"proxy", "bank"}}, {"fig9", {"adaptive"}}};
  for (const auto& [stage, inputs] : reads) {
    ASSERT_NE(started(stage), std::string::npos) << stage << "\n" << out;
    for (const auto& input : inputs) EXPECT_LT(done(input), started(stage)) << input << " before " << stage << "\n" << out;
  }
  EXPECT_LT(started("mobilenet"), done("backbone")) << "the MobileNet chain runs beside the ViT's\n" << out;
  // The two cores are shared: the two first stages get one thread each, a stage gets the free
  // cores divided among the stages that start with it, and the running stages never hold more
  // than two threads together.
  const auto threads_of = [&](const std::string& stage) {
    std::smatch m;
    const std::string command = read_file(dir + "/" + stage + "/.command");
    return std::regex_search(command, m, std::regex(" --threads (\\d+) ")) ? std::stoi(m[1]) : -1;
  };
  EXPECT_EQ(threads_of("backbone"), 1);
  EXPECT_EQ(threads_of("mobilenet"), 1);
  std::vector<std::string> stages = {"backbone", "mobilenet", "digital"};  // every stage: these and those in `reads`
  for (const auto& [stage, inputs] : reads) stages.push_back(stage);
  std::vector<std::pair<size_t, int>> events;  // (position in the log, threads taken or given back)
  for (const std::string& stage : stages) {
    events.push_back({started(stage), threads_of(stage)});
    events.push_back({done(stage), -threads_of(stage)});
  }
  std::sort(events.begin(), events.end());
  int busy = 0;
  for (const auto& [at, threads] : events) {
    ASSERT_NE(threads, 0) << out;
    busy += threads;
    EXPECT_LE(busy, 2) << "at " << out.substr(at, 60) << "\n" << out;
  }
  for (const char* f : {"README.md", "report.md", "report.html", "sweep/sweep.csv", "digital/digital.csv",
                        "proxy/proxy.csv", "control/deploy_summary.csv", "control/summary.csv", "fig9/fig9.png",
                        "bank/jscc-robust-r0.1.safetensors", "bank/jscc-noiseless-r0.5.safetensors",
                        "vit-ae/jscc-robust-r0.01.safetensors", "backbone/.seconds", "backbone/.command"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  }
  const std::string readme = read_file(dir + "/README.md");
  EXPECT_NE(readme.find("| proposal (robust) |"), std::string::npos) << readme;
  EXPECT_NE(readme.find("| vit-ae (noiseless) |"), std::string::npos) << readme;
  EXPECT_NE(readme.find("| jpeg |"), std::string::npos) << readme;
  EXPECT_NE(readme.find("| mobilenet-cnn (robust) |"), std::string::npos) << readme;
  EXPECT_TRUE(std::filesystem::exists(dir + "/mobilenet-cnn/jscc-noiseless-r0.01.safetensors"));
  EXPECT_NE(out.find("Report: " + dir + "/report.md and " + dir + "/report.html"), std::string::npos) << out;

  // report.md: every section, the demo's methods and its deployment rows.
  const std::string md = read_file(dir + "/report.md");
  for (const char* h : {"## Accuracy vs ζ (Figs 6–7)", "### awgn at 20 dB", "## Controller vs oracle bound (Fig. 8)",
                        "## Deployment (Table II)", "## Token selection (Fig. 9)", "## Training curves", "## Timing",
                        "## Provenance"}) {
    EXPECT_NE(md.find(std::string(h) + "\n"), std::string::npos) << h << "\n" << md;
  }
  EXPECT_NE(md.find("| proposal (noiseless) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| gauss:10,2.5 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| fixed:20 |"), std::string::npos) << md;
  EXPECT_NE(md.find("![fig9/fig9.png"), std::string::npos) << md;
  // report.html: one balanced page, every picture inlined.
  const std::string html = read_file(dir + "/report.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>\n<html", 0), 0u);
  EXPECT_EQ(count(html, "<html"), 1u);
  EXPECT_EQ(count(html, "</html>"), 1u);
  EXPECT_EQ(html.substr(html.size() - 8), "</html>\n");
  EXPECT_EQ(count(html, "<table>"), count(html, "</table>"));
  EXPECT_GE(count(html, "<img"), 1u);  // fig9 at least
  EXPECT_EQ(count(html, "<img"), count(html, "src=\"data:image/png;base64,"));
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/report/figures/accuracy_vs_zeta_awgn_20dB.png"));
    EXPECT_TRUE(std::filesystem::exists(dir + "/report/figures/fig8_control.png"));
    EXPECT_GE(count(html, "<img"), 5u);
  }

  // The controller's achieved mean ζ on the real model stays within ζ_max (METHOD §8.5), every repeat.
  const csv::Table deploy =
      csv::read(dir + "/control/deploy_summary.csv", "control/deploy_summary.csv", deploy_schema());
  // Deployed: every ζ_max with a feasible (V, μ); gauss:10,2.5 repeats 3 times, fixed:20 once.
  EXPECT_GE(deploy.rows.size(), 1u);
  for (size_t i = 0; i < deploy.rows.size(); ++i) {
    EXPECT_LE(deploy.number(i, "zeta"), deploy.number(i, "zeta_max"))
        << "line " << deploy.lines[i] << ": " << deploy.text(i, "scenario") << " repeat " << deploy.text(i, "repeat");
  }

  ASSERT_EQ(test::run_cli("--log-level warn --threads 2 demo --quick -o " + dir, &out), 0) << out;
  size_t reused = 0;
  for (size_t p = out.find("reused"); p != std::string::npos; p = out.find("reused", p + 1)) ++reused;
  EXPECT_EQ(reused, 11u) << out;  // every stage but the report

  // A finished stage whose output was removed, or whose .done was damaged, runs again and says why;
  // the others are still reused.
  std::filesystem::remove(dir + "/fig9/fig9.png");
  write_file_atomic(dir + "/digital/.done", "cut sh");
  ASSERT_EQ(test::run_cli("--log-level warn --threads 2 demo --quick -o " + dir, &out), 0) << out;
  EXPECT_NE(out.find("fig9: its output " + dir + "/fig9/fig9.png is gone since it finished; running it again"),
            std::string::npos) << out;
  EXPECT_NE(out.find("digital: " + dir + "/digital/.done is damaged (expected one command digest); running the stage "
                     "again"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(dir + "/fig9/fig9.png"));
  EXPECT_EQ(count(out, ": reused"), 9u) << out;

  // One stage left to run among reused ones gets both cores: the stages after it in the plan that
  // are reused settle first and take no share (before, it got one thread beside them).
  // (vit-ae: mobilenet-cnn, after it in the plan, is ready at the same time and reused; its reader,
  // the sweep, runs again.)
  write_file_atomic(dir + "/vit-ae/.done", "cut sh");
  ASSERT_EQ(test::run_cli("--log-level warn --threads 2 demo --quick -o " + dir, &out), 0) << out;
  EXPECT_EQ(count(out, ": reused"), 9u) << out;
  EXPECT_EQ(threads_of("vit-ae"), 2) << read_file(dir + "/vit-ae/.command");
}

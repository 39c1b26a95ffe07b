// `tokcom demo --quick`: every stage runs end to end and writes the report; a second run reuses
// every finished stage (same commands), so an interrupted demo resumes where it stopped.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"

using namespace tokcom;

TEST(Demo, QuickRunWritesReportAndRerunReusesStages) {
  const std::string dir = test::temp_dir("demo");
  std::string out;
  ASSERT_EQ(test::run_cli("--log-level warn demo --quick -o " + dir, &out), 0) << out;
  for (const char* f : {"README.md", "sweep/sweep.csv", "digital/digital.csv", "proxy/proxy.csv",
                        "control/deploy_summary.csv", "control/summary.csv", "bank/jscc-robust-r0.1.safetensors",
                        "bank/jscc-noiseless-r0.5.safetensors", "vit-ae/jscc-robust-r0.01.safetensors"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  }
  const std::string readme = read_file(dir + "/README.md");
  EXPECT_NE(readme.find("| proposal (robust) |"), std::string::npos) << readme;
  EXPECT_NE(readme.find("| vit-ae (noiseless) |"), std::string::npos) << readme;
  EXPECT_NE(readme.find("| jpeg |"), std::string::npos) << readme;
  EXPECT_NE(out.find("Report: " + dir + "/README.md"), std::string::npos) << out;
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/accuracy_vs_zeta_20dB.png"));
  }

  ASSERT_EQ(test::run_cli("--log-level warn demo --quick -o " + dir, &out), 0) << out;
  size_t reused = 0;
  for (size_t p = out.find("reused"); p != std::string::npos; p = out.find("reused", p + 1)) ++reused;
  EXPECT_EQ(reused, 8u) << out;
}

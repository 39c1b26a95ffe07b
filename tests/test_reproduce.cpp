// `tokcom reproduce`: killed with SIGKILL in the middle of the JSCC bank (the whole process group,
// children included) and rerun, it ends with the same models as an uninterrupted run with the same
// seed (a finished stage is reused, a training stage resumes from its last checkpoint); a stage
// whose input stage ran again is not reused.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <torch/torch.h>

#include "common/helpers.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/split/proposal.h"

using namespace tokcom;
namespace fs = std::filesystem;

namespace {

std::string reproduce_args(const std::string& out) {
  return "--threads 1 --seed 3 --log-level warn reproduce -c fmnist --quick --stages backbone,adaptive,bank -o " + out;
}

}  // namespace

TEST(Reproduce, KilledMidStageThenRerunEqualsUninterrupted) {
  const std::string dir = test::temp_dir("reproduce");
  std::string output;
  ASSERT_EQ(test::run_cli(reproduce_args(dir + "/straight"), &output), 0) << output;

  const char* cli = std::getenv("TOKCOM_CLI");
  const std::string command = std::string("exec ") + (cli ? cli : "./tokcom") + " " + reproduce_args(dir + "/killed") +
                              " > " + dir + "/killed.log 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its own group: the kill below reaches the stage it is running too
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  // Into the bank stage (14 models in sequence), then a little further, then SIGKILL.
  for (int i = 0; i < 1200 && !fs::exists(dir + "/killed/adaptive/.done"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(dir + "/killed/adaptive/.done"));
  std::this_thread::sleep_for(std::chrono::seconds(4));
  kill(-pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_FALSE(fs::exists(dir + "/killed/bank/.done")) << "the bank finished before the kill: nothing was tested";

  ASSERT_EQ(test::run_cli(reproduce_args(dir + "/killed"), &output), 0) << output;
  EXPECT_NE(output.find("backbone: reused"), std::string::npos) << output;
  for (const std::string regime : {"robust", "noiseless"}) {
    for (double r : {0.001, 0.01, 0.05, 0.1, 0.15, 0.25, 0.5}) {
      const auto a = read_safetensors(jscc_file(dir + "/straight/bank", regime, r)).tensors;
      const auto b = read_safetensors(jscc_file(dir + "/killed/bank", regime, r)).tensors;
      ASSERT_EQ(a.size(), b.size());
      for (const auto& [name, value] : a) {
        EXPECT_TRUE(torch::allclose(value, b.at(name), 1e-4, 1e-5)) << regime << " r=" << r << " " << name;
      }
    }
  }

  // A stage whose input stage ran again runs again, though its own command did not change (a merge
  // after its shards, a controller after its proxy table); otherwise it is reused.
  const std::string two = "--threads 1 --seed 3 --log-level warn reproduce -c fmnist --quick --stages backbone,adaptive -o " +
                          dir + "/straight";
  fs::remove(dir + "/straight/backbone/.done");
  ASSERT_EQ(test::run_cli(two, &output), 0) << output;
  EXPECT_EQ(output.find("backbone: reused"), std::string::npos) << output;
  EXPECT_NE(output.find("adaptive: an input stage ran again"), std::string::npos) << output;
  ASSERT_EQ(test::run_cli(two, &output), 0) << output;
  EXPECT_NE(output.find("backbone: reused"), std::string::npos) << output;
  EXPECT_NE(output.find("adaptive: reused"), std::string::npos) << output;
}

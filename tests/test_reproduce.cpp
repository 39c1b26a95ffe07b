// `tokcom reproduce`: the preset's plan is the documented study; killed with SIGKILL between the two
// epochs of a JSCC pair (the whole process group, children included) and rerun, it reuses the
// finished pairs, resumes the killed one and ends with the same models as an uninterrupted run with
// the same seed; a stage whose input stage ran again is not reused.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/config.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/report/report.h"
#include "tokcom/split/proposal.h"

using namespace tokcom;
namespace fs = std::filesystem;

namespace {

// A smoke study whose 14 JSCC pairs train 2 epochs of 6 batches each: long enough that the test
// sees a pair between its epochs and kills it there.
std::string reproduce_args(const std::string& out, const std::string& level = "warn") {
  return "--threads 1 --seed 3 --log-level " + level +
         " reproduce -c fmnist --quick --jscc-epochs 2 --jscc-batches 6 --stages backbone,adaptive,bank -o " + out;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
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
  // Killed when the test sees a JSCC pair between its two epochs (its checkpoint written, its model
  // not yet), after at least two pairs have finished: no sleep decides where the kill lands.
  const std::string bank = dir + "/killed/bank";
  auto finished_pairs = [&] {
    std::set<std::string> done;
    if (fs::exists(bank))
      for (const auto& e : fs::directory_iterator(bank)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("jscc-", 0) == 0 && e.path().extension() == ".safetensors") done.insert(name);
      }
    return done;
  };
  std::string mid_pair;  // "robust-r0.05": the pair killed between its epochs
  // Watched until seen or until the run ends by itself (then the assertion below reports it): how fast
  // the run gets there depends on the machine's load, so no time bound but a generous cap.
  bool exited = false;
  int early_status = 0;
  for (int i = 0; i < 90000 && mid_pair.empty() && !exited; ++i) {
    exited = waitpid(pid, &early_status, WNOHANG) == pid;
    const std::set<std::string> done = finished_pairs();
    if (done.size() >= 2) {
      for (const auto& e : fs::directory_iterator(bank)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("checkpoint-", 0) != 0 || !fs::exists(e.path() / "state.json")) continue;
        const std::string tag = name.substr(11);
        if (!done.count("jscc-" + tag + ".safetensors")) mid_pair = tag;
      }
    }
    if (mid_pair.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(-pid, SIGKILL);
  int status = early_status;
  if (!exited) waitpid(pid, &status, 0);
  ASSERT_FALSE(mid_pair.empty()) << "never saw a pair between its epochs:\n" << read_file(dir + "/killed.log");
  const std::set<std::string> done_at_kill = finished_pairs();
  ASSERT_FALSE(done_at_kill.count("jscc-" + mid_pair + ".safetensors"))
      << mid_pair << " finished before the kill landed: nothing was tested";
  ASSERT_FALSE(fs::exists(bank + "/.done"));

  // The rerun reuses the finished pairs, resumes the killed one after its first epoch, and trains
  // the others: 14 pairs in all, each accounted for once.
  ASSERT_EQ(test::run_cli(reproduce_args(dir + "/killed", "info"), &output), 0) << output;
  EXPECT_NE(output.find("backbone: reused"), std::string::npos) << output;
  EXPECT_EQ(count_of(output, "is up to date (same config), skipped"), done_at_kill.size()) << output;
  EXPECT_EQ(count_of(output, "resumed from "), 1u) << output;
  EXPECT_NE(output.find("checkpoint-" + mid_pair + " after epoch 1"), std::string::npos) << output;
  EXPECT_EQ(count_of(output, ": wrote " + bank + "/jscc-"), 14 - done_at_kill.size()) << output;
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

namespace {

// `reproduce --plan` output → stage name → the full command its .command would hold, with the
// thread count left out (it is not part of what a stage computes, and the documented study ran its
// single-threaded evals with --threads 1 beside other stages).
std::map<std::string, std::string> plan_commands(const std::string& output) {
  std::map<std::string, std::string> plan;
  std::istringstream in(output);
  std::string line, name;
  const std::regex stage(R"(^\[reproduce \d+/\d+\] (\S+): would)"), threads(R"( --threads \d+)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, stage)) name = m[1];
    else if (line.rfind("  $ ", 0) == 0 && !name.empty()) plan[name] = std::regex_replace(line.substr(4), threads, "");
  }
  return plan;
}

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

// docs/RESULTS.md is the study of `tokcom reproduce -c imagenette64`: the preset's plan is, command for
// command, what made docs/results/imagenette64-study (every stage's .command is kept there; the sweep
// shards are merged into sweep/sweep.csv and not kept).
TEST(Reproduce, PresetPlanIsTheDocumentedStudy) {
  const std::string out = test::temp_dir("reproduce-plan") + "/never-made";
  std::string output;
  ASSERT_EQ(test::run_cli("--seed 0 --threads 0 --log-level info reproduce -c imagenette64 -o runs/study-imagenette64 --plan",
                          &output), 0) << output;
  const auto plan = plan_commands(output);
  const fs::path docs = fs::path(TOKCOM_SOURCE_DIR) / "docs/results/imagenette64-study";
  std::set<std::string> documented;
  for (const auto& e : fs::recursive_directory_iterator(docs)) {
    if (e.path().filename() != ".command") continue;
    const std::string name = fs::relative(e.path().parent_path(), docs).string();
    documented.insert(name);
    std::ifstream in(e.path());
    const std::string recorded((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_TRUE(plan.count(name)) << "documented stage '" << name << "' is not in the preset's plan:\n" << output;
    EXPECT_EQ(plan.at(name), std::regex_replace(trim_newline(recorded), std::regex(R"( --threads \d+)"), ""))
        << "stage " << name;
  }
  EXPECT_GE(documented.size(), 23u);
  int shards = 0;
  for (const auto& [name, command] : plan) {
    if (name.rfind("sweep/part-", 0) == 0) {
      ++shards;
      EXPECT_NE(command.find("--max-batches 1 --shard"), std::string::npos) << command;
    } else {
      EXPECT_TRUE(documented.count(name)) << "planned stage '" << name << "' is not in the documented study";
    }
  }
  EXPECT_EQ(shards, 4);

  // A flag wins over the preset's `reproduce` section; --plan creates nothing.
  ASSERT_EQ(test::run_cli("--seed 0 --log-level info reproduce -c imagenette64 --backbone-epochs 5 --sweep-shards 2 --plan -o " +
                              out, &output), 0) << output;
  EXPECT_NE(plan_commands(output).at("backbone").find("train.stage=backbone train.out=" + out + "/backbone train.epochs=5"),
            std::string::npos) << output;
  EXPECT_TRUE(plan_commands(output).count("sweep/part-1-of-2")) << output;
  EXPECT_FALSE(fs::exists(out));

  // The long preset is the full scale of configs/defaults/reproduce.yaml, with the same model and training.
  ASSERT_EQ(test::run_cli("--seed 0 --log-level info reproduce -c imagenette64-long --plan -o " + out, &output), 0) << output;
  const auto full = plan_commands(output);
  EXPECT_EQ(full.at("backbone").find("train.epochs="), std::string::npos) << full.at("backbone");
  EXPECT_NE(full.at("bank").find("train.epochs=3 train.max_batches=0 train.jscc_warm_start_steps=500"), std::string::npos)
      << full.at("bank");
  EXPECT_TRUE(full.count("sweep/part-7-of-8")) << output;
  for (const std::string size : {"64", "128"}) {
    const Config compact = Config::load("imagenette" + size), long_ = Config::load("imagenette" + size + "-long");
    for (const std::string section : {"data", "model", "train", "comm"}) {
      EXPECT_EQ(YAML::Dump(compact.node(section)), YAML::Dump(long_.node(section))) << size << " " << section;
    }
    EXPECT_NE(YAML::Dump(compact.node("reproduce")), YAML::Dump(long_.node("reproduce"))) << size;
    for (const std::string key : {"adaptive_distill_kl", "adaptive_distill_tokens", "adaptive_lr"})
      EXPECT_EQ(compact.get_string("reproduce." + key), long_.get_string("reproduce." + key)) << size << " " << key;
  }
  // The 128-px long preset plans the full grids: eight sweep shards over the whole validation split.
  ASSERT_EQ(test::run_cli("--seed 0 --log-level info reproduce -c imagenette128-long --plan -o " + out, &output), 0)
      << output;
  EXPECT_TRUE(plan_commands(output).count("sweep/part-7-of-8")) << output;
  // At 128 px the bank's device half is the calibrated model with the budget cap (issue: the budget exact
  // through the pipeline), planned after its calibration; the 64-px study's stays the adaptive model.
  const auto p128 = plan_commands(output);
  EXPECT_NE(p128.at("bank").find("-c " + out + "/calibrated/config.yaml train.init=" + out +
                                 "/calibrated/model.safetensors train.out=" + out + "/bank model.budget_cap=true "
                                 "train.lr=1.0e-3"),
            std::string::npos) << p128.at("bank");
  EXPECT_LT(output.find("] calibrated:"), output.find("] bank:"));
  // The 128-px presets run the digital baselines in shards, each its own stage, then merge them where
  // the 64-px study's single stage wrote (digital/digital.csv).
  EXPECT_FALSE(p128.count("digital")) << output;
  EXPECT_NE(p128.at("digital/part-15-of-16").find("--shard 15/16 -o " + out + "/digital/part-15-of-16/digital.csv"),
            std::string::npos) << p128.at("digital/part-15-of-16");
  EXPECT_NE(p128.at("digital/merged").find("/digital/part-15-of-16/digital.csv -o " + out + "/digital/digital.csv"),
            std::string::npos) << p128.at("digital/merged");
  EXPECT_EQ(full.at("digital").find("--shard"), std::string::npos) << full.at("digital");
  EXPECT_NE(full.at("bank").find("train.init=" + out + "/adaptive/model.safetensors"), std::string::npos);
  EXPECT_NE(test::run_cli("reproduce -c imagenette128 --device-model calibrated --plan -o " + out, &output), 0);
  EXPECT_NE(output.find("reproduce.device_model is 'calibrated', expected adaptive | calibrated-capped"),
            std::string::npos) << output;
  // The backbone's own augmentation reaches both of its phases and no other stage; a bad one is refused
  // before anything runs.
  ASSERT_EQ(test::run_cli("--log-level info reproduce -c imagenette128 --backbone-augment crop-flip --plan -o " + out,
                          &output), 0) << output;
  const auto augmented = plan_commands(output);
  for (const std::string stage : {"backbone-lowres", "backbone"})
    EXPECT_NE(augmented.at(stage).find(" data.augment=crop-flip"), std::string::npos) << augmented.at(stage);
  EXPECT_EQ(augmented.at("adaptive").find("data.augment="), std::string::npos) << augmented.at("adaptive");
  EXPECT_EQ(augmented.at("mobilenet").find("data.augment=crop-flip"), augmented.at("mobilenet").rfind("data.augment="));
  EXPECT_EQ(p128.at("backbone").find("data.augment="), std::string::npos) << "the preset leaves it to data.augment";
  EXPECT_NE(test::run_cli("reproduce -c imagenette128 --backbone-augment mixup --plan -o " + out, &output), 0);
  EXPECT_NE(output.find("reproduce.backbone_augment: unknown 'mixup', expected none, crop-flip or randaugment"),
            std::string::npos) << output;
}

// The teacher stage (issue: stronger models): a convnet trained first, the ViT backbone distilling
// from it, the adaptive stage distilling from its backbone with its own weights; no teacher asked,
// no teacher stage (the test above pins that plan).
TEST(Reproduce, TeacherStageFeedsTheBackboneAndTheAdaptiveStageDistilsItsOwnWay) {
  const std::string out = test::temp_dir("reproduce-teacher") + "/never-made";
  std::string output;
  ASSERT_EQ(test::run_cli("--seed 0 --log-level info reproduce -c imagenette64 --teacher-epochs 4 --teacher-model "
                          "mobilenet-v3-small --adaptive-distill-kl 0.5 --plan -o " + out, &output), 0) << output;
  const auto plan = plan_commands(output);
  ASSERT_TRUE(plan.count("teacher")) << output;
  EXPECT_LT(output.find("] teacher:"), output.find("] backbone:"));
  EXPECT_NE(plan.at("teacher").find("train.model=mobilenet mobilenet.variant=small"), std::string::npos) << plan.at("teacher");
  EXPECT_NE(plan.at("teacher").find("train.epochs=4"), std::string::npos) << plan.at("teacher");
  EXPECT_NE(plan.at("backbone").find("train.teacher=" + out + "/teacher/model.safetensors train.teacher_model=mobilenet-v3-small"),
            std::string::npos) << plan.at("backbone");
  EXPECT_NE(plan.at("adaptive").find("train.teacher= train.teacher_model=same train.distill_hard=0 train.distill_kl=0.5 "
                                     "train.distill_tokens=0"),
            std::string::npos) << plan.at("adaptive");
  // The study's own MobileNetV3 baseline as the teacher: no stage of its own, planned before the backbone
  // that reads it, the hard-label weight given by the scale knob.
  ASSERT_EQ(test::run_cli("--seed 0 --log-level info reproduce -c imagenette64 --teacher-model baseline "
                          "--teacher-distill-hard 0.5 --methods proposal --plan -o " + out, &output), 0) << output;
  const auto baseline = plan_commands(output);
  EXPECT_FALSE(baseline.count("teacher")) << output;
  ASSERT_TRUE(baseline.count("mobilenet")) << "the teacher is planned even without a MobileNet method\n" << output;
  EXPECT_LT(output.find("] mobilenet:"), output.find("] backbone:"));
  EXPECT_NE(baseline.at("backbone").find("train.teacher=" + out + "/mobilenet/model.safetensors "
                                         "train.teacher_model=mobilenet-v3-small train.distill_hard=0.5"),
            std::string::npos) << baseline.at("backbone");
  EXPECT_EQ(baseline.at("mobilenet"), plan.at("mobilenet")) << "the baseline itself is unchanged";
  EXPECT_NE(test::run_cli("reproduce -c imagenette64 --teacher-distill-hard 0.5 --plan -o " + out, &output), 0);
  EXPECT_NE(output.find("teacher_distill_hard is set but the backbone has no teacher"), std::string::npos) << output;
  EXPECT_NE(test::run_cli("reproduce -c imagenette64 --teacher-epochs 4 --teacher-model resnet --plan -o " + out, &output), 0);
  EXPECT_NE(output.find("'resnet' is not one of mobilenet-v3-small, mobilenet-v3-large"), std::string::npos) << output;
  // Progressive resizing: a low-resolution phase of its own, planned before the backbone that starts
  // from it (and reads it); the teacher stays the backbone's.
  ASSERT_EQ(test::run_cli("--seed 0 --log-level info reproduce -c imagenette64 --teacher-model baseline "
                          "--backbone-lowres-epochs 7 --backbone-lowres-size 32 --methods proposal --plan -o " + out, &output),
            0) << output;
  const auto lowres = plan_commands(output);
  ASSERT_TRUE(lowres.count("backbone-lowres")) << output;
  EXPECT_LT(output.find("] backbone-lowres:"), output.find("] backbone:"));
  EXPECT_NE(lowres.at("backbone-lowres").find("train.stage=backbone data.image_size=32 model.image_size=32 train.out=" + out +
                                              "/backbone-lowres train.epochs=7"),
            std::string::npos) << lowres.at("backbone-lowres");
  EXPECT_EQ(lowres.at("backbone-lowres").find("train.teacher"), std::string::npos) << lowres.at("backbone-lowres");
  EXPECT_NE(lowres.at("backbone").find("train.teacher_model=mobilenet-v3-small train.init=" + out +
                                       "/backbone-lowres/model.safetensors train.warmup_epochs=1"),
            std::string::npos) << lowres.at("backbone");
  EXPECT_FALSE(baseline.count("backbone-lowres")) << "no phase unless asked";
  // The adaptive stage's own learning rate for the backbone weights: in its command only.
  ASSERT_EQ(test::run_cli("--seed 0 --log-level info reproduce -c imagenette64 --adaptive-lr 1e-4 --methods proposal --plan -o " +
                          out, &output), 0) << output;
  const auto adaptive_lr = plan_commands(output);
  EXPECT_NE(adaptive_lr.at("adaptive").find("train.warmup_epochs=1 train.lr=1e-4"), std::string::npos)
      << adaptive_lr.at("adaptive");
  EXPECT_EQ(adaptive_lr.at("backbone").find("train.lr="), std::string::npos) << adaptive_lr.at("backbone");
  EXPECT_EQ(baseline.at("adaptive").find("train.lr="), std::string::npos) << "the config's unless asked";
  // ... and not in the bank's, which reads the adaptive model's config: its links train at the preset's
  // rate, as ViT-AE's do (its config is the backbone's).
  EXPECT_NE(adaptive_lr.at("bank").find(" train.lr=1.0e-3"), std::string::npos) << adaptive_lr.at("bank");
  EXPECT_EQ(baseline.at("bank").find("train.lr="), std::string::npos) << baseline.at("bank");
  EXPECT_NE(test::run_cli("reproduce -c imagenette64 --adaptive-lr 1e-4x --plan -o " + out, &output), 0);
  EXPECT_NE(output.find("reproduce.adaptive_lr: expected a positive number"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(out));
}

// Stages side by side (--jobs 2): a stage that fails stops the pipeline with its name and exit code,
// and nothing that reads it starts.
TEST(Reproduce, ParallelStagesStopAtTheFirstFailure) {
  const std::string dir = test::temp_dir("reproduce-jobs");
  std::ofstream(dir + "/diverges.yaml") << "train:\n  lr: 1.0e+308\n";
  std::string output;
  EXPECT_NE(test::run_cli("--log-level warn reproduce -c " + dir + "/diverges.yaml --quick --jobs 2 -o " + dir + "/out",
                          &output),
            0);
  EXPECT_NE(output.find("stage 'backbone' failed"), std::string::npos) << output;
  EXPECT_NE(output.find("train.lr: 1e+308"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir + "/out/backbone/.done"));
  EXPECT_FALSE(fs::exists(dir + "/out/adaptive")) << output;
  EXPECT_FALSE(fs::exists(dir + "/out/bank")) << output;
  // The failed call is on the ledger too.
  const csv::Table calls = csv::read(dir + "/out/calls.csv", "calls.csv", report::calls_schema());
  ASSERT_EQ(calls.rows.size(), 1u);
  EXPECT_EQ(calls.text(0, "outcome"), "failed");
  EXPECT_EQ(calls.number(0, "jobs"), 2);
  EXPECT_EQ(calls.number(0, "ran"), 0);
  // A ledger damaged between calls is kept aside, never overwritten, and a new one starts.
  const std::string ledger = dir + "/out/calls.csv";
  const auto fail_again_with = [&](const std::string& damaged) {
    std::ofstream(ledger) << damaged;
    EXPECT_NE(test::run_cli("--log-level warn reproduce -c " + dir + "/diverges.yaml --quick --jobs 2 -o " + dir + "/out",
                            &output), 0);
    EXPECT_NE(output.find("a new one started"), std::string::npos) << output;
  };
  const auto text_of = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  fail_again_with("not a ledger\n");
  fail_again_with("started_utc,seconds\nbroken\n");
  EXPECT_EQ(text_of(ledger + ".unreadable"), "not a ledger\n");
  EXPECT_EQ(text_of(ledger + ".unreadable.2"), "started_utc,seconds\nbroken\n");
  EXPECT_EQ(csv::read(ledger, "calls.csv", report::calls_schema()).rows.size(), 1u);
}

// SIGTERM to the pipeline alone (not its group): it stops the running stage itself, banks the time
// that stage ran (.seconds-partial) and leaves a row in calls.csv; the rerun finishes the stage,
// counts the banked time in its .seconds, and adds its own row.
TEST(Reproduce, StoppedBySigtermBanksTheStageTimeAndLogsEveryCall) {
  const std::string dir = test::temp_dir("reproduce-sigterm");
  const char* cli = std::getenv("TOKCOM_CLI");
  const std::string command = std::string("exec ") + (cli ? cli : "./tokcom") + " " + reproduce_args(dir + "/run") +
                              " > " + dir + "/stopped.log 2>&1";
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  // Stopped once the bank stage has a pair between its epochs (observed, not timed).
  const std::string bank = dir + "/run/bank";
  bool seen = false, exited = false;
  int status = 0;
  for (int i = 0; i < 90000 && !seen && !exited; ++i) {
    exited = waitpid(pid, &status, WNOHANG) == pid;
    if (fs::exists(bank)) {
      for (const auto& e : fs::directory_iterator(bank)) {
        seen = seen || (e.path().filename().string().rfind("checkpoint-", 0) == 0 && fs::exists(e.path() / "state.json"));
      }
    }
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(seen) << "the bank stage never got between two epochs:\n" << read_file(dir + "/stopped.log");
  kill(pid, SIGTERM);  // the pipeline only: it must stop its stage itself
  if (!exited) waitpid(pid, &status, 0);
  const std::string log = read_file(dir + "/stopped.log");
  ASSERT_TRUE(WIFEXITED(status)) << log;
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM) << log;
  EXPECT_NE(log.find("stopped by SIGTERM"), std::string::npos) << log;
  // No process of the run is left: the stage was stopped and waited for, not orphaned.
  errno = 0;
  EXPECT_EQ(kill(-pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_FALSE(fs::exists(bank + "/.done"));
  // Stopped, not waited out: the bank's 14 models were not all trained.
  size_t models = 0;
  for (const auto& e : fs::directory_iterator(bank)) {
    const std::string name = e.path().filename().string();
    models += name.rfind("jscc-", 0) == 0 && e.path().extension() == ".safetensors" ? 1 : 0;
  }
  EXPECT_LT(models, 14u) << log;
  ASSERT_TRUE(fs::exists(bank + "/.seconds-partial")) << log;
  const std::string partial = read_file(bank + "/.seconds-partial");
  const std::smatch m = [&] {
    std::smatch r;
    std::regex_match(partial, r, std::regex(R"(([0-9a-f]{16}) ([0-9.]+)\n)"));
    return r;
  }();
  ASSERT_EQ(m.size(), 3u) << partial;
  const double banked = std::stod(m[2]);
  EXPECT_GT(banked, 0.0);
  csv::Table calls = csv::read(dir + "/run/calls.csv", "calls.csv", report::calls_schema());
  ASSERT_EQ(calls.rows.size(), 1u);
  EXPECT_EQ(calls.text(0, "outcome"), "interrupted");
  EXPECT_EQ(calls.number(0, "ran"), 2);  // backbone, adaptive
  EXPECT_EQ(calls.number(0, "reused"), 0);
  EXPECT_GE(calls.number(0, "seconds"), banked);

  std::string output;
  ASSERT_EQ(test::run_cli(reproduce_args(dir + "/run", "info"), &output), 0) << output;
  EXPECT_NE(output.find("bank: done in"), std::string::npos) << output;
  EXPECT_NE(output.find("s of them in earlier, interrupted calls"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(bank + "/.seconds-partial"));
  EXPECT_GE(std::stod(read_file(bank + "/.seconds")), banked);
  calls = csv::read(dir + "/run/calls.csv", "calls.csv", report::calls_schema());
  ASSERT_EQ(calls.rows.size(), 2u);
  EXPECT_EQ(calls.text(0, "outcome"), "interrupted");
  EXPECT_EQ(calls.text(1, "outcome"), "finished");
  EXPECT_EQ(calls.number(1, "ran"), 1);  // bank
  EXPECT_EQ(calls.number(1, "reused"), 2);
}

TEST(Reproduce, RefusesABadScaleInTheConfig) {
  const std::string dir = test::temp_dir("reproduce-bad-scale");
  std::ofstream(dir + "/zero-shards.yaml") << "reproduce:\n  sweep_shards: 0\n";
  std::ofstream(dir + "/unknown.yaml") << "reproduce:\n  backbone_epoch: 3\n";
  std::string output;
  EXPECT_NE(test::run_cli("reproduce -c " + dir + "/zero-shards.yaml --plan -o " + dir + "/out", &output), 0);
  EXPECT_NE(output.find("reproduce.sweep_shards is 0, expected an int >= 1"), std::string::npos) << output;
  EXPECT_NE(test::run_cli("reproduce -c " + dir + "/unknown.yaml --plan -o " + dir + "/out", &output), 0);
  EXPECT_NE(output.find("unknown key 'reproduce.backbone_epoch'"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir + "/out"));
}

// The backbone's low-resolution phase is committed while the backbone that starts from it is not done
// (a new machine would otherwise have a finished phase without its model), and pruned once it is.
TEST(Reproduce, StudyKeepsTheLowResolutionPhaseUntilTheBackboneIsDone) {
  const char* cli = std::getenv("TOKCOM_CLI");
  if (!cli) GTEST_SKIP() << "TOKCOM_CLI not set";
  const std::string dir = test::temp_dir("study-lowres");
  const std::string script = std::string(TOKCOM_TEST_DATA) + "/../../scripts/imagenette128_study.sh";
  const std::string stages = "--threads 1 --seed 3 --log-level info reproduce -c fmnist --quick --backbone-lowres-epochs 1 "
                             "--backbone-lowres-size 14 -o " + dir + "/run";
  const std::string env = std::string("T=") + cli + " OUT=" + dir + "/committed RUN=" + dir + "/run ";
  const std::string save = env + "STEP=save bash " + script + " > " + dir + "/save.log 2>&1";
  std::string output;
  ASSERT_EQ(test::run_cli(stages + " --stages backbone-lowres", &output), 0) << output;
  ASSERT_EQ(std::system(save.c_str()), 0) << read_file(dir + "/save.log");
  const std::string lowres = dir + "/committed/weights/backbone-lowres.safetensors";
  ASSERT_TRUE(fs::exists(lowres));
  EXPECT_EQ(read_safetensors(lowres).tensors.at("pos_embed").size(1), 1 + 2 * 2) << "the 14-px grid";

  // A new machine: the backbone stage starts from the committed phase.
  fs::rename(dir + "/run", dir + "/first-machine");
  ASSERT_EQ(std::system((env + "STEP=restore bash " + script + " > " + dir + "/restore.log 2>&1").c_str()), 0)
      << read_file(dir + "/restore.log");
  ASSERT_EQ(test::run_cli(stages + " --stages backbone-lowres,backbone", &output), 0) << output;
  EXPECT_NE(output.find("backbone-lowres: reused"), std::string::npos) << output;
  ASSERT_EQ(std::system(save.c_str()), 0) << read_file(dir + "/save.log");
  EXPECT_FALSE(fs::exists(lowres)) << "superseded by the backbone";
  EXPECT_FALSE(fs::exists(dir + "/committed/weights/backbone-lowres.config.yaml"));
  EXPECT_TRUE(fs::exists(dir + "/committed/weights/backbone.safetensors"));
  ASSERT_EQ(std::system(save.c_str()), 0) << read_file(dir + "/save.log");
  EXPECT_FALSE(fs::exists(lowres)) << "not written again";
}

// A study saved by scripts/imagenette128_study.sh (CSVs, stage stamps, fp16 weights) and restored into
// an empty run folder at the same path, as on a new machine with a fresh checkout, continues: its
// finished stages are reused, not retrained, the stage that reads the restored fp16 model runs on it,
// and the committed weights run through `eval` with the config beside them. (The script's save and
// restore steps do not depend on the preset.)
TEST(Reproduce, StudySavedOnOneMachineContinuesOnAnother) {
  const char* cli = std::getenv("TOKCOM_CLI");
  if (!cli) GTEST_SKIP() << "TOKCOM_CLI not set";
  const std::string dir = test::temp_dir("study-restore");
  const std::string script = std::string(TOKCOM_TEST_DATA) + "/../../scripts/imagenette128_study.sh";
  const std::string stages = "--threads 1 --seed 3 --log-level info reproduce -c fmnist --quick -o " + dir + "/run";
  std::string output;
  ASSERT_EQ(test::run_cli(stages + " --stages backbone,adaptive,vit-ae", &output), 0) << output;
  // No bank kept whole: the ViT-AE bank's models are committed as deltas of the backbone.
  const std::string env = std::string("T=") + cli + " OUT=" + dir + "/committed RUN=" + dir + "/run SAVE_BANKS=none ";
  ASSERT_EQ(std::system((env + "STEP=save bash " + script + " > " + dir + "/save.log 2>&1").c_str()), 0)
      << read_file(dir + "/save.log");
  const Safetensors backbone = read_safetensors(dir + "/committed/weights/backbone.safetensors");
  EXPECT_EQ(backbone.tensors.at("blocks.0.attn.qkv.weight").scalar_type(), torch::kHalf);
  EXPECT_TRUE(fs::exists(dir + "/committed/weights/adaptive.config.yaml"));
  EXPECT_FALSE(fs::exists(dir + "/committed/backbone/model.safetensors")) << "weights live in weights/ only";

  std::vector<std::string> models;
  for (const auto& e : fs::directory_iterator(dir + "/run/vit-ae")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("jscc-", 0) == 0 && e.path().extension() == ".safetensors") models.push_back(name);
  }
  ASSERT_FALSE(models.empty());
  for (const auto& name : models) {
    const std::string delta = dir + "/committed/vit-ae/" + name.substr(0, name.size() - 12) + ".delta.safetensors";
    ASSERT_TRUE(fs::exists(delta)) << delta;
    EXPECT_FALSE(fs::exists(dir + "/committed/vit-ae/" + name)) << "kept as a delta only";
    EXPECT_EQ(read_safetensors(delta).tensors.count("patch_embed.proj.weight"), 0u) << "the frozen device half is left out";
  }
  EXPECT_TRUE(fs::exists(dir + "/committed/vit-ae/.weights-whole"));

  fs::rename(dir + "/run", dir + "/first-machine");  // the new machine has only the committed folder
  ASSERT_EQ(std::system((env + "STEP=restore bash " + script + " > " + dir + "/restore.log 2>&1").c_str()), 0)
      << read_file(dir + "/restore.log");
  for (const auto& name : models) {
    // Filled back: every tensor of the first machine's model, at fp16.
    const Safetensors first = read_safetensors(dir + "/first-machine/vit-ae/" + name),
                      restored = read_safetensors(dir + "/run/vit-ae/" + name);
    ASSERT_EQ(restored.tensors.size(), first.tensors.size()) << name;
    for (const auto& [tensor, value] : first.tensors)
      EXPECT_TRUE(torch::equal(restored.tensors.at(tensor), value.is_floating_point() ? value.to(torch::kHalf) : value))
          << name << " " << tensor;
  }
  ASSERT_EQ(test::run_cli(stages + " --stages backbone,adaptive,calibrated,vit-ae", &output), 0) << output;
  EXPECT_NE(output.find("backbone: reused"), std::string::npos) << output;
  EXPECT_NE(output.find("adaptive: reused"), std::string::npos) << output;
  EXPECT_NE(output.find("vit-ae: reused"), std::string::npos) << output;
  EXPECT_EQ(output.find("epoch 1"), std::string::npos) << "nothing trains again:\n" << output;
  EXPECT_TRUE(fs::exists(dir + "/run/calibrated/.done")) << output;
  // The calibrated model is the restored (fp16) adaptive file, byte for byte.
  EXPECT_EQ(read_file(dir + "/run/calibrated/model.safetensors"), read_file(dir + "/run/adaptive/model.safetensors"));
  EXPECT_EQ(read_safetensors(dir + "/run/calibrated/model.safetensors").tensors.at("cls_token").scalar_type(),
            torch::kHalf);

  ASSERT_EQ(test::run_cli("--log-level warn eval --checkpoint " + dir + "/committed/weights/backbone.safetensors "
                              "--max-batches 1 -o " + dir + "/eval.csv",
                          &output),
            0)
      << output;
  EXPECT_NE(read_file(dir + "/eval.csv").find("accuracy"), std::string::npos);

  // A run in progress has replaced the committed backbone: the ViT-AE deltas made from the old one are
  // left out of a restore (their bank trains them again), and the restore goes on.
  fs::copy_file(dir + "/committed/weights/adaptive.safetensors", dir + "/committed/weights/backbone.safetensors",
                fs::copy_options::overwrite_existing);
  fs::remove_all(dir + "/run");
  ASSERT_EQ(std::system((env + "STEP=restore bash " + script + " > " + dir + "/restore2.log 2>&1").c_str()), 0)
      << read_file(dir + "/restore2.log");
  const std::string log = read_file(dir + "/restore2.log");
  EXPECT_NE(log.find("not restored (") , std::string::npos) << log;
  EXPECT_NE(log.find("is a delta of another base"), std::string::npos) << log;
  for (const auto& name : models) EXPECT_FALSE(fs::exists(dir + "/run/vit-ae/" + name)) << name;
  EXPECT_TRUE(fs::exists(dir + "/run/backbone/.done")) << "the rest is restored";
}

// Core: config schema/overrides, atomic writes, shape checks, progress formatting, the BLAS kernel, the
// build's git hash.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/blas_kernel.h"
#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/csv.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"
#include "tokcom/core/stats.h"
#include "tokcom/core/text.h"

using namespace tokcom;
using tokcom::test::error_of;

TEST(Config, DefaultsLoadAndOverridesApply) {
  Config c = Config::load("", {"data.image_size=32", "data.skip_bad=true", "data.dataset=imagenette"});
  EXPECT_EQ(c.get_int("data.image_size"), 32);
  EXPECT_TRUE(c.get_bool("data.skip_bad"));
  EXPECT_EQ(c.get_string("data.dataset"), "imagenette");
  EXPECT_EQ(c.get_int("data.workers"), 2);  // untouched default
}

TEST(Config, UnknownKeyNamesKeyAndOrigin) {
  const std::string msg = error_of([] { Config::load("", {"data.imagesize=32"}); });
  EXPECT_NE(msg.find("ConfigError"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data.imagesize"), std::string::npos) << msg;
  EXPECT_NE(msg.find("image_size"), std::string::npos) << msg;  // lists the known keys
}

TEST(Config, WrongTypeRejected) {
  const std::string msg = error_of([] { Config::load("", {"data.image_size=big"}); });
  EXPECT_NE(msg.find("expects an int"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { Config::load("", {"data.skip_bad=3"}); }).find("expects a bool"), std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"data=3"}); }).find("section"), std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"noequals"}); }).find("key.sub=value"), std::string::npos);
}

// Found by fuzz/fuzz_config.cpp: a non-scalar key escaped as YAML::BadConversion (not a ConfigError).
TEST(Config, ComplexKeysAreAConfigError) {
  const std::string msg = error_of([] { Config::from_yaml("data:\n  ? [a, b]\n  : 1\n"); });
  EXPECT_NE(msg.find("ConfigError: <string>: a key under 'data' is a list, expected a plain name"), std::string::npos)
      << msg;
  EXPECT_NE(error_of([] { Config::from_yaml("? {x: 1}\n: 2\n"); }).find("ConfigError"), std::string::npos);
}

TEST(Config, FileErrorsNameTheFile) {
  const std::string dir = test::temp_dir("cfg");
  const std::string bad = dir + "/bad.yaml";
  std::ofstream(bad) << "data:\n  image_size: [1, 2\n";
  const std::string msg = error_of([&] { Config::load(bad); });
  EXPECT_NE(msg.find("bad.yaml"), std::string::npos) << msg;
  const std::string unknown = dir + "/unknown.yaml";
  std::ofstream(unknown) << "data:\n  colour: red\n";
  const std::string msg2 = error_of([&] { Config::load(unknown); });
  EXPECT_NE(msg2.find("unknown.yaml"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("data.colour"), std::string::npos) << msg2;
  EXPECT_NE(error_of([] { Config::load("no-such-config"); }).find("no config named"), std::string::npos);
}

TEST(Config, SaveRoundTripsAndDigestTracksContent) {
  Config a = Config::load("", {"data.image_size=40"});
  const std::string dir = test::temp_dir("cfg");
  a.save(dir + "/config.yaml");
  Config b = Config::load(dir + "/config.yaml");
  EXPECT_EQ(b.get_int("data.image_size"), 40);
  EXPECT_EQ(a.digest(), b.digest());
  Config c = Config::load("", {"data.image_size=41"});
  EXPECT_NE(a.digest(), c.digest());
}

TEST(AtomicFile, FailedWriteLeavesOldFileIntact) {
  const std::string dir = test::temp_dir("atomic");
  const std::string path = dir + "/out.csv";
  write_file_atomic(path, "old contents\n");
  EXPECT_THROW(write_stream_atomic(path, [](std::ostream& out) {
                 out << "half a new file";
                 throw DataError("simulated failure mid-write");
               }),
               DataError);
  EXPECT_EQ(read_file(path), "old contents\n");
  // No temp file left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  write_file_atomic(path, "new\n");
  EXPECT_EQ(read_file(path), "new\n");
}

TEST(AtomicFile, UnwritableFolderIsAClearError) {
  EXPECT_THROW(write_file_atomic("/proc/definitely/not/here.txt", "x"), UsageError);
  EXPECT_THROW(read_file("/no/such/file"), DataError);
}

TEST(Check, ShapeMessageSaysExpectedAndActual) {
  const auto t = torch::zeros({4, 62, 19});
  EXPECT_NO_THROW(check_shape("JsccDecoder::forward", "y", t, {-1, -1, 19}));
  const std::string msg = error_of([&] { check_shape("JsccDecoder::forward", "y", t, {-1, -1, 28}); });
  EXPECT_NE(msg.find("JsccDecoder::forward: y has shape [4, 62, 19], expected [*, *, 28]"), std::string::npos) << msg;
  EXPECT_THROW(check_shape("f", "y", t, {4, 62}), ShapeError);
  EXPECT_THROW(check_dtype("f", "y", t, torch::kInt64), ShapeError);
}

TEST(Progress, DurationFormat) {
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}

// ---- The BLAS kernel (core/blas_kernel.h) ----

namespace {

CpuFeatures intel_cpu(bool avx512, bool bf16 = false) {
  CpuFeatures cpu;
  cpu.vendor = "GenuineIntel";
  cpu.family = 6;
  cpu.model = 207;
  cpu.avx = cpu.avx2 = cpu.fma = cpu.os_avx = true;
  cpu.avx512f = cpu.avx512cd = cpu.avx512bw = cpu.avx512dq = cpu.avx512vl = cpu.os_avx512 = avx512;
  cpu.avx512_bf16 = bf16;
  return cpu;
}

// Sets an environment variable for one scope (the CLI child inherits it).
struct ScopedEnv {
  ScopedEnv(const char* name, const char* value) : name(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name); }
  const char* name;
};

}  // namespace

// Every mistake on the command line has UsageError's exit code, whoever finds it: CLI11 (unknown
// flag, value outside its set, missing required option) or the verb (a list item not a number).
TEST(Cli, CommandLineMistakesHaveOneExitCode) {
  std::string out;
  EXPECT_EQ(test::run_cli("--help", &out), 0) << out;
  EXPECT_EQ(test::run_cli("eval --no-such-flag", &out), 6) << out;
  EXPECT_EQ(test::run_cli("sweep --mode medium -o x.csv", &out), 6) << out;
  EXPECT_NE(out.find("medium"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli("report", &out), 6) << out;  // DIR is required
  EXPECT_EQ(test::run_cli("optimize --zeta-max 0.1,x -o " + test::temp_dir("cli") + " --table nope.csv", &out), 6) << out;
  EXPECT_NE(out.find("--zeta-max: 'x' is not a number"), std::string::npos) << out;
  // Numbers no run can mean are refused before any work (a 10^12-slot simulation would allocate
  // terabytes; a negative image count or index is a typo).
  const std::string dir = test::temp_dir("cli-ranges");
  write_file_atomic(dir + "/w.safetensors", "");
  for (const std::string& args : {"optimize --synthetic --T 1000000000000 -o " + dir,
                                 "visualize --checkpoint " + dir + "/w.safetensors --count -3 -o " + dir + "/v.png",
                                 "visualize --checkpoint " + dir + "/w.safetensors --first -1 -o " + dir + "/v.png",
                                 "eval --checkpoint " + dir + "/w.safetensors --batch-size 0",
                                 "calibrate --checkpoint " + dir + "/w.safetensors --images -5 -o " + dir + "/c"}) {
    EXPECT_EQ(test::run_cli(args, &out), 6) << args << "\n" << out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/c")) << "calibrate wrote before refusing";
  EXPECT_EQ(test::run_cli("reproduce --plan --alphas 0.5,2 -o " + dir + "/r", &out), 6) << out;
  EXPECT_NE(out.find("--alphas: 2 is outside (0, 1]"), std::string::npos) << out;
  // calibrate -o into a training run's folder would overwrite its model and config.
  std::filesystem::create_directories(dir + "/run");
  write_file_atomic(dir + "/run/model.safetensors", "weights of a training run");
  EXPECT_EQ(test::run_cli("calibrate --checkpoint " + dir + "/w.safetensors -o " + dir + "/run", &out), 6) << out;
  EXPECT_NE(out.find("choose a new folder or pass --force"), std::string::npos) << out;
  EXPECT_EQ(read_file(dir + "/run/model.safetensors"), "weights of a training run");
  // train -o into another stage's folder (its config.yaml says adaptive) would overwrite it too; a
  // config no model can be made of leaves the folder's own config as it was.
  Config::load("fmnist", {"train.stage=adaptive"}).save(dir + "/run/config.yaml");
  const std::string adaptive_config = read_file(dir + "/run/config.yaml");
  EXPECT_EQ(test::run_cli("train -c fmnist train.stage=backbone -o " + dir + "/run", &out), 6) << out;
  EXPECT_NE(out.find("holds the output of train.stage=adaptive train.model=vit, not of this run (train.stage=backbone "
                     "train.model=vit)"), std::string::npos) << out;
  EXPECT_NE(test::run_cli("train -c fmnist train.stage=adaptive model.patch_size=5 train.epochs=1 -o " + dir + "/run", &out),
            0) << out;
  EXPECT_EQ(read_file(dir + "/run/config.yaml"), adaptive_config);
  EXPECT_EQ(read_file(dir + "/run/model.safetensors"), "weights of a training run");
  // A folder where a file is expected, a device LibTorch has no name for, a run that could never end:
  // each named before any work.
  EXPECT_EQ(test::run_cli("weights info " + dir, &out), 3) << out;
  EXPECT_NE(out.find("'" + dir + "' is a folder, expected a file"), std::string::npos) << out;
  EXPECT_NE(test::run_cli("train -c " + dir + " -o " + dir + "/t", &out), 0) << out;
  EXPECT_NE(out.find("config file '" + dir + "' is a folder, expected a YAML file"), std::string::npos) << out;
  EXPECT_NE(test::run_cli("optimize --table " + dir + " -o " + dir + "/o", &out), 0) << out;
  EXPECT_NE(out.find("'" + dir + "' is a folder, expected a file"), std::string::npos) << out;
  EXPECT_NE(test::run_cli("train -c fmnist train.device=tpu -o " + dir + "/t", &out), 0) << out;
  EXPECT_NE(out.find("train.device is 'tpu', expected cpu, cuda or cuda:N"), std::string::npos) << out;
  EXPECT_NE(test::run_cli("train -c fmnist train.epochs=99999999999 -o " + dir + "/t", &out), 0) << out;
  EXPECT_NE(out.find("train.epochs: 99999999999, expected an integer in [1, 100000]"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/t"));
  // Durations must be finite numbers ≥ 0 (NaN passed CLI11's own non-negative check).
  for (const std::string& args : {"serve --checkpoint-dir " + dir + " --max-wait-ms nan",
                                  "serve --checkpoint-dir " + dir + " --drain-timeout inf",
                                  "device --server 127.0.0.1:1 --bank " + dir + " --table t.csv --scenario fixed:10 "
                                      "--zeta-max 0.1 -o " + dir + "/d --connect-timeout nan"}) {
    EXPECT_EQ(test::run_cli(args, &out), 6) << args << "\n" << out;
    EXPECT_NE(out.find("is not a finite number >= 0"), std::string::npos) << args << "\n" << out;
  }
}

// Every numeric option of every verb refuses what no run can mean (NaN, an infinity, a value that
// overflows, a word) before any work, with exit 6 and the option named. Walks the CLI's own help,
// so a new option is covered the day it is added. Each run has a time limit: a verb that took the
// value would start working, and the test says which.
TEST(Cli, EveryNumericOptionOfEveryVerbRefusesBadValues) {
  const char* cli_env = std::getenv("TOKCOM_CLI");
  const std::string cli = cli_env ? cli_env : "./tokcom";
  const std::string dir = test::temp_dir("cli-walk");
  auto run = [&](const std::string& args, std::string* out) {
    return test::run_shell("cd " + dir + " && timeout -s KILL 60 " + cli + " " + args, out);
  };
  // The verbs: `tokcom --help` lists them; a group (data, weights) lists its own.
  auto verbs_of = [&](const std::string& prefix) {
    std::string help;
    run(prefix + " --help", &help);
    std::vector<std::string> verbs;
    const size_t start = help.find("Subcommands:");
    if (start == std::string::npos) return verbs;
    std::istringstream lines(help.substr(start));
    const std::regex verb(R"(^  ([a-z]+)\s)");
    std::smatch m;
    for (std::string line; std::getline(lines, line);)
      if (std::regex_search(line, m, verb)) verbs.push_back(prefix.empty() ? m[1].str() : prefix + " " + m[1].str());
    return verbs;
  };
  std::vector<std::string> verbs;
  for (const std::string& v : verbs_of("")) {
    const std::vector<std::string> inner = verbs_of(v);
    verbs.insert(verbs.end(), inner.begin(), inner.end());
    if (inner.empty()) verbs.push_back(v);
  }
  ASSERT_GE(verbs.size(), 18u);
  const std::regex numeric(R"(^\s+(?:-[a-zA-Z],)?(--[A-Za-z0-9-]+)(?:,--[A-Za-z0-9-]+)? (?:INT|UINT|FLOAT)\b)");
  struct Case {
    std::string args, option;
    std::string out = {};  // filled when the case runs
    int rc = 0;
  };
  std::vector<Case> cases;
  for (const std::string& verb : verbs) {
    std::string help;
    run(verb + " --help", &help);
    std::istringstream lines(help);
    std::smatch m;
    for (std::string line; std::getline(lines, line);) {
      if (!std::regex_search(line, m, numeric)) continue;
      // NaN and an overflow (+inf) get past CLI11's own number types and comparisons; a word does not
      // (one verb shows that).
      for (const std::string value : {"nan", "1e400"}) cases.push_back({verb + " " + m[1].str() + "=" + value, m[1]});
      // A negative value, refused by every option but an SNR's (its validator is a bare FINITE): a
      // count, size, duration or weight below 0 is a typo.
      const bool any_sign = line.find(":FINITE=") != std::string::npos || line.find(":FINITE ") != std::string::npos ||
                            (line.size() >= 7 && line.compare(line.size() - 7, 7, ":FINITE") == 0);
      if (!any_sign) cases.push_back({verb + " " + m[1].str() + "=-1", m[1]});
    }
  }
  cases.push_back({"train --world-size=twelve", "--world-size"});
  // Each run is mostly LibTorch loading: four at a time.
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < cases.size(); i = next++) cases[i].rc = run(cases[i].args, &cases[i].out);
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  const size_t checked = cases.size();
  std::vector<std::string> accepted;
  for (const Case& c : cases)
    if (c.rc != 6 || c.out.find(c.option) == std::string::npos)
      accepted.push_back(c.args + " (exit " + std::to_string(c.rc) + "): " +
                         c.out.substr(c.out.size() > 200 ? c.out.size() - 200 : 0));
  EXPECT_GE(checked, 80u);  // the walk found the options
  for (const std::string& a : accepted) ADD_FAILURE() << "not refused: " << a;
}

// ---------------------------------------------------------------- csv

TEST(Csv, WrittenRowsReadBackExactlyWithRfc4180Quoting) {
  const csv::Schema schema = csv::schema("a test CSV", "name,x,y,note", {"name", "note"}, {"y"});
  csv::Writer w(schema);
  const std::vector<std::string> names = {"plain", "rician:K=4,csi=zf", "say \"hi\"", "two\nlines", " padded "};
  const std::vector<double> xs = {0.1, 1.0 / 3.0, 1e-300, -2.5e17, 7};
  for (size_t i = 0; i < names.size(); ++i) {
    w.text(names[i]).number(xs[i]);
    if (i % 2) w.empty();
    else w.number(std::nan(""));  // not measured: an empty optional field
    w.text(i == 3 ? "" : "n" + std::to_string(i)).end_row();
  }
  EXPECT_EQ(w.str().substr(0, w.str().find('\n')), "name,x,y,note");
  EXPECT_NE(w.str().find("\"rician:K=4,csi=zf\",0.3333333333333333,,n1"), std::string::npos) << w.str();
  EXPECT_NE(w.str().find("\"say \"\"hi\"\"\""), std::string::npos) << w.str();
  const csv::Table t = csv::parse(w.str(), "t.csv", schema);
  ASSERT_EQ(t.rows.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(t.text(i, "name"), names[i]);
    EXPECT_EQ(t.number(i, "x"), xs[i]);  // exact: the shortest text that reads back the same double
    EXPECT_FALSE(t.optional_number(i, "y").has_value());
  }
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 3, 4, 5, 7}));  // the quoted line break spans lines 5-6
  csv::Writer copy(schema);
  for (const auto& row : t.rows) copy.row(row);
  EXPECT_EQ(copy.str(), w.str());  // a file copied row by row is the same file
}

TEST(Csv, WriterRefusesFieldsThatDoNotFitTheColumn) {
  const csv::Schema schema = csv::schema("a test CSV", "name,x", {"name"});
  csv::Writer w(schema);
  EXPECT_THROW(w.number(1.0), std::logic_error);  // a number into the text column
  w.text("a");
  EXPECT_THROW(w.empty(), std::logic_error);  // x is not optional
  EXPECT_THROW(w.end_row(), std::logic_error);  // short row
  w.fixed(0.5, 3).end_row();
  EXPECT_EQ(w.str(), "name,x\na,0.500\n");
  EXPECT_THROW(csv::Writer(schema, {"extra"}), std::logic_error);  // a closed schema has no extra columns
  EXPECT_THROW(csv::schema("bad", "a,b", {"c"}), std::logic_error);
}

TEST(Csv, ReaderNamesFileLineAndExpectation) {
  const csv::Schema schema = csv::schema("a test CSV (tokcom test)", "name,x", {"name"}, {}, /*open=*/true);
  EXPECT_EQ(csv::parse("name,x,x2\na,1,2\n", "f.csv", schema).number(0, "x2"), 2.0);  // open: extra numbers
  const auto message = [&](const std::string& text) { return error_of([&] { csv::parse(text, "f.csv", schema); }); };
  EXPECT_NE(message("nom,x\n").find("f.csv line 1: header is 'nom,x', expected 'name,x,...' (a test CSV (tokcom test))"),
            std::string::npos);
  EXPECT_NE(message("name,x\na,1,2\n").find("f.csv line 2: 3 fields, expected 2"), std::string::npos);
  EXPECT_NE(message("name,x\n\na,abc\n").find("f.csv line 3: column 'x' is 'abc', expected a finite number"),
            std::string::npos);
  EXPECT_NE(message("name,x\na,nan\n").find("column 'x' is 'nan'"), std::string::npos);
  EXPECT_NE(message("name,x\n\"a,1\n").find("f.csv line 2: unterminated double quote"), std::string::npos);
  EXPECT_NE(message("").find("f.csv: empty file, expected the header 'name,x'"), std::string::npos);
  // Files not ours (no schema): spaces around unquoted fields are dropped, widths still checked.
  const csv::Table any = csv::parse("a , b\r\n 1, \" 2\"\r\n", "g.csv");
  EXPECT_EQ(any.header, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(any.rows[0], (std::vector<std::string>{"1", " 2"}));
  EXPECT_NE(error_of([&] { any.column("c"); }).find("g.csv: no column 'c' (header: a,b)"), std::string::npos);
}

TEST(Text, ListsNumbersAndDigest) {
  EXPECT_EQ(split_list(" a, b ,,c"), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_TRUE(split_list("").empty());
  EXPECT_EQ(split_list("-20:20:2.5", ':'), (std::vector<std::string>{"-20", "20", "2.5"}));
  EXPECT_EQ(parse_number_list("0.1, 0.5,", "--zeta-max"), (std::vector<double>{0.1, 0.5}));
  EXPECT_NE(error_of([] { parse_number_list("0.1,x", "--zeta-max"); }).find("--zeta-max: 'x' is not a number"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_number_list(",", "--zeta-max"); }).find("--zeta-max: empty list"), std::string::npos);
  EXPECT_FALSE(parse_double("1e999").has_value());
  EXPECT_FALSE(parse_double("0.5x").has_value());
  EXPECT_EQ(parse_double("-1.5e-3").value(), -1.5e-3);
  // Known answers, computed independently (Python: h = (h ^ byte) * 1099511628211 mod 2^64 from
  // the offset 1469598103934665603). The published FNV-1a basis is 14695981039346656037 (one
  // digit more): tokcom's digests have used the shorter one from the start, and every stage digest
  // and checkpoint on disk depends on it, so it stays.
  EXPECT_EQ(fnv1a_hex(""), "14650fb0739d0383");
  EXPECT_EQ(fnv1a_hex("a"), "44bd8ad473cd9906");
  EXPECT_EQ(fnv1a_hex("foobar"), "88fad7c0a8ff07f2");
}

TEST(BlasKernel, ChoiceIsAFunctionOfFlagsAndReportedCore) {
  const CpuFeatures skx = intel_cpu(true), cpx = intel_cpu(true, true), hsw = intel_cpu(false);
  // The case this exists for: an AVX-512 CPU OpenBLAS does not know, generic fallback.
  EXPECT_EQ(choose_blas_core(skx, "Prescott"), "SkylakeX");
  EXPECT_EQ(choose_blas_core(skx, "prescott"), "SkylakeX");  // OpenBLAS compares case-insensitively
  EXPECT_EQ(choose_blas_core(cpx, "Prescott"), "Cooperlake");
  EXPECT_EQ(choose_blas_core(skx, "Sandybridge"), "SkylakeX");
  EXPECT_EQ(choose_blas_core(skx, "Haswell"), "SkylakeX");
  EXPECT_EQ(choose_blas_core(hsw, "Nehalem"), "Haswell");
  // OpenBLAS's choice is kept when it is as good as the flags allow, or a name we do not know.
  EXPECT_EQ(choose_blas_core(skx, "SkylakeX"), "");
  EXPECT_EQ(choose_blas_core(skx, "Cooperlake"), "");
  EXPECT_EQ(choose_blas_core(skx, "Sapphirerapids"), "");
  EXPECT_EQ(choose_blas_core(hsw, "Haswell"), "");
  EXPECT_EQ(choose_blas_core(hsw, "Zen"), "");
  EXPECT_EQ(choose_blas_core(skx, "Emeraldrapids"), "");
  EXPECT_EQ(choose_blas_core(skx, ""), "");
  // AVX-512 the OS does not save (XCR0) is not AVX-512.
  CpuFeatures no_os = skx;
  no_os.os_avx512 = false;
  EXPECT_EQ(choose_blas_core(no_os, "Prescott"), "Haswell");
  // Xeon Phi-like: avx512f without BW/DQ/VL gets the AVX2 kernels.
  CpuFeatures knl = skx;
  knl.avx512bw = knl.avx512dq = knl.avx512vl = false;
  EXPECT_EQ(choose_blas_core(knl, "Prescott"), "Haswell");
  // AMD as OpenBLAS names it; a CPU without AVX2/FMA has nothing better than generic to offer.
  CpuFeatures zen = hsw;
  zen.vendor = "AuthenticAMD";
  EXPECT_EQ(choose_blas_core(zen, "Prescott"), "Zen");
  EXPECT_EQ(choose_blas_core(zen, "Zen"), "");
  CpuFeatures sse;
  sse.vendor = "GenuineIntel";
  EXPECT_EQ(choose_blas_core(sse, "Prescott"), "");
  CpuFeatures avx_only = sse;
  avx_only.avx = avx_only.os_avx = true;
  EXPECT_EQ(choose_blas_core(avx_only, "Core2"), "Sandybridge");
  EXPECT_EQ(blas_core_level("SKYLAKEX"), 3);
  EXPECT_EQ(blas_core_level("Unknown"), -1);
}

TEST(BlasKernel, InUseIsNotAGenericFallbackOnAnAvx2Cpu) {
  const CpuFeatures cpu = detect_cpu_features();
  const BlasKernelState& state = blas_kernel_state();
  if (!state.openblas) GTEST_SKIP() << "skipped: the BLAS is not OpenBLAS";
  if (!state.user_coretype.empty()) GTEST_SKIP() << "skipped: OPENBLAS_CORETYPE is set by the user";
  if (!cpu.has_avx2()) GTEST_SKIP() << "skipped: this CPU has no AVX2 (" << describe(cpu) << ")";
  const std::string core = blas_core_in_use();
  EXPECT_EQ(core, state.in_use);
  EXPECT_GE(blas_core_level(core), 2) << runtime_report(2);
  EXPECT_GE(blas_core_level(core), blas_core_level(best_blas_core(cpu))) << runtime_report(2);
}

TEST(BlasKernel, GemmOnTheChosenCoreIsCorrect) {
  // fp32 matmul through the BLAS against a float64 product summed elementwise (no BLAS involved).
  torch::manual_seed(0);
  const torch::Tensor a = torch::randn({67, 131}), b = torch::randn({131, 45});
  const torch::Tensor got = torch::mm(a, b).to(torch::kDouble);
  const torch::Tensor want = (a.to(torch::kDouble).unsqueeze(2) * b.to(torch::kDouble).unsqueeze(0)).sum(1);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-3);
  const torch::Tensor big_a = torch::randn({512, 384}), big_b = torch::randn({384, 256});
  const torch::Tensor big = torch::mm(big_a, big_b).to(torch::kDouble);
  const torch::Tensor big_want = torch::mm(big_a.to(torch::kDouble), big_b.to(torch::kDouble));
  EXPECT_LT((big - big_want).abs().max().item<double>(), 1e-3);
}

TEST(BlasKernel, CliSwitchesAFallbackAndLeavesTheUsersChoice) {
  const CpuFeatures cpu = detect_cpu_features();
  if (!blas_kernel_state().openblas) GTEST_SKIP() << "skipped: the BLAS is not OpenBLAS";
  if (!cpu.has_avx2()) GTEST_SKIP() << "skipped: this CPU has no AVX2";
  if (std::getenv("OPENBLAS_CORETYPE")) GTEST_SKIP() << "skipped: OPENBLAS_CORETYPE is set by the user";
  std::string out;
  {
    // OpenBLAS forced to its generic fallback first, as on a CPU it does not know.
    ScopedEnv fallback("TOKCOM_TEST_BLAS_FALLBACK", "1");
    ASSERT_EQ(test::run_cli("--version", &out), 0) << out;
    EXPECT_NE(out.find("OpenBLAS alone picked Prescott"), std::string::npos) << out;
    EXPECT_NE(out.find("BLAS core: " + best_blas_core(cpu) + " (chosen by tokcom"), std::string::npos) << out;
  }
  {
    ScopedEnv user("OPENBLAS_CORETYPE", "Prescott");
    ASSERT_EQ(test::run_cli("--version", &out), 0) << out;
    EXPECT_NE(out.find("BLAS core: Prescott (OPENBLAS_CORETYPE=Prescott set by the user)"), std::string::npos) << out;
  }
  ASSERT_EQ(test::run_cli("--threads 1 --version", &out), 0) << out;
  EXPECT_NE(out.find("threads: 1 of"), std::string::npos) << out;
  EXPECT_NE(out.find("oneDNN: "), std::string::npos) << out;
  EXPECT_NE(out.find("LibTorch: "), std::string::npos) << out;
  const size_t at = out.find("BLAS core: ");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string core = out.substr(at + 11, out.find(' ', at + 11) - (at + 11));
  EXPECT_GE(blas_core_level(core), 2) << out;
}

// cmake/git_hash.cmake stamps every build with its commit (`tokcom --version`, checkpoints' state.json,
// CSV sidecars, reports): the hash follows each new commit, a changed tracked file marks it "-dirty",
// an unchanged tree leaves the generated file alone (nothing recompiles), and outside a git checkout
// it says "unknown". Before, the hash was taken once when CMake configured and went stale.
TEST(Version, GitHashFollowsCommitsAndMarksADirtyTree) {
  std::string out;
  if (test::run_shell("git --version", &out) != 0) TOKCOM_SKIP_MISSING("git not found: " + out);
  const std::string repo = test::temp_dir("git-hash-repo");
  const std::string gen = test::temp_dir("git-hash-out") + "/git_hash.cpp";
  // The temp folders live inside the build tree, itself maybe inside a checkout: git must not look
  // above `repo`.
  const std::string env = "GIT_CEILING_DIRECTORIES=" + std::filesystem::path(repo).parent_path().string() + " ";
  auto git = [&](const std::string& args) {
    std::string o;
    EXPECT_EQ(test::run_shell(env + "git -C " + repo + " -c user.name=t -c user.email=t@example.org " + args, &o), 0)
        << args << ": " << o;
    while (!o.empty() && o.back() == '\n') o.pop_back();
    return o;
  };
  auto stamp = [&] {
    std::string o;
    EXPECT_EQ(test::run_shell(env + TOKCOM_CMAKE_COMMAND + " -DSRC=" + repo + " -DOUT=" + gen + " -P " +
                                  TOKCOM_SOURCE_DIR + "/cmake/git_hash.cmake", &o), 0) << o;
    std::ifstream in(gen);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    EXPECT_TRUE(std::regex_search(text, m, std::regex("git_hash\\(\\) \\{ return \"([^\"]*)\"; \\}"))) << text;
    return m.size() > 1 ? m[1].str() : std::string("<none>");
  };
  EXPECT_EQ(stamp(), "unknown");  // not a repository yet

  git("init -q");
  { std::ofstream(repo + "/a.txt") << "one\n"; }
  git("add a.txt");
  git("commit -q -m one");
  const std::string first = git("rev-parse --short=12 HEAD");
  ASSERT_EQ(first.size(), 12u) << first;
  EXPECT_EQ(stamp(), first);

  // Same tree, same text: the file is not rewritten (its old time stays).
  const auto old_time = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  std::filesystem::last_write_time(gen, old_time);
  EXPECT_EQ(stamp(), first);
  EXPECT_EQ(std::filesystem::last_write_time(gen), old_time);

  { std::ofstream(repo + "/a.txt") << "two\n"; }
  EXPECT_EQ(stamp(), first + "-dirty");
  { std::ofstream(repo + "/untracked.txt") << "x\n"; }  // untracked files do not make a build dirty
  git("commit -q -am two");
  const std::string second = git("rev-parse --short=12 HEAD");
  EXPECT_NE(second, first);
  EXPECT_EQ(stamp(), second);
}

// Wilson score intervals against published values (e.g. 0 of 10 → [0, 0.2775]).
TEST(Stats, WilsonIntervalKnownAnswers) {
  const auto near = [](Interval got, double low, double high) {
    EXPECT_NEAR(got.low, low, 5e-5);
    EXPECT_NEAR(got.high, high, 5e-5);
  };
  near(wilson_interval(0.5, 100), 0.4038, 0.5962);
  near(wilson_interval(0.0, 10), 0.0, 0.2775);
  near(wilson_interval(1.0, 10), 0.7225, 1.0);
  near(wilson_interval(0.95, 3925), 0.9427, 0.9564);
  near(wilson_interval(0.3, 0), 0.0, 1.0);
  EXPECT_THROW(wilson_interval(1.5, 10), UsageError);
}

// Student's t critical values against published tables, and the interval of a mean over repeats.
TEST(Stats, MeanIntervalOverRepeatsKnownAnswers) {
  EXPECT_NEAR(student_t95(1), 12.7062, 1e-4);
  EXPECT_NEAR(student_t95(2), 4.3027, 1e-4);
  EXPECT_NEAR(student_t95(30), 2.0423, 1e-4);
  EXPECT_NEAR(student_t95(40), 2.0211, 1e-4);   // beyond the table: the expansion
  EXPECT_NEAR(student_t95(100), 1.9840, 1e-4);
  EXPECT_NEAR(student_t95(1000000), 1.9600, 1e-4);
  EXPECT_THROW(student_t95(0), UsageError);
  const Interval i = mean_interval({1.0, 2.0, 3.0});  // mean 2, s = 1: 2 ± 4.302653/√3
  EXPECT_NEAR(i.low, -0.484138, 1e-5);
  EXPECT_NEAR(i.high, 4.484138, 1e-5);
  const Interval same = mean_interval({0.4, 0.4, 0.4, 0.4});
  EXPECT_DOUBLE_EQ(same.low, 0.4);
  EXPECT_DOUBLE_EQ(same.high, 0.4);
  EXPECT_THROW(mean_interval({0.5}), UsageError);
}

// Core: config schema/overrides, atomic writes, shape checks, progress formatting, the BLAS kernel.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/blas_kernel.h"
#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"

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

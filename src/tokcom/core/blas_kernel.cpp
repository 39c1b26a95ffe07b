#include "tokcom/core/blas_kernel.h"

#include <cpuid.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <map>

#include <ATen/Version.h>
#include <torch/version.h>
#include <fmt/format.h>

#include "tokcom/core/startup.h"

namespace tokcom {

namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures cpu;
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return cpu;
  const uint32_t max_leaf = eax;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  cpu.vendor = vendor;

  __get_cpuid(1, &eax, &ebx, &ecx, &edx);
  cpu.family = (eax >> 8) & 0xF;
  cpu.model = (eax >> 4) & 0xF;
  if (cpu.family == 0xF) cpu.family += (eax >> 20) & 0xFF;
  if (cpu.family == 6 || cpu.family >= 0xF) cpu.model += ((eax >> 16) & 0xF) << 4;
  cpu.fma = bit(ecx, 12);
  cpu.avx = bit(ecx, 28);
  if (bit(ecx, 27)) {  // OSXSAVE: xgetbv is allowed
    const uint64_t xcr0 = read_xcr0();
    cpu.os_avx = (xcr0 & 0x6) == 0x6;        // XMM + YMM state
    cpu.os_avx512 = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (max_leaf >= 7) {
    __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
    const uint32_t subleaves = eax;
    cpu.avx2 = bit(ebx, 5);
    cpu.avx512f = bit(ebx, 16);
    cpu.avx512dq = bit(ebx, 17);
    cpu.avx512cd = bit(ebx, 28);
    cpu.avx512bw = bit(ebx, 30);
    cpu.avx512vl = bit(ebx, 31);
    cpu.amx_bf16 = bit(edx, 22);
    if (subleaves >= 1) {
      __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx);
      cpu.avx512_bf16 = bit(eax, 5);
    }
  }
  return cpu;
}

std::string describe(const CpuFeatures& cpu) {
  std::string s = fmt::format("{} family {} model {}:", cpu.vendor.empty() ? "unknown CPU" : cpu.vendor,
                              cpu.family, cpu.model);
  const std::pair<const char*, bool> flags[] = {
      {"avx", cpu.avx && cpu.os_avx}, {"avx2", cpu.avx2}, {"fma", cpu.fma},
      {"avx512", cpu.has_avx512()}, {"avx512_bf16", cpu.avx512_bf16}, {"amx_bf16", cpu.amx_bf16}};
  for (const auto& [name, on] : flags) s += fmt::format(" {}{}", on ? "" : "no-", name);
  return s;
}

int blas_core_level(const std::string& core) {
  // OpenBLAS's x86-64 core names (driver/others/dynamic.c), compared case-insensitively as it does.
  static const std::map<std::string, int> levels = {
      {"katmai", 0}, {"coppermine", 0}, {"northwood", 0}, {"prescott", 0}, {"banias", 0}, {"atom", 0},
      {"core2", 0}, {"penryn", 0}, {"dunnington", 0}, {"nehalem", 0}, {"athlon", 0}, {"opteron", 0},
      {"opteron_sse3", 0}, {"barcelona", 0}, {"nano", 0}, {"bobcat", 0},
      {"sandybridge", 1}, {"bulldozer", 1}, {"piledriver", 1}, {"steamroller", 1},
      {"haswell", 2}, {"excavator", 2}, {"zen", 2},
      {"skylakex", 3}, {"cooperlake", 3}, {"sapphirerapids", 3}};
  std::string key;
  for (char c : core) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto it = levels.find(key);
  return it == levels.end() ? -1 : it->second;
}

std::string best_blas_core(const CpuFeatures& cpu) {
  const bool amd = cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine";
  const bool intel = cpu.vendor == "GenuineIntel";
  if (amd) return cpu.has_avx2() ? "Zen" : "";  // OpenBLAS's own name for its AMD AVX2 kernels
  if (!intel) return "";
  if (cpu.has_avx512()) return cpu.avx512_bf16 ? "Cooperlake" : "SkylakeX";
  if (cpu.has_avx2()) return "Haswell";
  if (cpu.avx && cpu.os_avx) return "Sandybridge";
  return "";
}

std::string choose_blas_core(const CpuFeatures& cpu, const std::string& reported_core) {
  const int reported = blas_core_level(reported_core);
  if (reported < 0) return "";  // a core we do not know: OpenBLAS knows better
  const std::string best = best_blas_core(cpu);
  if (best.empty() || blas_core_level(best) <= reported) return "";
  return best;
}

namespace {

BlasKernelState& state_storage() {
  static BlasKernelState state;
  return state;
}

template <typename Fn>
Fn blas_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

// OpenBLAS (DYNAMIC_ARCH) reads OPENBLAS_CORETYPE in gotoblas_dynamic_init, which its own
// constructor ran before ours; gotoblas_dynamic_quit only clears the kernel table pointer. So
// quit + init with the variable set re-runs the selection in-process, before any BLAS call has
// allocated a buffer (no re-exec). The variable is removed again so child processes decide for
// themselves. Returns false when this OpenBLAS does not export the pair.
bool switch_blas_core(const std::string& core) {
  using VoidFn = void (*)();
  const auto quit = blas_symbol<VoidFn>("gotoblas_dynamic_quit");
  const auto init = blas_symbol<VoidFn>("gotoblas_dynamic_init");
  if (!quit || !init) return false;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  quit();
  init();
  unsetenv("OPENBLAS_CORETYPE");
  return true;
}

void select_blas_kernel() {
  BlasKernelState& s = state_storage();
  if (!blas_symbol<void*>("openblas_get_corename")) {
    s.note = "the BLAS is not OpenBLAS; its kernel is its own choice";
    return;
  }
  s.openblas = true;
  if (const char* user = std::getenv("OPENBLAS_CORETYPE")) {
    s.user_coretype = user;
    s.picked = s.in_use = blas_core_in_use();
    return;
  }
  // Test-only: make OpenBLAS start from its generic fallback, as on a CPU it does not know, so
  // the switch below can be tested on any CPU (tests/test_core.cpp, BlasKernel.*).
  if (std::getenv("TOKCOM_TEST_BLAS_FALLBACK")) switch_blas_core("Prescott");
  s.picked = blas_core_in_use();
  const std::string target = choose_blas_core(detect_cpu_features(), s.picked);
  if (!target.empty() && !switch_blas_core(target))
    s.note = "this OpenBLAS cannot switch cores in-process; set OPENBLAS_CORETYPE=" + target;
  s.in_use = blas_core_in_use();
  s.switched = s.in_use != s.picked;
  if (!target.empty() && !s.switched && s.note.empty())
    s.note = "OpenBLAS refused OPENBLAS_CORETYPE=" + target;
}

// Runs in every binary that links this library's start-up (CLI, tests, benchmarks), after the
// shared libraries' constructors (OpenBLAS's own selection) and before main.
__attribute__((constructor(101))) void select_blas_kernel_at_load() { select_blas_kernel(); }

}  // namespace

const BlasKernelState& blas_kernel_state() { return state_storage(); }

std::string blas_core_in_use() {
  const auto corename = blas_symbol<char* (*)()>("openblas_get_corename");
  if (!corename) return "";
  const char* name = corename();
  std::string s = name ? name : "";
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();  // OpenBLAS pads some names
  return s;
}

std::string blas_config() {
  const auto config = blas_symbol<char* (*)()>("openblas_get_config");
  if (!config) return "";
  const char* text = config();
  return text ? text : "";
}

namespace {

std::string onednn_version() {
  struct Version {  // dnnl_version_t (oneapi/dnnl/dnnl_types.h), read through dlsym: tokcom does not link oneDNN
    int major, minor, patch;
    const char* hash;
    unsigned cpu_runtime, gpu_runtime;
  };
  const auto version = blas_symbol<const Version* (*)()>("dnnl_version");
  if (!version) return "not loaded";
  const Version* v = version();
  return fmt::format("{}.{}.{}", v->major, v->minor, v->patch);
}

// ATen's vectorised kernels (not the BLAS): the "CPU capability usage" line of at::show_config().
std::string cpu_capability_name() {
  const std::string config = at::show_config();
  const std::string key = "CPU capability usage: ";
  const size_t at = config.find(key);
  if (at == std::string::npos) return "unknown";
  const size_t begin = at + key.size();
  return config.substr(begin, config.find('\n', begin) - begin);
}

}  // namespace

std::string runtime_report(int threads) {
  const BlasKernelState& s = blas_kernel_state();
  std::string blas;
  if (!s.openblas) {
    blas = "BLAS: " + s.note;
  } else {
    std::string how;
    if (!s.user_coretype.empty()) how = "OPENBLAS_CORETYPE=" + s.user_coretype + " set by the user";
    else if (s.switched) how = "chosen by tokcom from the CPU's flags; OpenBLAS alone picked " + s.picked;
    else how = "OpenBLAS's own choice";
    if (!s.note.empty()) how += "; " + s.note;
    blas = fmt::format("BLAS: {}\nBLAS core: {} ({})", blas_config(), s.in_use, how);
  }
  return fmt::format(
      "LibTorch: {} (ATen CPU capability {})\n{}\noneDNN: {}\nthreads: {} of {} cores\nCPU: {}",
      TORCH_VERSION, cpu_capability_name(), blas, onednn_version(), threads, core_count(),
      describe(detect_cpu_features()));
}

}  // namespace tokcom

// The BLAS kernel every GEMM runs on (docs/PERF.md, "The BLAS kernel").
//
// LibTorch's fp32 matmuls go to the system BLAS, on Debian OpenBLAS built with DYNAMIC_ARCH: it
// picks a kernel ("core") from the CPU's family and model when it is loaded. A CPU newer than the
// OpenBLAS release is not in its table, and OpenBLAS then falls back to the generic `Prescott`
// core (SSE3): 4-6x below what the same CPU does with its AVX-512 kernel. At start-up every tokcom
// binary checks the core in use against the CPU's own flags and, where OpenBLAS fell back to a
// core weaker than the flags support, switches OpenBLAS to the best core those flags support
// before the first BLAS call. A user's own OPENBLAS_CORETYPE always wins.
#pragma once
#include <string>

namespace tokcom {

// What the CPU and the OS support, read with cpuid/xgetbv (the same sources OpenBLAS reads).
struct CpuFeatures {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  int family = 0, model = 0;
  bool avx = false, avx2 = false, fma = false;
  bool avx512f = false, avx512cd = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false, amx_bf16 = false;
  bool os_avx = false, os_avx512 = false;  // XCR0: the OS saves the YMM / ZMM state

  bool has_avx2() const { return avx && avx2 && fma && os_avx; }
  bool has_avx512() const { return has_avx2() && avx512f && avx512cd && avx512bw && avx512dq && avx512vl && os_avx512; }
};

CpuFeatures detect_cpu_features();
// One line: vendor, family/model and the vector extensions that matter to GEMM kernels.
std::string describe(const CpuFeatures& cpu);

// The vector level a core's kernels use: 0 generic (SSE), 1 AVX, 2 AVX2 + FMA, 3 AVX-512;
// -1 for a name this table does not know (never replaced).
int blas_core_level(const std::string& core);
// The best OpenBLAS core the flags support ("" when none is better than generic):
// AVX-512 → SkylakeX (Cooperlake with avx512_bf16), AVX2 + FMA → Haswell (AMD: Zen), AVX → Sandybridge.
std::string best_blas_core(const CpuFeatures& cpu);
// The core to switch to given what OpenBLAS chose by itself, or "" to keep it: only a known core
// whose level is below what the flags support is replaced. The pure decision, tested on its own.
std::string choose_blas_core(const CpuFeatures& cpu, const std::string& reported_core);

// What happened at start-up (done once, before main, by the library itself).
struct BlasKernelState {
  bool openblas = false;        // the BLAS in the process is OpenBLAS (openblas_get_corename found)
  std::string picked;           // the core OpenBLAS chose by itself
  std::string in_use;           // the core in use now
  std::string user_coretype;    // OPENBLAS_CORETYPE as the user set it ("" = unset)
  bool switched = false;        // tokcom replaced `picked` with `in_use`
  std::string note;             // why nothing was switched where something should have been
};
const BlasKernelState& blas_kernel_state();

// The BLAS core in use now ("" when the BLAS is not OpenBLAS) and OpenBLAS's build string.
std::string blas_core_in_use();
std::string blas_config();

// Multi-line report for `tokcom --version`: LibTorch, ATen CPU capability, BLAS and its core (and
// how it was chosen), oneDNN, threads, CPU.
std::string runtime_report(int threads);

}  // namespace tokcom

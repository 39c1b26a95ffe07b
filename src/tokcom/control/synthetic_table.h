// A synthetic proxy table for tests, demos and benchmarks (no model needed): the proposal's
// decision set (METHOD §8.1) with
//   Â = floor + (ceiling − floor) · σ(3 + 1.2 ln α) · σ(2.5 + 0.8 ln r) · σ((SNR − snr_mid) / 3)
//   ζ = (α·N + 2) · d_r / 150 528,   d_r = max(⌊192 r⌋, 1)   (METHOD §5.1, 5.5)
// so accuracy rises with α, r and SNR and ζ with α and r. Shape, not data: no paper number.
#pragma once
#include <string>
#include <vector>

#include "tokcom/control/proxy_table.h"

namespace tokcom {

struct SyntheticTableOptions {
  std::vector<double> budgets = {0.001, 0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};  // α
  std::vector<double> ratios = {0.001, 0.01, 0.05, 0.1, 0.15, 0.25, 0.5};                  // r
  std::vector<double> snr_grid = {-20, -15, -10, -5, 0, 5, 10, 15, 20, 25};                 // dB
  int patches = 196;          // N
  int dim = 192;              // d (DeiT-Tiny)
  double floor = 0.1;         // chance on 10 classes
  double ceiling = 0.86;      // ≈ clean DeiT-Tiny on Imagenette (METHOD §9.1)
  double snr_mid = -5.0;      // SNR (dB) at which the channel factor is 1/2
  std::string method = "synthetic", channel = "awgn", regime = "robust";
};

ProxyTable make_synthetic_table(const SyntheticTableOptions& options = {});

}  // namespace tokcom

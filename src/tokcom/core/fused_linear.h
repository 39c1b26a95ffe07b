// torch::nn::Linear with ATen's fused forward. In LibTorch 1.13 the C++ module's forward
// (torch::nn::functional::linear) runs a 3-D input as matmul + a separate bias add: the GEMM is
// called with beta = 0, so OpenBLAS first zeroes the output in its own pass (sgemm_beta, 7 % of a
// ViT forward here), then a second pass adds the bias. ATen's at::linear, which PyTorch-in-Python
// calls, folds a contiguous (B, T, D) input into one addmm with the bias as C. Same parameters and
// names (weight, bias), so weights and state dicts move unchanged; the result differs from the
// unfused one only by rounding (the bias enters the sum first).
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace tokcom {

class FusedLinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& input) { return at::linear(input, weight, bias); }
};
TORCH_MODULE(FusedLinear);

}  // namespace tokcom

// Input validation at public entry points; messages say caller, object, actual vs expected.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <cstdint>
#include <string>
#include <vector>

namespace tokcom {

// Throws ShapeError unless `t` has rank expected.size() and each dim equals expected (−1 = any).
// Message: "<caller>: <name> has shape [4, 62, 19], expected [*, *, 28]".
void check_shape(const std::string& caller, const std::string& name, const at::Tensor& t,
                 const std::vector<int64_t>& expected);
// Throws ShapeError unless `t` has the given dtype.
void check_dtype(const std::string& caller, const std::string& name, const at::Tensor& t,
                 c10::ScalarType expected);
// "[4, 62, 19]" ("*" for −1).
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace tokcom

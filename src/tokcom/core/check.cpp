#include "tokcom/core/check.h"

#include <fmt/format.h>

#include "tokcom/core/errors.h"

namespace tokcom {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += shape[i] < 0 ? std::string("*") : std::to_string(shape[i]);
  }
  return s + "]";
}

void check_shape(const std::string& caller, const std::string& name, const at::Tensor& t,
                 const std::vector<int64_t>& expected) {
  if (!t.defined()) throw ShapeError(fmt::format("{}: {} is undefined, expected shape {}", caller, name, shape_string(expected)));
  const auto actual = t.sizes().vec();
  bool ok = actual.size() == expected.size();
  for (size_t i = 0; ok && i < actual.size(); ++i) ok = expected[i] < 0 || expected[i] == actual[i];
  if (!ok) {
    throw ShapeError(fmt::format("{}: {} has shape {}, expected {}", caller, name,
                                 shape_string(actual), shape_string(expected)));
  }
}

void check_dtype(const std::string& caller, const std::string& name, const at::Tensor& t,
                 c10::ScalarType expected) {
  if (t.scalar_type() != expected) {
    throw ShapeError(fmt::format("{}: {} has dtype {}, expected {}", caller, name,
                                 c10::toString(t.scalar_type()), c10::toString(expected)));
  }
}

}  // namespace tokcom

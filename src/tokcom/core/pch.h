// Precompiled header for the library, CLI, tests and benchmarks: LibTorch's headers cost ~20 s
// per translation unit otherwise (DESIGN.md "Conventions").
#pragma once
#include <torch/torch.h>
#include <string>
#include <vector>
#include <memory>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

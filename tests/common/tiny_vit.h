// The tiny adaptive ViT several test areas share: Fashion-MNIST geometry, 28 px, patch 7 → N = 16,
// dim 32, depth 4, heads 2, adaptive blocks {1, 2}, split 3, JSCC ratios {0.1, 0.5}.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokcom/model/vit.h"

namespace tokcom {
class Config;
}

namespace tokcom::test {

// Config overrides for the tiny model, writing into `out`.
std::vector<std::string> tiny_vit_overrides(const std::string& out, const std::string& augment = "crop-flip");
// A random tiny ViT in eval mode whose gates vary enough that images keep different numbers of tokens.
Vit random_tiny_vit(const Config& config, uint64_t seed);

}  // namespace tokcom::test

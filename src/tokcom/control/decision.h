// What the controller chooses per slot: φ = (α, r) (SPEC 0, 8.1).
#pragma once
#include <cstdint>

namespace tokcom {

struct Decision {
  double budget = 1.0;        // α, fraction of patch tokens kept
  int64_t ratio_index = -1;   // index of r in the table's ratios (order of first appearance)
  double ratio = 0.0;         // r, per-token compression ratio
};

}  // namespace tokcom

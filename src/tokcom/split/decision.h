// What the controller chooses per slot and the device half obeys: φ = (α, r) (METHOD §0, 8.1).
#pragma once
#include <cstdint>

namespace tokcom {

struct Decision {
  double budget = 1.0;        // α ∈ (0, 1], fraction of patch tokens kept (1 = every token)
  int64_t ratio_index = -1;   // index of r in the trained bank / the table's ratios
  double ratio = 0.0;         // r, per-token compression ratio (informative; the index decides)
};

}  // namespace tokcom

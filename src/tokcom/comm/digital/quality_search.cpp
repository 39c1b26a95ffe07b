#include "tokcom/comm/digital/quality_search.h"

#include <algorithm>

namespace tokcom::digital {

int64_t search_ladder(int64_t count,
                      const std::function<bool(int64_t)>& fits,
                      QualitySearch search,
                      int window) {
  if (count <= 0 || !fits(count - 1)) return -1;  // METHOD §6.3: cheapest rung first
  if (search == QualitySearch::kLinear) {
    for (int64_t i = 0; i < count - 1; ++i) {
      if (fits(i)) return i;
    }
    return count - 1;
  }
  int64_t lo = count - 1;  // invariant: rung lo fits
  while (lo > 0) {
    if (fits(0)) return 0;
    int64_t hi = 0;  // invariant: rung hi does not fit, hi < lo
    while (lo - hi > 1) {
      const int64_t mid = hi + (lo - hi) / 2;
      if (fits(mid)) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    // Sizes are not strictly monotone in quality: look a few rungs beyond the boundary.
    int64_t better = -1;
    for (int64_t i = std::max<int64_t>(0, hi - window); i < hi; ++i) {
      if (fits(i)) {
        better = i;
        break;
      }
    }
    if (better < 0) return lo;
    lo = better;
  }
  return lo;
}

}  // namespace tokcom::digital

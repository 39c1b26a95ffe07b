// comm/digital/quality_search.h — pick the best rung of a quality ladder that fits a budget.
#pragma once
#include <cstdint>
#include <functional>

#include "tokcom/comm/digital/codec.h"

namespace tokcom::digital {

// Rungs 0 … count−1 in scan order (best quality first, cheapest last). `fits(i)` says whether
// rung i's encoding is under the budget (callers memoise it: each call may encode).
// Reference semantics (METHOD §6.3): if the cheapest rung does not fit → −1 (lost); otherwise the
// first rung in scan order that fits. kLinear is exactly that. kBisect assumes fits() is monotone
// (false … false true … true), bisects the boundary, then checks `window` rungs before it and
// re-bisects whenever one of them fits; it agrees with kLinear unless a fitting rung hides more
// than `window` rungs above a non-fitting one.
int64_t search_ladder(int64_t count,
                      const std::function<bool(int64_t)>& fits,
                      QualitySearch search,
                      int window);

}  // namespace tokcom::digital

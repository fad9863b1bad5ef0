#include "service/core/politeness/adaptive_limit.h"

#include <algorithm>

namespace fetchd::core::politeness {

bool AdaptiveLimit::Record(LoadSignal signal) {
  if (signal == LoadSignal::kNeutral) return false;
  // The window of the last decrease: every result counts it down, an
  // overload in it changes nothing.
  const bool in_window = ignore_ > 0;
  if (in_window) --ignore_;
  if (signal == LoadSignal::kOverload) {
    successes_ = 0;
    if (in_window || limit_ == 1) return false;
    // The attempts in flight now answer before the new limit shows.
    ignore_ = limit_ - 1;
    limit_ = std::max(limit_ / 2, 1);
    return true;
  }
  if (limit_ >= max_) return false;
  if (++successes_ < limit_) return false;
  successes_ = 0;
  ++limit_;
  return true;
}

}  // namespace fetchd::core::politeness

#include "service/core/politeness/rate_limiter.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace fetchd::core::politeness {
namespace {

// Rates below one start per ~100 years are treated as that.
constexpr double kMaxIntervalNanos = 100.0 * 365 * 24 * 3600 * 1e9;

absl::Duration EmissionInterval(double rate) {
  if (!(rate > 0)) return absl::ZeroDuration();
  const double nanos = std::min(std::ceil(1e9 / rate), kMaxIntervalNanos);
  return absl::Nanoseconds(static_cast<int64_t>(nanos));
}

}  // namespace

RateLimiter::RateLimiter(double rate, int burst, absl::Duration min_delay)
    : interval_(EmissionInterval(rate)),
      tolerance_(interval_ * std::max(burst - 1, 0)),
      min_delay_(std::max(min_delay, absl::ZeroDuration())) {}

absl::Time RateLimiter::NextAllowed(absl::Time now) const {
  absl::Time next = now;
  if (interval_ > absl::ZeroDuration())
    next = std::max(next, tat_ - tolerance_);
  if (min_delay_ > absl::ZeroDuration()) {
    next = std::max(next, last_start_ + min_delay_);
  }
  return next;
}

void RateLimiter::Take(absl::Time now) {
  assert(NextAllowed(now) <= now);
  last_start_ = now;
  if (interval_ > absl::ZeroDuration()) tat_ = std::max(tat_, now) + interval_;
}

bool RateLimiter::Idle(absl::Time now) const {
  return tat_ <= now && last_start_ + min_delay_ <= now;
}

}  // namespace fetchd::core::politeness

// RateLimiter: when the next request may start at one host key, from a rate
// with a burst (GCRA, the generic cell rate algorithm: a token bucket kept as
// one timestamp) and a least delay between starts (Scrapy's DOWNLOAD_DELAY).
//
// GCRA: with emission interval T = 1 s / rate and tolerance
// tau = (burst - 1) * T, a start at t is allowed when t >= tat - tau, and
// moves tat (the theoretical arrival time) to max(tat, t) + T. So a fresh
// host allows `burst` starts at once, then one per T: over any window of
// length w at most rate * w + burst starts. T is rounded up to the
// nanosecond, so decimal rates (2.5/s: 400 ms) are exact and none is ever
// exceeded. Rate 0 means no rate limit; min_delay 0 means no least delay.
//
// Time is passed in; the limiter never reads a clock.
// Thread-safety: none; one worker thread owns each instance.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_RATE_LIMITER_H_
#define FETCHD_SERVICE_CORE_POLITENESS_RATE_LIMITER_H_

#include "absl/time/time.h"

namespace fetchd::core::politeness {

class RateLimiter {
 public:
  // `rate` >= 0 (starts per second), `burst` >= 1 when rate > 0,
  // `min_delay` >= 0: as RuleSet::Create validates them.
  RateLimiter(double rate, int burst, absl::Duration min_delay);

  // The earliest time >= now at which a start is allowed.
  [[nodiscard]] absl::Time NextAllowed(absl::Time now) const;
  // Records a start at `now`. Precondition: NextAllowed(now) <= now (a start
  // taken early still counts, and delays the following ones).
  void Take(absl::Time now);

  // Whether the limiter behaves at `now` as a new one would: the host's
  // state may then be dropped.
  [[nodiscard]] bool Idle(absl::Time now) const;

  absl::Duration emission_interval() const { return interval_; }

 private:
  // Zero when there is no rate limit.
  absl::Duration interval_;
  absl::Duration tolerance_;
  absl::Duration min_delay_;
  absl::Time tat_ = absl::InfinitePast();
  absl::Time last_start_ = absl::InfinitePast();
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_RATE_LIMITER_H_

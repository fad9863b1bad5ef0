// HostBackoff: the host-wide pause after a host said it is overloaded. New
// requests to a paused host wait for everyone, not only the request that
// got the answer, and whether or not that request is retried.
//
// - A 429 or 503 with Retry-After pauses the host until
//   now + min(retry_after, max_retry_after); a pause already running is only
//   ever extended, never shortened. Retry-After 0 starts no pause.
// - consecutive_throttles 429/503 in a row without Retry-After pause the
//   host for base_pause; while the streak goes on, each pause that starts
//   doubles, up to max_pause: the first throttle after a pause ended starts
//   the next, longer one. Throttles answered while a pause runs (requests
//   that were in flight) add to the streak but start no pause.
// - Any other response ends the streak and the doubling. Attempts that got
//   no response (connect errors, timeouts) change nothing: those are the
//   circuit breaker's.
//
// Time is passed in; the backoff never reads a clock.
// Thread-safety: none; one worker thread owns each instance.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_HOST_BACKOFF_H_
#define FETCHD_SERVICE_CORE_POLITENESS_HOST_BACKOFF_H_

#include <optional>

#include "absl/time/time.h"

namespace fetchd::core::politeness {

// Server-wide: the pause applies to every host, whatever its rule.
struct HostBackoffConfig {
  // Cap on a pause set by Retry-After.
  absl::Duration max_retry_after = absl::Seconds(60);
  // Throttles in a row without Retry-After that pause the host; 0: never.
  int consecutive_throttles = 3;
  absl::Duration base_pause = absl::Seconds(1);
  absl::Duration max_pause = absl::Seconds(60);
};

class HostBackoff {
 public:
  explicit HostBackoff(const HostBackoffConfig& config) : config_(config) {}

  // Records a response with HTTP `status` (429 and 503 are throttles) and
  // its Retry-After, received at `now`. Returns true when this response
  // started a pause (the host was not paused at `now`): a metric's "backoffs
  // started"; extending a running pause returns false.
  bool OnResponse(int status, std::optional<absl::Duration> retry_after,
                  absl::Time now);

  // InfinitePast when the host was never paused.
  absl::Time paused_until() const { return paused_until_; }
  bool Paused(absl::Time now) const { return now < paused_until_; }
  // Whether the state at `now` is that of a new instance.
  bool Idle(absl::Time now) const {
    return !Paused(now) && streak_ == 0 && level_ == 0;
  }

 private:
  // Pauses until `until` if later than the running pause; true if the host
  // was not paused at `now`.
  bool PauseUntil(absl::Time until, absl::Time now);

  const HostBackoffConfig config_;
  absl::Time paused_until_ = absl::InfinitePast();
  // Throttles in a row.
  int streak_ = 0;
  // Streak pauses started since the streak began: the next lasts
  // base_pause * 2^level_.
  int level_ = 0;
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_HOST_BACKOFF_H_

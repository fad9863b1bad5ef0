#include "service/core/politeness/host_backoff.h"

#include <algorithm>

namespace fetchd::core::politeness {
namespace {

bool IsThrottle(int status) { return status == 429 || status == 503; }

}  // namespace

bool HostBackoff::OnResponse(int status,
                             std::optional<absl::Duration> retry_after,
                             absl::Time now) {
  if (!IsThrottle(status)) {
    streak_ = 0;
    level_ = 0;
    return false;
  }
  // Only compared with the threshold, so it stops there (no overflow).
  streak_ = std::min(streak_ + 1, std::max(config_.consecutive_throttles, 1));
  if (retry_after.has_value()) {
    const absl::Duration wait = std::min(*retry_after, config_.max_retry_after);
    if (wait <= absl::ZeroDuration()) return false;
    return PauseUntil(now + wait, now);
  }
  if (config_.consecutive_throttles <= 0 ||
      streak_ < config_.consecutive_throttles || Paused(now)) {
    return false;
  }
  // Doubling stops growing at the cap; the level stays bounded with it.
  absl::Duration pause = config_.base_pause;
  for (int i = 0; i < level_ && pause < config_.max_pause; ++i) pause *= 2;
  pause = std::min(pause, config_.max_pause);
  if (pause < config_.max_pause) ++level_;
  return PauseUntil(now + pause, now);
}

bool HostBackoff::PauseUntil(absl::Time until, absl::Time now) {
  const bool started = !Paused(now);
  paused_until_ = std::max(paused_until_, until);
  return started;
}

}  // namespace fetchd::core::politeness

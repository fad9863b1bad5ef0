// Clock: the source of time for everything that schedules (host queues,
// retry timers, timeouts). Production code uses RealClock; tests inject a
// fake so scheduling and retry logic are tested without sleeping.
//
// Thread-safety: implementations must be safe to call from any thread.
#ifndef FETCHD_SERVICE_COMMON_CLOCK_H_
#define FETCHD_SERVICE_COMMON_CLOCK_H_

#include <chrono>

#include "absl/time/time.h"

namespace fetchd {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic "now". Values are only comparable with values of the same
  // clock; they are not wall-clock times.
  virtual absl::Time Now() const = 0;
};

// std::chrono::steady_clock, expressed as absl::Time (epoch + steady offset).
class RealClock final : public Clock {
 public:
  absl::Time Now() const override {
    return absl::UnixEpoch() +
           absl::FromChrono(
               std::chrono::steady_clock::now().time_since_epoch());
  }
  // A process-wide instance; never destroyed.
  static RealClock* Get() {
    static auto* clock = new RealClock();
    return clock;
  }
};

}  // namespace fetchd

#endif  // FETCHD_SERVICE_COMMON_CLOCK_H_

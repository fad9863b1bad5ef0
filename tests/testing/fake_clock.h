// FakeClock: a Clock that stands still until the test moves it, so that
// timeouts, deadlines and schedules are tested without waiting real time.
//
// Thread-safety: every method may be called from any thread.
#ifndef FETCHD_TESTS_TESTING_FAKE_CLOCK_H_
#define FETCHD_TESTS_TESTING_FAKE_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"

namespace fetchd::testing {

class FakeClock final : public Clock {
 public:
  // Far from the epoch, so that "now minus a margin" is never before it.
  explicit FakeClock(absl::Time start = absl::UnixEpoch() + absl::Hours(1000))
      : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  // Moves the clock forward by `d` (>= 0).
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_FAKE_CLOCK_H_

// DeadlineTimer: runs a callback at a given time on its own thread — the
// cut a call makes shortly before its RPC deadline, so that its unfinished
// requests still reach the caller as DEADLINE_EXCEEDED results instead of
// being lost with the call.
//
// Time comes from a Clock (RealClock unless a test injects a fake one, which
// it advances and then calls ClockAdvanced()).
//
// Thread-safety: every method may be called from any thread. Callbacks run
// on the timer's thread, one at a time, without the timer's lock held; they
// must not call Stop(). The destructor stops the thread and drops what has
// not fired.
#ifndef FETCHD_SERVICE_API_DEADLINE_TIMER_H_
#define FETCHD_SERVICE_API_DEADLINE_TIMER_H_

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"

namespace fetchd::api {

class DeadlineTimer {
 public:
  // Identifies a scheduled callback.
  using Key = std::pair<absl::Time, uint64_t>;

  // `clock` must outlive the timer.
  explicit DeadlineTimer(const Clock* clock = RealClock::Get());
  ~DeadlineTimer();
  DeadlineTimer(const DeadlineTimer&) = delete;
  DeadlineTimer& operator=(const DeadlineTimer&) = delete;

  // Runs `callback` at `when` (on the clock; at once if it has passed).
  [[nodiscard]] Key Schedule(absl::Time when,
                             absl::AnyInvocable<void() &&> callback);
  // Drops the callback of `key` unless it has run or is running.
  void Cancel(const Key& key);
  // Drops what has not run and joins the thread; later Schedule()s never
  // run. Idempotent; the destructor calls it.
  void Stop();
  // Callbacks scheduled and not yet run or cancelled (for tests).
  size_t pending() const;
  // Looks at the clock again now. Only for a clock that jumps (a test's
  // fake); the timer waits out a real clock by itself.
  void ClockAdvanced();

 private:
  void Run();

  const Clock* const clock_;
  mutable absl::Mutex mu_;
  std::map<Key, absl::AnyInvocable<void() &&>> scheduled_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Counts ClockAdvanced() calls: a change wakes the thread.
  uint64_t clock_advances_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_DEADLINE_TIMER_H_

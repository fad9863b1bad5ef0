// DeadlineTimer: callbacks run in time order once due, a cancelled one never
// runs, Stop() drops the rest. Due times are in the past or far in the
// future, so no test waits on the clock.
#include "service/api/deadline_timer.h"

#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace fetchd::api {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

TEST(DeadlineTimerTest, DueCallbacksRunInTimeOrder) {
  DeadlineTimer timer;
  absl::Mutex mu;
  std::vector<int> ran;
  absl::Notification done;
  const absl::Time past = absl::Now() - absl::Seconds(1);
  // Scheduled out of order; the earlier time runs first.
  (void)timer.Schedule(past, [&] {
    absl::MutexLock lock(&mu);
    ran.push_back(2);
    done.Notify();
  });
  (void)timer.Schedule(past - absl::Seconds(1), [&] {
    absl::MutexLock lock(&mu);
    ran.push_back(1);
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
}

TEST(DeadlineTimerTest, CancelledCallbackNeverRuns) {
  DeadlineTimer timer;
  bool ran = false;
  const DeadlineTimer::Key key =
      timer.Schedule(absl::Now() + absl::Hours(1), [&] { ran = true; });
  EXPECT_EQ(timer.pending(), 1u);
  timer.Cancel(key);
  EXPECT_EQ(timer.pending(), 0u);
  // A later, due callback runs: the cancelled one is not just late.
  absl::Notification done;
  (void)timer.Schedule(absl::InfinitePast(), [&] { done.Notify(); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_FALSE(ran);
}

TEST(DeadlineTimerTest, StopDropsWhatIsPendingAndLaterSchedules) {
  DeadlineTimer timer;
  (void)timer.Schedule(absl::Now() + absl::Hours(1), [] {});
  timer.Stop();
  EXPECT_EQ(timer.pending(), 0u);
  (void)timer.Schedule(absl::InfinitePast(), [] {});
  EXPECT_EQ(timer.pending(), 0u);
  timer.Stop();  // Idempotent.
}

}  // namespace
}  // namespace fetchd::api

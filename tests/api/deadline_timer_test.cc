// DeadlineTimer on a fake clock: callbacks run in time order once the clock
// reaches them and not before, a cancelled one never runs, Stop() drops the
// rest. No test waits on real time: the clock moves only when the test
// advances it, and a probe callback scheduled at the new "now" shows what
// the timer has run by then (callbacks run one at a time, in time order).
#include "service/api/deadline_timer.h"

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_clock.h"

namespace fetchd::api {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kWait = absl::Seconds(30);

class DeadlineTimerTest : public ::testing::Test {
 protected:
  // Schedules a callback that records `name` and the fake time it ran at.
  void Record(absl::Time when, std::string name) {
    (void)timer_.Schedule(when, [this, name] {
      absl::MutexLock lock(&mu_);
      ran_.push_back(name);
      ran_at_.push_back(clock_.Now());
    });
  }
  // Moves the clock by `d`; returns once everything due by then has run,
  // and how many callbacks were still pending at that point.
  size_t AdvanceAndSettle(absl::Duration d) {
    clock_.Advance(d);
    absl::Notification probed;
    size_t pending = 0;
    (void)timer_.Schedule(clock_.Now(), [&] {
      pending = timer_.pending();
      probed.Notify();
    });
    timer_.ClockAdvanced();
    EXPECT_TRUE(probed.WaitForNotificationWithTimeout(kWait));
    return pending;
  }
  std::vector<std::string> ran() {
    absl::MutexLock lock(&mu_);
    return ran_;
  }

  testing::FakeClock clock_;
  DeadlineTimer timer_{&clock_};
  absl::Mutex mu_;
  std::vector<std::string> ran_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> ran_at_ ABSL_GUARDED_BY(mu_);
};

TEST_F(DeadlineTimerTest, CallbacksRunInTimeOrderOnceTheClockReachesThem) {
  const absl::Time t0 = clock_.Now();
  // Scheduled out of order; equal times run in the order scheduled.
  Record(t0 + absl::Seconds(30), "c");
  Record(t0 + absl::Seconds(10), "a");
  Record(t0 + absl::Seconds(20), "b");
  Record(t0 + absl::Seconds(20), "b2");
  EXPECT_EQ(timer_.pending(), 4u);

  EXPECT_EQ(AdvanceAndSettle(absl::Seconds(5)), 4u);  // nothing due yet
  EXPECT_TRUE(ran().empty());
  EXPECT_EQ(AdvanceAndSettle(absl::Seconds(15)), 1u);  // "c" still waits
  EXPECT_THAT(ran(), ElementsAre("a", "b", "b2"));
  EXPECT_EQ(AdvanceAndSettle(absl::Seconds(10)), 0u);
  EXPECT_THAT(ran(), ElementsAre("a", "b", "b2", "c"));
  absl::MutexLock lock(&mu_);
  // Each ran once the clock had reached its time, never before.
  EXPECT_EQ(ran_at_[0], t0 + absl::Seconds(20));
  EXPECT_EQ(ran_at_[3], t0 + absl::Seconds(30));
}

TEST_F(DeadlineTimerTest, PastTimesRunAtOnceInTimeOrder) {
  const absl::Time t0 = clock_.Now();
  // A past callback runs at once, so the timer's thread is held in a first
  // one while the two are scheduled: otherwise "later" could run before
  // "earlier" exists, and the order would be the scheduling race's.
  absl::Notification release;
  (void)timer_.Schedule(t0 - absl::Seconds(3),
                        [&] { release.WaitForNotificationWithTimeout(kWait); });
  Record(t0 - absl::Seconds(1), "later");
  Record(t0 - absl::Seconds(2), "earlier");
  release.Notify();
  EXPECT_EQ(AdvanceAndSettle(absl::ZeroDuration()), 0u);
  EXPECT_THAT(ran(), ElementsAre("earlier", "later"));
}

TEST_F(DeadlineTimerTest, CancelledCallbackNeverRuns) {
  bool cancelled_ran = false;
  const DeadlineTimer::Key key = timer_.Schedule(clock_.Now() + absl::Hours(1),
                                                 [&] { cancelled_ran = true; });
  EXPECT_EQ(timer_.pending(), 1u);
  timer_.Cancel(key);
  EXPECT_EQ(timer_.pending(), 0u);
  // Past its time, a later one runs: the cancelled one is not just late.
  Record(clock_.Now() + absl::Hours(2), "after");
  EXPECT_EQ(AdvanceAndSettle(absl::Hours(3)), 0u);
  EXPECT_THAT(ran(), ElementsAre("after"));
  EXPECT_FALSE(cancelled_ran);
}

TEST_F(DeadlineTimerTest, StopDropsWhatIsPendingAndLaterSchedules) {
  (void)timer_.Schedule(clock_.Now() + absl::Hours(1), [] {});
  timer_.Stop();
  EXPECT_EQ(timer_.pending(), 0u);
  (void)timer_.Schedule(absl::InfinitePast(), [] {});
  EXPECT_EQ(timer_.pending(), 0u);
  timer_.Stop();  // Idempotent.
}

// On the real clock, a due callback runs without any ClockAdvanced().
TEST(DeadlineTimerRealClockTest, DueCallbackRunsByItself) {
  DeadlineTimer timer;
  absl::Notification done;
  (void)timer.Schedule(RealClock::Get()->Now() - absl::Seconds(1),
                       [&] { done.Notify(); });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(kWait));
}

}  // namespace
}  // namespace fetchd::api

#include "service/core/politeness/rate_limiter.h"

#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::core::politeness {
namespace {

using ::testing::ElementsAreArray;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

// Starts `n` requests as early as the limiter allows, from kT0 on, and
// returns their start times as offsets from kT0.
std::vector<absl::Duration> StartTimes(RateLimiter& limiter, int n,
                                       absl::Time from = kT0) {
  std::vector<absl::Duration> out;
  absl::Time now = from;
  for (int i = 0; i < n; ++i) {
    now = limiter.NextAllowed(now);
    limiter.Take(now);
    out.push_back(now - kT0);
  }
  return out;
}

std::vector<absl::Duration> Millis(std::vector<int> ms) {
  std::vector<absl::Duration> out;
  for (int m : ms) out.push_back(absl::Milliseconds(m));
  return out;
}

TEST(RateLimiterTest, RateTwentyBurstOneIsFiftyMillisecondsApart) {
  RateLimiter limiter(20, 1, absl::ZeroDuration());
  EXPECT_EQ(limiter.emission_interval(), absl::Milliseconds(50));
  EXPECT_THAT(StartTimes(limiter, 5),
              ElementsAreArray(Millis({0, 50, 100, 150, 200})));
}

TEST(RateLimiterTest, BurstFiveStartsAtOnceThenFiftyMillisecondSteps) {
  RateLimiter limiter(20, 5, absl::ZeroDuration());
  EXPECT_THAT(StartTimes(limiter, 8),
              ElementsAreArray(Millis({0, 0, 0, 0, 0, 50, 100, 150})));
}

TEST(RateLimiterTest, BurstRefillsAfterIdleTimeButNeverBeyondBurst) {
  RateLimiter limiter(20, 5, absl::ZeroDuration());
  StartTimes(limiter, 5);
  // The sixth start was due at 50 ms; at 150 ms two more have been earned,
  // so three start at once and the fourth waits for the next 50 ms.
  EXPECT_THAT(StartTimes(limiter, 4, kT0 + absl::Milliseconds(150)),
              ElementsAreArray(Millis({150, 150, 150, 200})));
  // A long idle period earns exactly `burst` starts, not more.
  const absl::Time much_later = kT0 + absl::Seconds(100);
  EXPECT_THAT(StartTimes(limiter, 6, much_later),
              ElementsAreArray(
                  Millis({100000, 100000, 100000, 100000, 100000, 100050})));
}

TEST(RateLimiterTest, DecimalRateIsExact) {
  RateLimiter limiter(2.5, 1, absl::ZeroDuration());
  EXPECT_EQ(limiter.emission_interval(), absl::Milliseconds(400));
  EXPECT_THAT(StartTimes(limiter, 4),
              ElementsAreArray(Millis({0, 400, 800, 1200})));
  RateLimiter slow(0.5, 1, absl::ZeroDuration());
  EXPECT_THAT(StartTimes(slow, 3), ElementsAreArray(Millis({0, 2000, 4000})));
}

TEST(RateLimiterTest, IntervalRoundsUpSoTheRateIsNeverExceeded) {
  // 1/3 s is not a whole number of nanoseconds.
  RateLimiter limiter(3, 1, absl::ZeroDuration());
  EXPECT_EQ(limiter.emission_interval(), absl::Nanoseconds(333333334));
  const std::vector<absl::Duration> starts = StartTimes(limiter, 4);
  EXPECT_GE(starts[3], absl::Seconds(1));
}

TEST(RateLimiterTest, MinDelayWithoutRate) {
  RateLimiter limiter(0, 1, absl::Milliseconds(200));
  EXPECT_THAT(StartTimes(limiter, 4),
              ElementsAreArray(Millis({0, 200, 400, 600})));
}

TEST(RateLimiterTest, MinDelayAndBurstTogetherTakeTheLaterOfBoth) {
  // The burst would allow 3 at once, the delay spaces them 100 ms. The
  // fourth is due by rate at 250 ms but by delay at 300 ms; the fifth by
  // rate at 500 ms, later than the delay's 400 ms.
  RateLimiter limiter(4, 3, absl::Milliseconds(100));
  EXPECT_THAT(StartTimes(limiter, 5),
              ElementsAreArray(Millis({0, 100, 200, 300, 500})));
}

TEST(RateLimiterTest, NoLimitsAllowEveryStartAtOnce) {
  RateLimiter limiter(0, 0, absl::ZeroDuration());
  EXPECT_THAT(StartTimes(limiter, 3), ElementsAreArray(Millis({0, 0, 0})));
  EXPECT_TRUE(limiter.Idle(kT0));
}

TEST(RateLimiterTest, IdleOnceCaughtUp) {
  RateLimiter limiter(10, 2, absl::Milliseconds(30));
  EXPECT_TRUE(limiter.Idle(kT0));
  limiter.Take(kT0);
  EXPECT_FALSE(limiter.Idle(kT0 + absl::Milliseconds(99)));
  EXPECT_TRUE(limiter.Idle(kT0 + absl::Milliseconds(100)));
}

TEST(RateLimiterTest, StartsNeverExceedRateTimesWindowPlusBurst) {
  RateLimiter limiter(20, 5, absl::ZeroDuration());
  const std::vector<absl::Duration> starts = StartTimes(limiter, 100);
  for (size_t i = 0; i < starts.size(); ++i) {
    for (size_t j = i; j < starts.size(); ++j) {
      const double window = absl::ToDoubleSeconds(starts[j] - starts[i]);
      EXPECT_LE(static_cast<double>(j - i + 1), 20 * window + 5)
          << i << ".." << j;
    }
  }
  EXPECT_EQ(starts.back(), absl::Milliseconds(50 * 95));
}

}  // namespace
}  // namespace fetchd::core::politeness

#include "service/core/politeness/host_backoff.h"

#include <optional>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "service/core/politeness/retry_after.h"

namespace fetchd::core::politeness {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

HostBackoffConfig Config() {
  HostBackoffConfig config;
  config.max_retry_after = absl::Seconds(10);
  config.consecutive_throttles = 3;
  config.base_pause = absl::Seconds(1);
  config.max_pause = absl::Seconds(4);
  return config;
}

absl::Time At(int ms) { return kT0 + absl::Milliseconds(ms); }

TEST(HostBackoffTest, RetryAfterPausesTheHostUntilItEnds) {
  HostBackoff backoff(Config());
  EXPECT_FALSE(backoff.Paused(kT0));
  EXPECT_TRUE(backoff.OnResponse(429, absl::Seconds(2), kT0));
  EXPECT_EQ(backoff.paused_until(), kT0 + absl::Seconds(2));
  EXPECT_TRUE(backoff.Paused(At(1999)));
  EXPECT_FALSE(backoff.Paused(At(2000)));
}

TEST(HostBackoffTest, RetryAfterIsCapped) {
  HostBackoff backoff(Config());
  EXPECT_TRUE(backoff.OnResponse(503, absl::Hours(1), kT0));
  EXPECT_EQ(backoff.paused_until(), kT0 + absl::Seconds(10));
}

TEST(HostBackoffTest, RunningPauseIsOnlyExtended) {
  HostBackoff backoff(Config());
  EXPECT_TRUE(backoff.OnResponse(429, absl::Seconds(5), kT0));
  // Shorter: no change, and no new pause started.
  EXPECT_FALSE(backoff.OnResponse(429, absl::Seconds(1), At(1000)));
  EXPECT_EQ(backoff.paused_until(), At(5000));
  // Longer: extended, still not a new pause.
  EXPECT_FALSE(backoff.OnResponse(503, absl::Seconds(8), At(2000)));
  EXPECT_EQ(backoff.paused_until(), At(10000));
}

TEST(HostBackoffTest, RetryAfterZeroAndOtherStatusesStartNoPause) {
  HostBackoff backoff(Config());
  EXPECT_FALSE(backoff.OnResponse(429, absl::ZeroDuration(), kT0));
  EXPECT_FALSE(backoff.Paused(kT0));
  // Retry-After only counts on 429 and 503.
  EXPECT_FALSE(backoff.OnResponse(500, absl::Seconds(5), kT0));
  EXPECT_FALSE(backoff.OnResponse(301, absl::Seconds(5), kT0));
  EXPECT_FALSE(backoff.Paused(kT0));
}

TEST(HostBackoffTest, ConsecutiveThrottlesWithoutRetryAfterPause) {
  HostBackoff backoff(Config());
  EXPECT_FALSE(backoff.OnResponse(503, std::nullopt, At(0)));
  EXPECT_FALSE(backoff.OnResponse(429, std::nullopt, At(10)));
  EXPECT_FALSE(backoff.Paused(At(10)));
  EXPECT_TRUE(backoff.OnResponse(503, std::nullopt, At(20)));
  EXPECT_EQ(backoff.paused_until(), At(1020));
}

TEST(HostBackoffTest, StreakPausesDoubleUpToTheCap) {
  HostBackoff backoff(Config());
  for (int i = 0; i < 3; ++i) backoff.OnResponse(503, std::nullopt, kT0);
  EXPECT_EQ(backoff.paused_until(), At(1000));
  // Answers of requests in flight during the pause start nothing.
  EXPECT_FALSE(backoff.OnResponse(503, std::nullopt, At(500)));
  EXPECT_EQ(backoff.paused_until(), At(1000));
  // The first throttle after each pause starts the next, twice as long.
  EXPECT_TRUE(backoff.OnResponse(503, std::nullopt, At(1000)));
  EXPECT_EQ(backoff.paused_until(), At(3000));
  EXPECT_TRUE(backoff.OnResponse(503, std::nullopt, At(3000)));
  EXPECT_EQ(backoff.paused_until(), At(7000));
  EXPECT_TRUE(backoff.OnResponse(503, std::nullopt, At(7000)));
  EXPECT_EQ(backoff.paused_until(), At(11000));
  EXPECT_TRUE(backoff.OnResponse(503, std::nullopt, At(11000)));
  EXPECT_EQ(backoff.paused_until(), At(15000));
}

TEST(HostBackoffTest, OtherResponseEndsTheStreakAndTheDoubling) {
  HostBackoff backoff(Config());
  for (int i = 0; i < 3; ++i) backoff.OnResponse(503, std::nullopt, kT0);
  ASSERT_EQ(backoff.paused_until(), At(1000));
  EXPECT_FALSE(backoff.Idle(At(1000)));
  EXPECT_FALSE(backoff.OnResponse(200, std::nullopt, At(1000)));
  EXPECT_TRUE(backoff.Idle(At(1000)));
  // A new streak is needed, and it starts at base_pause again.
  EXPECT_FALSE(backoff.OnResponse(503, std::nullopt, At(1100)));
  EXPECT_FALSE(backoff.OnResponse(503, std::nullopt, At(1200)));
  EXPECT_TRUE(backoff.OnResponse(503, std::nullopt, At(1300)));
  EXPECT_EQ(backoff.paused_until(), At(2300));
  // A 500 is not a throttle, but ends the streak as well.
  backoff.OnResponse(500, std::nullopt, At(2300));
  EXPECT_FALSE(backoff.OnResponse(503, std::nullopt, At(2400)));
}

TEST(HostBackoffTest, StreakPauseOffWhenThresholdIsZero) {
  HostBackoffConfig config = Config();
  config.consecutive_throttles = 0;
  HostBackoff backoff(config);
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(backoff.OnResponse(503, std::nullopt, kT0));
  }
  EXPECT_FALSE(backoff.Paused(kT0));
  // Retry-After still pauses.
  EXPECT_TRUE(backoff.OnResponse(503, absl::Seconds(1), kT0));
}

TEST(ParseRetryAfterTest, DelaySeconds) {
  EXPECT_EQ(ParseRetryAfter("120", kT0), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 5 ", kT0), absl::Seconds(5));
  EXPECT_EQ(ParseRetryAfter("0", kT0), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", kT0),
            absl::InfiniteDuration());
}

TEST(ParseRetryAfterTest, HttpDateForms) {
  const absl::Time date = absl::FromCivil(
      absl::CivilSecond(1994, 11, 6, 8, 49, 37), absl::UTCTimeZone());
  const absl::Time now = date - absl::Seconds(30);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now),
            absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now),
            absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:37 1994", now),
            absl::Seconds(30));
  // A date in the past: no wait.
  EXPECT_EQ(
      ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", date + absl::Hours(1)),
      absl::ZeroDuration());
}

TEST(ParseRetryAfterTest, RejectsEverythingElse) {
  for (const char* value :
       {"", "  ", "-1", "1.5", "+3", "soon", "5s",
        "Sun, 06 Nov 1994 08:49:37 PST", "1994-11-06T08:49:37Z"}) {
    EXPECT_EQ(ParseRetryAfter(value, kT0), std::nullopt) << value;
  }
}

}  // namespace
}  // namespace fetchd::core::politeness

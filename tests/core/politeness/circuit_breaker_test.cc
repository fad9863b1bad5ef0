#include "service/core/politeness/circuit_breaker.h"

#include <optional>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fetchd::core::politeness {
namespace {

using Kind = CircuitBreaker::Decision::Kind;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

absl::Time At(double seconds) {
  return kT0 + absl::Milliseconds(static_cast<int64_t>(seconds * 1000));
}

BreakerConfig Config() {
  BreakerConfig config;
  config.consecutive_failures = 3;
  config.base_open_time = absl::Seconds(5);
  config.max_open_time = absl::Seconds(20);
  config.half_open_probes = 2;
  return config;
}

// Fails `n` non-probe attempts at `now`; returns the last transition.
std::optional<BreakerState> Fail(CircuitBreaker& breaker, int n,
                                 absl::Time now) {
  std::optional<BreakerState> last;
  for (int i = 0; i < n; ++i) {
    last = breaker.Record(BreakerOutcome::kFailure, /*probe=*/false, now);
  }
  return last;
}

// Moves an open breaker to half-open at `now` with one probe, which fails.
void FailProbe(CircuitBreaker& breaker, absl::Time now) {
  const CircuitBreaker::Decision d = breaker.Admit(now);
  ASSERT_EQ(d.kind, Kind::kProbe);
  ASSERT_EQ(breaker.Record(BreakerOutcome::kFailure, /*probe=*/true, now),
            BreakerState::kOpen);
}

TEST(CircuitBreakerTest, OpensOnConsecutiveFailuresOnly) {
  CircuitBreaker breaker(Config());
  EXPECT_EQ(Fail(breaker, 2, kT0), std::nullopt);
  // A success breaks the streak.
  EXPECT_EQ(breaker.Record(BreakerOutcome::kSuccess, false, kT0), std::nullopt);
  EXPECT_EQ(Fail(breaker, 2, kT0), std::nullopt);
  // Neutral outcomes neither break nor extend it.
  EXPECT_EQ(breaker.Record(BreakerOutcome::kNeutral, false, kT0), std::nullopt);
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_EQ(breaker.Admit(kT0).kind, Kind::kAllow);
  EXPECT_EQ(Fail(breaker, 1, kT0), BreakerState::kOpen);
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker.open_until(), At(5));
}

TEST(CircuitBreakerTest, OpenThenHalfOpenWithBoundedProbesThenClosed) {
  CircuitBreaker breaker(Config());
  Fail(breaker, 3, kT0);
  CircuitBreaker::Decision d = breaker.Admit(At(4.999));
  EXPECT_EQ(d.kind, Kind::kReject);
  EXPECT_EQ(d.until, At(5));
  EXPECT_EQ(d.entered, std::nullopt);

  // Peek tells what Admit would do and changes nothing.
  d = breaker.Peek(At(5));
  EXPECT_EQ(d.kind, Kind::kProbe);
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  EXPECT_EQ(breaker.probes_in_flight(), 0);

  d = breaker.Admit(At(5));
  EXPECT_EQ(d.kind, Kind::kProbe);
  EXPECT_EQ(d.entered, BreakerState::kHalfOpen);
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
  d = breaker.Admit(At(5));
  EXPECT_EQ(d.kind, Kind::kProbe);
  EXPECT_EQ(d.entered, std::nullopt);
  // Both probes are out: the third is refused until one ends.
  d = breaker.Admit(At(6));
  EXPECT_EQ(d.kind, Kind::kReject);
  EXPECT_EQ(d.until, absl::InfiniteFuture());
  EXPECT_EQ(breaker.probes_in_flight(), 2);

  EXPECT_EQ(breaker.Record(BreakerOutcome::kSuccess, /*probe=*/true, At(6)),
            BreakerState::kClosed);
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_EQ(breaker.Admit(At(6)).kind, Kind::kAllow);
  // The other probe ends after the breaker closed: ignored.
  EXPECT_EQ(breaker.Record(BreakerOutcome::kFailure, /*probe=*/true, At(7)),
            std::nullopt);
  EXPECT_EQ(breaker.state(), BreakerState::kClosed);
  EXPECT_EQ(breaker.probes_in_flight(), 0);
}

TEST(CircuitBreakerTest, ReTripsWithDoublingOpenTimeUpToTheCap) {
  CircuitBreaker breaker(Config());
  Fail(breaker, 3, kT0);
  EXPECT_EQ(breaker.open_until(), At(5));
  FailProbe(breaker, At(6));
  EXPECT_EQ(breaker.open_until(), At(16));  // 10 s
  FailProbe(breaker, At(16));
  EXPECT_EQ(breaker.open_until(), At(36));  // 20 s
  FailProbe(breaker, At(36));
  EXPECT_EQ(breaker.open_until(), At(56));  // capped at 20 s
  EXPECT_EQ(breaker.trips(), 4);
}

TEST(CircuitBreakerTest, TripCountResetsAfterASuccessStreak) {
  CircuitBreaker breaker(Config());
  Fail(breaker, 3, kT0);
  ASSERT_EQ(breaker.Admit(At(5)).kind, Kind::kProbe);
  ASSERT_EQ(breaker.Record(BreakerOutcome::kSuccess, true, At(5)),
            BreakerState::kClosed);
  // One success (the probe) is not a streak of 3: a trip now is the second.
  Fail(breaker, 3, At(6));
  EXPECT_EQ(breaker.open_until(), At(16));

  ASSERT_EQ(breaker.Admit(At(16)).kind, Kind::kProbe);
  ASSERT_EQ(breaker.Record(BreakerOutcome::kSuccess, true, At(16)),
            BreakerState::kClosed);
  EXPECT_FALSE(breaker.Idle());
  breaker.Record(BreakerOutcome::kSuccess, false, At(17));
  breaker.Record(BreakerOutcome::kSuccess, false, At(17));
  EXPECT_EQ(breaker.trips(), 0);
  EXPECT_TRUE(breaker.Idle());
  // Back to the base open time.
  Fail(breaker, 3, At(20));
  EXPECT_EQ(breaker.open_until(), At(25));
}

TEST(CircuitBreakerTest, ResultsOfAttemptsFromBeforeTheTripAreIgnored) {
  CircuitBreaker breaker(Config());
  Fail(breaker, 3, kT0);
  // Attempts admitted while closed end while open or half-open.
  EXPECT_EQ(breaker.Record(BreakerOutcome::kSuccess, false, At(1)),
            std::nullopt);
  EXPECT_EQ(breaker.state(), BreakerState::kOpen);
  ASSERT_EQ(breaker.Admit(At(5)).kind, Kind::kProbe);
  EXPECT_EQ(breaker.Record(BreakerOutcome::kSuccess, false, At(5)),
            std::nullopt);
  EXPECT_EQ(breaker.Record(BreakerOutcome::kFailure, false, At(5)),
            std::nullopt);
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
  // A neutral probe frees its place and decides nothing.
  EXPECT_EQ(breaker.Record(BreakerOutcome::kNeutral, true, At(5)),
            std::nullopt);
  EXPECT_EQ(breaker.state(), BreakerState::kHalfOpen);
  EXPECT_EQ(breaker.probes_in_flight(), 0);
}

TEST(CircuitBreakerTest, ThresholdZeroNeverOpens) {
  BreakerConfig config = Config();
  config.consecutive_failures = 0;
  CircuitBreaker breaker(config);
  EXPECT_EQ(Fail(breaker, 100, kT0), std::nullopt);
  EXPECT_EQ(breaker.Admit(kT0).kind, Kind::kAllow);
  EXPECT_TRUE(breaker.Idle());
}

TEST(CircuitBreakerTest, StateNamesAreMetricLabels) {
  EXPECT_STREQ(BreakerStateName(BreakerState::kClosed), "closed");
  EXPECT_STREQ(BreakerStateName(BreakerState::kOpen), "open");
  EXPECT_STREQ(BreakerStateName(BreakerState::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace fetchd::core::politeness

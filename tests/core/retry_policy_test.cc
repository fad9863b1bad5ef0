#include "service/core/retry_policy.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/random/mock_distributions.h"
#include "absl/random/mocking_bit_gen.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::core {
namespace {

using fetch::v1::ErrorKind;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// Draws per randomized check: enough that a uniform draw lands in the top
// and bottom tenth of its range with overwhelming probability.
constexpr int kDraws = 2000;

TEST(RetryPolicyTest, DefaultsMatchTheApiDocumentation) {
  EXPECT_THAT(DefaultRetryOn(),
              UnorderedElementsAre(fetch::v1::ERROR_KIND_CONNECT,
                                   fetch::v1::ERROR_KIND_DNS,
                                   fetch::v1::ERROR_KIND_CONNECT_TIMEOUT,
                                   fetch::v1::ERROR_KIND_PROTOCOL));
  EXPECT_THAT(DefaultRetryOnStatus(), ElementsAre(429u, 502u, 503u, 504u));
}

TEST(RetryPolicyTest, IsIdempotent) {
  const struct {
    absl::string_view method;
    bool idempotent;
  } kCases[] = {
      {"GET", true},     {"HEAD", true},  {"PUT", true},    {"DELETE", true},
      {"OPTIONS", true}, {"POST", false}, {"PATCH", false}, {"", false},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(IsIdempotent(c.method), c.idempotent) << c.method;
  }
}

TEST(RetryPolicyTest, FullJitterBackoffStaysWithinItsCeiling) {
  const struct {
    absl::Duration base;
    absl::Duration max;
    int retry;
    absl::Duration ceiling;
  } kCases[] = {
      {absl::Milliseconds(100), absl::Seconds(10), 1, absl::Milliseconds(100)},
      {absl::Milliseconds(100), absl::Seconds(10), 2, absl::Milliseconds(200)},
      {absl::Milliseconds(100), absl::Seconds(10), 4, absl::Milliseconds(800)},
      // 100ms * 2^7 = 12.8s: capped.
      {absl::Milliseconds(100), absl::Seconds(10), 8, absl::Seconds(10)},
      // Far past the cap; must neither overflow nor exceed it.
      {absl::Milliseconds(100), absl::Seconds(10), 100, absl::Seconds(10)},
      {absl::Milliseconds(100), absl::Seconds(10), 100000, absl::Seconds(10)},
      // A base above the cap is capped from the first retry on.
      {absl::Seconds(20), absl::Seconds(10), 1, absl::Seconds(10)},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(testing::Message() << "base " << c.base << " max " << c.max
                                    << " retry " << c.retry);
    RetryParams params;
    params.base_backoff = c.base;
    params.max_backoff = c.max;
    std::mt19937 rng(42);
    absl::Duration lowest = absl::InfiniteDuration();
    absl::Duration highest = -absl::InfiniteDuration();
    for (int i = 0; i < kDraws; ++i) {
      const absl::Duration d = FullJitterBackoff(params, c.retry, rng);
      ASSERT_GE(d, absl::ZeroDuration());
      ASSERT_LE(d, c.ceiling);
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
    }
    // Full jitter: the whole range is used, up to the ceiling.
    EXPECT_LT(lowest, c.ceiling / 10);
    EXPECT_GT(highest, c.ceiling * 9 / 10);
  }
}

TEST(RetryPolicyTest, FullJitterBackoffIsZeroWithZeroBase) {
  RetryParams params;
  params.base_backoff = absl::ZeroDuration();
  std::mt19937 rng(7);
  for (int retry : {1, 2, 10}) {
    EXPECT_EQ(FullJitterBackoff(params, retry, rng), absl::ZeroDuration());
  }
}

// The parameters every DecideRetry case starts from: three attempts, the
// default lists, 100ms..10s backoff, Retry-After honoured up to 60s.
RetryParams BaseParams() {
  RetryParams params;
  params.max_attempts = 3;
  params.base_backoff = absl::Milliseconds(100);
  params.max_backoff = absl::Seconds(10);
  params.honor_retry_after = true;
  params.max_retry_after = absl::Seconds(60);
  return params;
}

AttemptOutcome Status(uint32_t status) {
  AttemptOutcome outcome;
  outcome.status = status;
  outcome.request_sent = true;
  return outcome;
}

AttemptOutcome Error(ErrorKind error, bool request_sent) {
  AttemptOutcome outcome;
  outcome.error = error;
  outcome.request_sent = request_sent;
  return outcome;
}

AttemptOutcome WithRetryAfter(AttemptOutcome outcome, absl::Duration after) {
  outcome.retry_after = after;
  return outcome;
}

// An expected retry: its reason and the range its delay must fall in.
struct Want {
  RetryReason reason;
  absl::Duration min_delay;
  absl::Duration max_delay;
};

struct DecideCase {
  std::string name;
  RetryParams params = BaseParams();
  AttemptOutcome outcome;
  int attempts_made = 1;
  bool idempotent = true;
  absl::Duration time_left = absl::InfiniteDuration();
  // nullopt: the result is final.
  std::optional<Want> want = std::nullopt;
};

std::vector<DecideCase> DecideCases() {
  std::vector<DecideCase> cases;
  // A first retry: any delay up to base_backoff.
  const Want kStatusRetry{RetryReason::kStatus, absl::ZeroDuration(),
                          absl::Milliseconds(100)};
  const Want kErrorRetry{RetryReason::kError, absl::ZeroDuration(),
                         absl::Milliseconds(100)};

  auto add = [&](DecideCase c) { cases.push_back(std::move(c)); };

  add({.name = "success 200 is final", .outcome = Status(200)});
  add({.name = "503 is retried by default",
       .outcome = Status(503),
       .want = kStatusRetry});
  for (uint32_t status : {429u, 502u, 504u}) {
    add({.name = "default status " + std::to_string(status),
         .outcome = Status(status),
         .want = kStatusRetry});
  }
  add({.name = "404 is final", .outcome = Status(404)});
  add({.name = "500 is final by default", .outcome = Status(500)});
  {
    // fail_on_http_error turns the status into an error; still a status
    // decision.
    AttemptOutcome outcome = Status(503);
    outcome.error = fetch::v1::ERROR_KIND_HTTP_STATUS;
    add({.name = "HTTP_STATUS error uses the status list",
         .outcome = outcome,
         .want = kStatusRetry});
  }
  add({.name = "CONNECT error is retried",
       .outcome = Error(fetch::v1::ERROR_KIND_CONNECT, false),
       .want = kErrorRetry});
  add({.name = "PROTOCOL error after sending, idempotent",
       .outcome = Error(fetch::v1::ERROR_KIND_PROTOCOL, true),
       .want = kErrorRetry});
  add({.name = "TLS error is final by default",
       .outcome = Error(fetch::v1::ERROR_KIND_TLS, false)});
  add({.name = "TOTAL_TIMEOUT is final by default",
       .outcome = Error(fetch::v1::ERROR_KIND_TOTAL_TIMEOUT, true)});
  add({.name = "attempts exhausted",
       .outcome = Status(503),
       .attempts_made = 3});
  {
    RetryParams params = BaseParams();
    params.max_attempts = 1;
    add({.name = "max_attempts 1 never retries",
         .params = params,
         .outcome = Error(fetch::v1::ERROR_KIND_CONNECT, false)});
  }
  add({.name = "second retry doubles the ceiling",
       .outcome = Status(503),
       .attempts_made = 2,
       .want = Want{RetryReason::kStatus, absl::ZeroDuration(),
                    absl::Milliseconds(200)}});
  add({.name = "POST sent is not retried",
       .outcome = Status(503),
       .idempotent = false});
  add({.name = "POST reset after sending is not retried",
       .outcome = Error(fetch::v1::ERROR_KIND_PROTOCOL, true),
       .idempotent = false});
  add({.name = "POST not sent (connect failure) is retried",
       .outcome = Error(fetch::v1::ERROR_KIND_CONNECT, false),
       .idempotent = false,
       .want = kErrorRetry});
  {
    RetryParams params = BaseParams();
    params.retry_non_idempotent = true;
    add({.name = "POST sent with retry_non_idempotent",
         .params = params,
         .outcome = Status(503),
         .idempotent = false,
         .want = kStatusRetry});
  }
  add({.name = "Retry-After 7s on 503 is honoured",
       .outcome = WithRetryAfter(Status(503), absl::Seconds(7)),
       .want =
           Want{RetryReason::kRetryAfter, absl::Seconds(7), absl::Seconds(7)}});
  add({.name = "Retry-After 7s on 429 is honoured",
       .outcome = WithRetryAfter(Status(429), absl::Seconds(7)),
       .want =
           Want{RetryReason::kRetryAfter, absl::Seconds(7), absl::Seconds(7)}});
  add({.name = "Retry-After on 502 is ignored",
       .outcome = WithRetryAfter(Status(502), absl::Seconds(7)),
       .want = kStatusRetry});
  add({.name = "Retry-After shorter than the backoff keeps the backoff",
       .outcome = WithRetryAfter(Status(503), absl::ZeroDuration()),
       .want = kStatusRetry});
  add({.name = "Retry-After capped by max_retry_after",
       .outcome = WithRetryAfter(Status(503), absl::Seconds(120)),
       .want = Want{RetryReason::kRetryAfter, absl::Seconds(60),
                    absl::Seconds(60)}});
  {
    RetryParams params = BaseParams();
    params.honor_retry_after = false;
    add({.name = "honor_retry_after false uses the backoff",
         .params = params,
         .outcome = WithRetryAfter(Status(503), absl::Seconds(7)),
         .want = kStatusRetry});
  }
  add({.name = "Retry-After past the deadline is final",
       .outcome = WithRetryAfter(Status(503), absl::Seconds(7)),
       .time_left = absl::Seconds(5)});
  add({.name = "delay equal to the time left is final",
       .outcome = WithRetryAfter(Status(503), absl::Seconds(7)),
       .time_left = absl::Seconds(7)});
  add({.name = "delay just inside the time left",
       .outcome = WithRetryAfter(Status(503), absl::Seconds(7)),
       .time_left = absl::Seconds(7) + absl::Nanoseconds(1),
       .want =
           Want{RetryReason::kRetryAfter, absl::Seconds(7), absl::Seconds(7)}});
  add({.name = "no time left is final",
       .outcome = Error(fetch::v1::ERROR_KIND_CONNECT, false),
       .time_left = absl::ZeroDuration()});
  {
    RetryParams params = BaseParams();
    params.retry_on = {fetch::v1::ERROR_KIND_TLS};
    add({.name = "custom retry_on adds TLS",
         .params = params,
         .outcome = Error(fetch::v1::ERROR_KIND_TLS, false),
         .want = kErrorRetry});
    add({.name = "custom retry_on replaces the default kinds",
         .params = params,
         .outcome = Error(fetch::v1::ERROR_KIND_CONNECT, false)});
  }
  {
    RetryParams params = BaseParams();
    params.retry_on_status = {500};
    add({.name = "custom retry_on_status adds 500",
         .params = params,
         .outcome = Status(500),
         .want = kStatusRetry});
    add({.name = "custom retry_on_status replaces the default statuses",
         .params = params,
         .outcome = Status(503)});
    add({.name = "custom retry_on_status leaves error kinds alone",
         .params = params,
         .outcome = Error(fetch::v1::ERROR_KIND_CONNECT, false),
         .want = kErrorRetry});
  }
  return cases;
}

TEST(RetryPolicyTest, DecideRetry) {
  for (const DecideCase& c : DecideCases()) {
    SCOPED_TRACE(c.name);
    std::mt19937 rng(1234);
    // The delay is random: decide many times, every decision must agree.
    for (int i = 0; i < kDraws / 10; ++i) {
      const std::optional<RetryDecision> decision = DecideRetry(
          c.params, c.outcome, c.attempts_made, c.idempotent, c.time_left, rng);
      ASSERT_EQ(decision.has_value(), c.want.has_value());
      if (!decision.has_value()) continue;
      ASSERT_EQ(decision->reason, c.want->reason);
      ASSERT_GE(decision->delay, c.want->min_delay);
      ASSERT_LE(decision->delay, c.want->max_delay);
      ASSERT_LT(decision->delay, c.time_left);
    }
  }
}

// A short deadline turns some draws of the backoff into final results and
// never yields a delay that ends past the deadline.
TEST(RetryPolicyTest, DecideRetryNeverSchedulesPastTheDeadline) {
  RetryParams params = BaseParams();
  params.base_backoff = absl::Seconds(1);
  const absl::Duration time_left = absl::Milliseconds(500);
  std::mt19937 rng(99);
  int retried = 0;
  int final_results = 0;
  for (int i = 0; i < kDraws; ++i) {
    const std::optional<RetryDecision> decision =
        DecideRetry(params, Status(503), 1, true, time_left, rng);
    if (decision.has_value()) {
      ++retried;
      ASSERT_LT(decision->delay, time_left);
    } else {
      ++final_results;
    }
  }
  EXPECT_GT(retried, 0);
  EXPECT_GT(final_results, 0);
}

// fetchd's own limits (response headers or body too large) end an attempt
// the same way every time: never retried, even when the kind is listed.
TEST(RetryPolicyTest, OverLimitIsNeverRetried) {
  RetryParams params = BaseParams();
  params.retry_on = {fetch::v1::ERROR_KIND_PROTOCOL,
                     fetch::v1::ERROR_KIND_BODY_TOO_LARGE};
  std::mt19937 rng(7);
  for (const ErrorKind kind :
       {fetch::v1::ERROR_KIND_PROTOCOL, fetch::v1::ERROR_KIND_BODY_TOO_LARGE}) {
    AttemptOutcome outcome;
    outcome.error = kind;
    outcome.request_sent = true;
    EXPECT_TRUE(DecideRetry(params, outcome, 1, true, absl::Seconds(10), rng)
                    .has_value());
    outcome.over_limit = true;
    EXPECT_FALSE(DecideRetry(params, outcome, 1, true, absl::Seconds(10), rng)
                     .has_value());
  }
}

// The random source mocked: each retry draws uniformly from [0, ceiling]
// in microseconds, the ceiling doubling from base_backoff up to
// max_backoff. The mock returns the ceiling, so the exact sequence of
// delays is pinned.
TEST(RetryPolicyTest, BackoffSequenceIsPinnedWithAMockedRandomSource) {
  RetryParams params;
  params.max_attempts = 8;
  params.base_backoff = absl::Milliseconds(100);
  params.max_backoff = absl::Milliseconds(1000);
  absl::MockingBitGen rng;
  const int64_t kCeilings[] = {100000,  200000,  400000, 800000,
                               1000000, 1000000, 1000000};
  {
    ::testing::InSequence in_order;
    for (int64_t ceiling : kCeilings) {
      EXPECT_CALL(absl::MockUniform<int64_t>(),
                  Call(absl::IntervalClosed, rng, int64_t{0}, ceiling))
          .WillOnce(::testing::Return(ceiling));
    }
  }
  std::vector<absl::Duration> delays;
  for (int attempts = 1; attempts < params.max_attempts; ++attempts) {
    AttemptOutcome outcome;
    outcome.status = 503;
    const std::optional<RetryDecision> d = DecideRetry(
        params, outcome, attempts, /*idempotent=*/true, absl::Hours(1), rng);
    ASSERT_TRUE(d.has_value()) << attempts;
    EXPECT_EQ(d->reason, RetryReason::kStatus);
    delays.push_back(d->delay);
  }
  EXPECT_THAT(
      delays,
      ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200),
                  absl::Milliseconds(400), absl::Milliseconds(800),
                  absl::Seconds(1), absl::Seconds(1), absl::Seconds(1)));
}

// The low end of the draw, and a Retry-After longer than it: the header
// wins, its reason says so; shorter, the drawn backoff stays.
TEST(RetryPolicyTest, RetryAfterReplacesAShorterDrawnDelay) {
  RetryParams params;
  params.max_attempts = 3;
  params.base_backoff = absl::Milliseconds(500);
  absl::MockingBitGen rng;
  EXPECT_CALL(absl::MockUniform<int64_t>(),
              Call(absl::IntervalClosed, rng, int64_t{0}, int64_t{500000}))
      .WillOnce(::testing::Return(int64_t{0}));
  EXPECT_CALL(absl::MockUniform<int64_t>(),
              Call(absl::IntervalClosed, rng, int64_t{0}, int64_t{1000000}))
      .WillOnce(::testing::Return(int64_t{900000}));
  AttemptOutcome outcome;
  outcome.status = 429;
  outcome.retry_after = absl::Milliseconds(700);
  std::optional<RetryDecision> first =
      DecideRetry(params, outcome, 1, true, absl::Hours(1), rng);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->delay, absl::Milliseconds(700));
  EXPECT_EQ(first->reason, RetryReason::kRetryAfter);
  std::optional<RetryDecision> second =
      DecideRetry(params, outcome, 2, true, absl::Hours(1), rng);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->delay, absl::Milliseconds(900));
  EXPECT_EQ(second->reason, RetryReason::kStatus);
}

TEST(RetryPolicyTest, RetryableReasonClassifiesStatusesAndKinds) {
  RetryParams defaults;
  EXPECT_EQ(RetryableReason(defaults, fetch::v1::ERROR_KIND_NONE, 503),
            RetryReason::kStatus);
  EXPECT_EQ(RetryableReason(defaults, fetch::v1::ERROR_KIND_HTTP_STATUS, 429),
            RetryReason::kStatus);
  EXPECT_EQ(RetryableReason(defaults, fetch::v1::ERROR_KIND_NONE, 500),
            std::nullopt);
  EXPECT_EQ(RetryableReason(defaults, fetch::v1::ERROR_KIND_CONNECT, 0),
            RetryReason::kError);
  EXPECT_EQ(RetryableReason(defaults, fetch::v1::ERROR_KIND_TLS, 0),
            std::nullopt);
  RetryParams own;
  own.retry_on = {fetch::v1::ERROR_KIND_HTTP_STATUS};
  own.retry_on_status = {500};
  // A status is the status list's decision, even with HTTP_STATUS listed.
  EXPECT_EQ(RetryableReason(own, fetch::v1::ERROR_KIND_HTTP_STATUS, 404),
            std::nullopt);
  EXPECT_EQ(RetryableReason(own, fetch::v1::ERROR_KIND_HTTP_STATUS, 500),
            RetryReason::kStatus);
  EXPECT_EQ(RetryableReason(own, fetch::v1::ERROR_KIND_CONNECT, 0),
            std::nullopt);
}

}  // namespace
}  // namespace fetchd::core

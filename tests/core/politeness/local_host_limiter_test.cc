#include "service/core/politeness/local_host_limiter.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/core/politeness/rule_set.h"

namespace fetchd::core::politeness {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kApi[] = "https://api.test:443";
constexpr char kWeb[] = "https://a.web.test:443";
constexpr char kFlaky[] = "http://flaky.test:80";
constexpr char kSlow[] = "http://slow.test:80";
constexpr char kOther[] = "http://other.test:80";

const absl::Time kT0 = absl::FromUnixSeconds(1000);

absl::Time At(int ms) { return kT0 + absl::Milliseconds(ms); }

HostRule Rule(std::string name, std::string host) {
  HostRule rule;
  rule.name = std::move(name);
  rule.hosts = {std::move(host)};
  return rule;
}

std::shared_ptr<const RuleSet> Rules() {
  HostRule api = Rule("api", "api.test");
  api.rate = 20;
  api.max_concurrency = 2;
  HostRule web = Rule("web", "*.web.test");
  web.min_delay = absl::Milliseconds(200);
  web.max_concurrency = 1;
  web.max_queue = 2;
  HostRule flaky = Rule("flaky", "flaky.test");
  flaky.breaker.consecutive_failures = 2;
  flaky.breaker.base_open_time = absl::Seconds(5);
  flaky.breaker.max_open_time = absl::Seconds(20);
  HostRule slow = Rule("slow", "slow.test");
  slow.adaptive = true;
  slow.max_concurrency = 8;
  HostRule fallback;
  fallback.max_concurrency = 4;
  absl::StatusOr<RuleSet> rules = RuleSet::Create(
      fallback,
      {std::move(api), std::move(web), std::move(flaky), std::move(slow)});
  EXPECT_TRUE(rules.ok()) << rules.status();
  return std::make_shared<const RuleSet>(*std::move(rules));
}

LocalHostLimiter::Options Options() {
  LocalHostLimiter::Options options;
  options.backoff.max_retry_after = absl::Seconds(10);
  options.backoff.consecutive_throttles = 3;
  options.backoff.base_pause = absl::Seconds(1);
  options.backoff.max_pause = absl::Seconds(4);
  options.idle_ttl = absl::Seconds(60);
  options.sweep_interval = absl::Seconds(10);
  return options;
}

AttemptResult Response(int status,
                       std::optional<absl::Duration> retry_after = {}) {
  return AttemptResult{AttemptResult::Kind::kResponse, status, retry_after};
}

AttemptResult ConnectFailed() {
  return AttemptResult{AttemptResult::Kind::kConnectFailed, 0, std::nullopt};
}

// A copy: callers pass the temporary that Stats() returns.
RuleStats StatsOf(const std::vector<RuleStats>& stats,
                  const std::string& rule) {
  for (const RuleStats& s : stats) {
    if (s.rule == rule) return s;
  }
  ADD_FAILURE() << "no stats for rule " << rule;
  return RuleStats();
}

class LocalHostLimiterTest : public ::testing::Test {
 protected:
  // Reserves at `now` and expects kGo; returns the permit.
  Permit Go(const std::string& key, absl::Time now) {
    Admission a = limiter_.Reserve(key, now);
    EXPECT_EQ(a.kind, Admission::Kind::kGo)
        << key << " at " << absl::FormatDuration(now - kT0);
    return a.permit;
  }
  void Done(const std::string& key, absl::Time now,
            const AttemptResult& result = Response(200),
            const Permit& permit = {}) {
    EXPECT_TRUE(limiter_.Release(key, permit, result, now));
  }

  LocalHostLimiter limiter_{Rules(), Options()};
};

TEST_F(LocalHostLimiterTest, EachHostFollowsItsOwnRule) {
  EXPECT_EQ(limiter_.Rule(kApi).name, "api");
  EXPECT_EQ(limiter_.Rule(kWeb).name, "web");
  EXPECT_EQ(limiter_.Rule(kOther).name, "default");

  // api: 20/s, burst 1, two at once.
  Go(kApi, At(0));
  Admission a = limiter_.Reserve(kApi, At(0));
  EXPECT_EQ(a.kind, Admission::Kind::kWait);
  EXPECT_EQ(a.wait_reason, WaitReason::kRate);
  EXPECT_EQ(a.until, At(50));
  EXPECT_EQ(limiter_.NextReady(kApi, At(0)), At(50));
  Go(kApi, At(50));
  a = limiter_.Reserve(kApi, At(100));
  EXPECT_EQ(a.kind, Admission::Kind::kWait);
  EXPECT_EQ(a.wait_reason, WaitReason::kConcurrency);
  EXPECT_EQ(a.until, absl::InfiniteFuture());
  Done(kApi, At(100));
  Go(kApi, At(100));

  // web: one at once, 200 ms between starts; unaffected by api.
  Go(kWeb, At(0));
  EXPECT_EQ(limiter_.Reserve(kWeb, At(0)).wait_reason,
            WaitReason::kConcurrency);
  Done(kWeb, At(10));
  a = limiter_.Reserve(kWeb, At(10));
  EXPECT_EQ(a.kind, Admission::Kind::kWait);
  EXPECT_EQ(a.wait_reason, WaitReason::kRate);
  EXPECT_EQ(a.until, At(200));
  Go(kWeb, At(200));

  // default: four at once, no rate.
  for (int i = 0; i < 4; ++i) Go(kOther, At(0));
  EXPECT_EQ(limiter_.Reserve(kOther, At(0)).wait_reason,
            WaitReason::kConcurrency);
}

TEST_F(LocalHostLimiterTest, RetryAfterPausesTheHostForEveryRequest) {
  Go(kOther, At(0));
  Go(kOther, At(0));
  Done(kOther, At(100), Response(429, absl::Seconds(2)));
  // The other request in flight is not touched; new ones wait.
  Admission a = limiter_.Reserve(kOther, At(1000));
  EXPECT_EQ(a.kind, Admission::Kind::kWait);
  EXPECT_EQ(a.wait_reason, WaitReason::kPaused);
  EXPECT_EQ(a.until, At(2100));
  EXPECT_EQ(limiter_.NextReady(kOther, At(1000)), At(2100));
  // Other hosts go on.
  Go(kApi, At(1000));
  std::vector<RuleStats> stats = limiter_.Stats(At(1000));
  EXPECT_EQ(StatsOf(stats, "default").hosts_paused, 1);
  EXPECT_EQ(StatsOf(stats, "default").backoffs_started, 1u);
  EXPECT_EQ(StatsOf(stats, "api").hosts_paused, 0);
  Go(kOther, At(2100));
  EXPECT_EQ(StatsOf(limiter_.Stats(At(2100)), "default").hosts_paused, 0);
}

TEST_F(LocalHostLimiterTest, RetryAfterIsCapped) {
  Go(kOther, At(0));
  Done(kOther, At(0), Response(503, absl::Hours(2)));
  EXPECT_EQ(limiter_.NextReady(kOther, At(0)), At(10000));
}

TEST_F(LocalHostLimiterTest, BreakerOpensRejectsAndRecoversThroughAProbe) {
  Go(kFlaky, At(0));
  Go(kFlaky, At(0));
  Done(kFlaky, At(10), ConnectFailed());
  Done(kFlaky, At(20), ConnectFailed());

  Admission a = limiter_.Reserve(kFlaky, At(30));
  ASSERT_EQ(a.kind, Admission::Kind::kReject);
  EXPECT_EQ(a.rejection.reason, RejectReason::kCircuitOpen);
  EXPECT_EQ(a.rejection.until, At(5020));
  EXPECT_THAT(a.rejection.message,
              HasSubstr("politeness rule \"flaky\": circuit breaker of "
                        "http://flaky.test:80 is open"));
  std::optional<Rejection> queued = limiter_.CheckQueue(kFlaky, 0, At(30));
  ASSERT_TRUE(queued.has_value());
  EXPECT_EQ(queued->reason, RejectReason::kCircuitOpen);
  EXPECT_EQ(limiter_.NextReady(kFlaky, At(30)), At(5020));
  EXPECT_EQ(StatsOf(limiter_.Stats(At(30)), "flaky").breakers_open, 1);
  EXPECT_EQ(StatsOf(limiter_.Stats(At(5020)), "flaky").breakers_half_open, 1);

  // Open time over: one probe, the rest refused until it ends.
  Permit probe = Go(kFlaky, At(5020));
  EXPECT_TRUE(probe.probe);
  a = limiter_.Reserve(kFlaky, At(5030));
  ASSERT_EQ(a.kind, Admission::Kind::kReject);
  EXPECT_EQ(a.rejection.until, absl::InfiniteFuture());
  Done(kFlaky, At(5040), Response(200), probe);
  Permit normal = Go(kFlaky, At(5050));
  EXPECT_FALSE(normal.probe);

  const RuleStats s = StatsOf(limiter_.Stats(At(5050)), "flaky");
  EXPECT_EQ(s.breakers_open, 0);
  EXPECT_EQ(s.breaker_opened, 1u);
  EXPECT_EQ(s.breaker_half_opened, 1u);
  EXPECT_EQ(s.breaker_closed, 1u);
}

TEST_F(LocalHostLimiterTest, FiveHundredsTripTheBreakerButFourHundredsDoNot) {
  for (int i = 0; i < 5; ++i) {
    Go(kFlaky, At(i));
    Done(kFlaky, At(i), Response(404));
  }
  EXPECT_EQ(limiter_.Reserve(kFlaky, At(10)).kind, Admission::Kind::kGo);
  Done(kFlaky, At(10), Response(500));
  Go(kFlaky, At(11));
  Done(kFlaky, At(11), Response(502));
  EXPECT_EQ(limiter_.Reserve(kFlaky, At(12)).kind, Admission::Kind::kReject);
}

TEST_F(LocalHostLimiterTest, RetryBudgetDeniesRetriesOverIt) {
  Go(kOther, At(0));
  // One attempt in flight: the budget is its floor.
  const int floor = HostRule().retry_budget.min_retry_concurrency;
  for (int i = 0; i < floor; ++i)
    EXPECT_TRUE(limiter_.TryRetry(kOther, At(0)).ok());
  absl::Status denied = limiter_.TryRetry(kOther, At(0));
  EXPECT_EQ(denied.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(
      denied.message(),
      HasSubstr(absl::StrCat("politeness rule \"default\": retry budget of the "
                             "host exhausted: ",
                             floor, " retries outstanding")));
  EXPECT_THAT(denied.message(), HasSubstr("http://other.test:80"));
  limiter_.EndRetry(kOther, At(1));
  EXPECT_TRUE(limiter_.TryRetry(kOther, At(1)).ok());
  EXPECT_EQ(StatsOf(limiter_.Stats(At(1)), "default").retries_denied, 1u);
}

TEST_F(LocalHostLimiterTest, QueueFullOnlyPastMaxQueue) {
  EXPECT_EQ(limiter_.CheckQueue(kWeb, 1, At(0)), std::nullopt);
  std::optional<Rejection> full = limiter_.CheckQueue(kWeb, 2, At(0));
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->reason, RejectReason::kQueueFull);
  EXPECT_EQ(full->message,
            "queue full: politeness rule \"web\": 2 requests already wait for "
            "https://a.web.test:443 (max_queue 2)");
  // The default rule's queue is much longer.
  EXPECT_EQ(limiter_.CheckQueue(kOther, 2, At(0)), std::nullopt);
  // Checking creates no state.
  EXPECT_EQ(limiter_.tracked_hosts(), 0u);
}

TEST_F(LocalHostLimiterTest, AdaptiveRuleLowersItsLimitOnOverload) {
  for (int i = 0; i < 8; ++i) Go(kSlow, At(0));
  EXPECT_EQ(limiter_.Reserve(kSlow, At(0)).wait_reason,
            WaitReason::kConcurrency);
  Done(kSlow, At(10), Response(503));
  // Limit 4 with 7 in flight: waits, even after three more end.
  for (int i = 0; i < 3; ++i) Done(kSlow, At(20), Response(200));
  EXPECT_EQ(limiter_.Reserve(kSlow, At(20)).wait_reason,
            WaitReason::kConcurrency);
  EXPECT_EQ(StatsOf(limiter_.Stats(At(20)), "slow").adaptive_limit_min, 4);
  Done(kSlow, At(30), Response(200));
  Go(kSlow, At(30));
  // A rule without adaptive keeps its max_concurrency whatever happens.
  EXPECT_EQ(StatsOf(limiter_.Stats(At(30)), "default").adaptive_limit_min, 4);
  for (int i = 0; i < 4; ++i) Go(kOther, At(30));
  Done(kOther, At(40), Response(503));
  Done(kOther, At(40), Response(200));
  Go(kOther, At(40));
  Go(kOther, At(40));
}

TEST_F(LocalHostLimiterTest, IdleHostsAreDroppedByTheSweep) {
  // State outlives the attempt (the next one needs no rule match)...
  Go(kOther, At(0));
  EXPECT_EQ(limiter_.tracked_hosts(), 1u);
  Done(kOther, At(10));
  EXPECT_EQ(limiter_.tracked_hosts(), 1u);
  // ...until a sweep finds it as good as new.
  limiter_.Sweep(At(10));
  EXPECT_EQ(limiter_.tracked_hosts(), 0u);

  // A thousand hosts come and go: one sweep leaves no state.
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("https://h", i, ".test:443");
    Go(key, At(20));
    Done(key, At(20));
  }
  EXPECT_EQ(limiter_.tracked_hosts(), 1000u);
  limiter_.Sweep(At(20));
  EXPECT_EQ(limiter_.tracked_hosts(), 0u);

  // A rate-limited host stays until the rate has caught up.
  Go(kApi, At(0));
  Done(kApi, At(10));
  EXPECT_EQ(limiter_.tracked_hosts(), 1u);
  limiter_.Sweep(At(49));
  EXPECT_EQ(limiter_.tracked_hosts(), 1u);
  limiter_.Sweep(At(50));
  EXPECT_EQ(limiter_.tracked_hosts(), 0u);
}

TEST(LocalHostLimiterSweepTest, ForgetsStaleHostsButNotPausedOrOpenOnes) {
  LocalHostLimiter::Options options = Options();
  options.idle_ttl = absl::Seconds(1);
  options.sweep_interval = absl::Hours(1);
  LocalHostLimiter limiter(Rules(), options);
  const auto attempt = [&](const std::string& key,
                           const AttemptResult& result) {
    ASSERT_EQ(limiter.Reserve(key, kT0).kind, Admission::Kind::kGo) << key;
    ASSERT_TRUE(limiter.Release(key, Permit{}, result, kT0));
  };
  // A failure streak under the threshold (flaky opens at 2).
  attempt(kFlaky, ConnectFailed());
  // A lowered adaptive limit.
  attempt(kSlow, Response(503));
  // A breaker open for 5 s (the default rule opens at 5 failures).
  constexpr char kDown[] = "http://down.test:80";
  for (int i = 0; i < 5; ++i) attempt(kDown, ConnectFailed());
  // A pause until 10 s (Retry-After capped).
  attempt(kOther, Response(429, absl::Seconds(100)));
  ASSERT_EQ(limiter.tracked_hosts(), 4u);

  limiter.Sweep(At(999));
  EXPECT_EQ(limiter.tracked_hosts(), 4u);
  // idle_ttl over: the streak and the adaptive limit are forgotten.
  limiter.Sweep(At(1000));
  EXPECT_EQ(limiter.tracked_hosts(), 2u);
  EXPECT_EQ(StatsOf(limiter.Stats(At(1000)), "default").breakers_open, 1);
  EXPECT_EQ(StatsOf(limiter.Stats(At(1000)), "default").hosts_paused, 1);
  // The open breaker is kept while open, the pause while it runs.
  limiter.Sweep(At(4999));
  EXPECT_EQ(limiter.tracked_hosts(), 2u);
  limiter.Sweep(At(5000));
  EXPECT_EQ(limiter.tracked_hosts(), 1u);
  limiter.Sweep(At(9999));
  EXPECT_EQ(limiter.tracked_hosts(), 1u);
  limiter.Sweep(At(10000));
  EXPECT_EQ(limiter.tracked_hosts(), 0u);
}

TEST_F(LocalHostLimiterTest, ReserveSweepsEverySweepInterval) {
  Go(kApi, At(0));  // the first call sweeps; the next sweep is at 10 s
  Done(kApi, At(10));
  ASSERT_EQ(limiter_.tracked_hosts(), 1u);
  Go(kOther, At(9999));
  EXPECT_EQ(limiter_.tracked_hosts(), 2u);
  Go(kOther, At(10000));
  // api's rate caught up long ago: swept; other is in flight.
  EXPECT_EQ(limiter_.tracked_hosts(), 1u);
}

TEST_F(LocalHostLimiterTest, StatsHaveOneEntryPerRuleDefaultLast) {
  std::vector<std::string> names;
  for (const RuleStats& s : limiter_.Stats(kT0)) names.push_back(s.rule);
  EXPECT_THAT(names, ElementsAre("api", "web", "flaky", "slow", "default"));
  EXPECT_EQ(limiter_.NextReady(kOther, kT0), kT0);
}

}  // namespace
}  // namespace fetchd::core::politeness

#include "service/core/host_scheduler.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/core/batch.h"
#include "service/core/fetch_job.h"
#include "service/core/politeness/local_host_limiter.h"
#include "service/core/politeness/rule_set.h"

namespace fetchd::core {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr char kHostA[] = "http://a.test:80";
constexpr char kHostB[] = "http://b.test:80";
constexpr char kHostC[] = "http://c.test:80";

// The scheduler never delivers; the subclass only exists because Batch is
// abstract. It records what it would send so a misuse would be visible.
class RecordingBatch : public Batch {
 public:
  explicit RecordingBatch(const Options& options = {})
      : Batch(options, nullptr) {}
  void Deliver(fetch::v1::FetchResult result, bool /*holds_window*/) override {
    delivered.push_back(result.index());
  }
  std::vector<uint32_t> delivered;
};

std::shared_ptr<RecordingBatch> MakeBatch(const Batch::Options& options = {}) {
  return std::make_shared<RecordingBatch>(options);
}

Batch::Options Concurrency(int max_concurrency) {
  Batch::Options options;
  options.max_concurrency = max_concurrency;
  return options;
}

std::unique_ptr<FetchJob> MakeJob(
    const std::shared_ptr<RecordingBatch>& batch, const std::string& host_key,
    uint32_t index, absl::Duration queue_timeout = absl::Seconds(60)) {
  auto job = std::make_unique<FetchJob>();
  job->batch = batch;
  job->index = index;
  job->host_key = host_key;
  job->url = host_key + "/" + std::to_string(index);
  job->queue_timeout = queue_timeout;
  return job;
}

// A fixed point in time; the scheduler only compares and subtracts.
const absl::Time kT0 = absl::FromUnixSeconds(1000);

using politeness::AttemptResult;
using politeness::HostRule;
using politeness::LocalHostLimiter;
using politeness::RuleSet;

// The limiter a scheduler consults: a default rule (max_concurrency as the
// old Limits::max_per_host) and any `rules`. Must outlive the scheduler.
struct Politeness {
  explicit Politeness(int max_per_host = 16,
                      std::vector<HostRule> host_rules = {},
                      const LocalHostLimiter::Options& options = {})
      : rules(MakeRules(max_per_host, std::move(host_rules))),
        limiter(rules, options) {}

  static std::shared_ptr<const RuleSet> MakeRules(
      int max_per_host, std::vector<HostRule> host_rules) {
    HostRule default_rule;
    default_rule.max_concurrency = max_per_host;
    absl::StatusOr<RuleSet> set =
        RuleSet::Create(std::move(default_rule), std::move(host_rules));
    EXPECT_TRUE(set.ok()) << set.status();
    return std::make_shared<const RuleSet>(*std::move(set));
  }

  std::shared_ptr<const RuleSet> rules;
  LocalHostLimiter limiter;
};

AttemptResult Response(int status,
                       std::optional<absl::Duration> retry_after = {}) {
  AttemptResult result;
  result.kind = AttemptResult::Kind::kResponse;
  result.status = status;
  result.retry_after = retry_after;
  return result;
}

AttemptResult ConnectFailed() {
  AttemptResult result;
  result.kind = AttemptResult::Kind::kConnectFailed;
  return result;
}

// Ends an attempt at `host_key` with a 200. Release reads a job's host key,
// permit and retry place only: a stand-in job does for a plain attempt.
bool ReleaseOk(HostScheduler& scheduler, const std::string& host_key,
               absl::Time now = kT0) {
  FetchJob stand_in;
  stand_in.host_key = host_key;
  return scheduler.Release(stand_in, Response(200), now);
}

struct Started {
  const Batch* batch;
  uint32_t index;
  std::string host_key;
  bool operator==(const Started&) const = default;
};

// Calls Next(now) until it returns null, releasing nothing.
std::vector<Started> DrainStartable(HostScheduler& scheduler, absl::Time now) {
  std::vector<Started> out;
  while (std::unique_ptr<FetchJob> job = scheduler.Next(now)) {
    out.push_back({job->batch.get(), job->index, job->host_key});
  }
  return out;
}

std::vector<uint32_t> Indices(const HostScheduler::JobList& jobs) {
  std::vector<uint32_t> out;
  for (const auto& job : jobs) out.push_back(job->index);
  return out;
}

TEST(HostSchedulerTest, EmptySchedulerHasNothingToDo) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  EXPECT_EQ(scheduler.Next(kT0), nullptr);
  EXPECT_EQ(scheduler.NextEvent(), absl::InfiniteFuture());
  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Hours(1)).empty());
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.in_flight(), 0);
}

TEST(HostSchedulerTest, PerHostLimitHoldsJobsUntilRelease) {
  Politeness polite(2);
  HostScheduler scheduler({.max_in_flight = 100}, polite.limiter);
  auto batch = MakeBatch();
  for (uint32_t i = 0; i < 3; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
  }
  std::unique_ptr<FetchJob> first = scheduler.Next(kT0);
  std::unique_ptr<FetchJob> second = scheduler.Next(kT0);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(first->host_key, kHostA);
  EXPECT_EQ(second->host_key, kHostA);
  EXPECT_EQ(scheduler.Next(kT0), nullptr);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Minutes(1)), nullptr);

  // Another host is not held up by host A's limit.
  scheduler.Enqueue(MakeJob(batch, kHostB, 3), kT0);
  std::unique_ptr<FetchJob> other = scheduler.Next(kT0);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->host_key, kHostB);
  EXPECT_EQ(scheduler.Next(kT0), nullptr);

  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  std::unique_ptr<FetchJob> third = scheduler.Next(kT0);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->host_key, kHostA);
  EXPECT_EQ(third->index, 2u);
  EXPECT_EQ(scheduler.Next(kT0), nullptr);
}

TEST(HostSchedulerTest, GlobalLimitHoldsJobsOfEveryHost) {
  Politeness polite(10);
  HostScheduler scheduler({.max_in_flight = 2}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostB, 1), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostC, 2), kT0);

  std::vector<Started> started = DrainStartable(scheduler, kT0);
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(scheduler.in_flight(), 2);
  EXPECT_EQ(scheduler.queued(), 1u);

  EXPECT_TRUE(ReleaseOk(scheduler, started[0].host_key));
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{batch.get(), 2, kHostC}}));
  EXPECT_EQ(scheduler.in_flight(), 2);
  EXPECT_EQ(scheduler.queued(), 0u);
}

TEST(HostSchedulerTest, JobsOfOneBatchStartInFifoOrder) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  for (uint32_t i = 0; i < 5; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
  }
  std::vector<uint32_t> order;
  for (const Started& s : DrainStartable(scheduler, kT0)) {
    order.push_back(s.index);
  }
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
}

TEST(HostSchedulerTest, BatchesAtOneHostAreServedRoundRobin) {
  Politeness polite(1000);
  HostScheduler scheduler({.max_in_flight = 1000}, polite.limiter);
  auto big = MakeBatch();
  auto small = MakeBatch();
  for (uint32_t i = 0; i < 100; ++i) {
    scheduler.Enqueue(MakeJob(big, kHostA, i), kT0);
  }
  for (uint32_t i = 0; i < 3; ++i) {
    scheduler.Enqueue(MakeJob(small, kHostA, i), kT0 + absl::Seconds(1));
  }
  std::vector<Started> started;
  for (int i = 0; i < 6; ++i) {
    std::unique_ptr<FetchJob> job = scheduler.Next(kT0 + absl::Seconds(1));
    ASSERT_NE(job, nullptr);
    started.push_back({job->batch.get(), job->index, job->host_key});
  }
  EXPECT_THAT(started, ElementsAre(Started{big.get(), 0, kHostA},
                                   Started{small.get(), 0, kHostA},
                                   Started{big.get(), 1, kHostA},
                                   Started{small.get(), 1, kHostA},
                                   Started{big.get(), 2, kHostA},
                                   Started{small.get(), 2, kHostA}));
  // The small batch is done; the big one continues in order.
  std::unique_ptr<FetchJob> next = scheduler.Next(kT0 + absl::Seconds(1));
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->batch.get(), big.get());
  EXPECT_EQ(next->index, 3u);
}

Batch::Options Caller(const std::string& name) {
  Batch::Options options;
  options.caller = name;
  return options;
}

// Caller A opens three batches, caller B one, all at one host: the host
// alternates between the callers, and A's batches share A's turns, so B gets
// half of the starts, not a quarter.
TEST(HostSchedulerTest, CallersAtOneHostAreServedRoundRobinBeforeBatches) {
  Politeness polite(1000);
  HostScheduler scheduler({.max_in_flight = 1000}, polite.limiter);
  auto a1 = MakeBatch(Caller("alice"));
  auto a2 = MakeBatch(Caller("alice"));
  auto a3 = MakeBatch(Caller("alice"));
  auto b = MakeBatch(Caller("bob"));
  for (uint32_t i = 0; i < 10; ++i) {
    for (const auto& batch : {a1, a2, a3}) {
      scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
    }
  }
  for (uint32_t i = 0; i < 10; ++i) {
    scheduler.Enqueue(MakeJob(b, kHostA, i), kT0);
  }
  std::vector<Started> started;
  for (int i = 0; i < 8; ++i) {
    std::unique_ptr<FetchJob> job = scheduler.Next(kT0);
    ASSERT_NE(job, nullptr);
    started.push_back({job->batch.get(), job->index, job->host_key});
  }
  EXPECT_THAT(
      started,
      ElementsAre(Started{a1.get(), 0, kHostA}, Started{b.get(), 0, kHostA},
                  Started{a2.get(), 0, kHostA}, Started{b.get(), 1, kHostA},
                  Started{a3.get(), 0, kHostA}, Started{b.get(), 2, kHostA},
                  Started{a1.get(), 1, kHostA}, Started{b.get(), 3, kHostA}));
}

// With one connection to the host, the caller whose turn it is gets the
// slot each time it frees up, whichever caller queued more.
TEST(HostSchedulerTest, CallerFairnessHoldsUnderThePerHostLimit) {
  Politeness polite(1);
  HostScheduler scheduler({.max_in_flight = 1000}, polite.limiter);
  auto big = MakeBatch(Caller("alice"));
  auto small = MakeBatch(Caller("bob"));
  for (uint32_t i = 0; i < 100; ++i) {
    scheduler.Enqueue(MakeJob(big, kHostA, i), kT0);
  }
  for (uint32_t i = 0; i < 2; ++i) {
    scheduler.Enqueue(MakeJob(small, kHostA, i), kT0 + absl::Seconds(1));
  }
  std::vector<std::string> callers;
  for (int i = 0; i < 6; ++i) {
    std::unique_ptr<FetchJob> job = scheduler.Next(kT0 + absl::Seconds(1));
    ASSERT_NE(job, nullptr);
    EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(1)), nullptr);
    callers.push_back(job->batch->caller());
    EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  }
  EXPECT_THAT(callers,
              ElementsAre("alice", "bob", "alice", "bob", "alice", "alice"));
}

// A caller whose only batch is blocked (its concurrency slot is taken)
// doesn't hold the host: the other caller's jobs start.
TEST(HostSchedulerTest, BlockedCallerIsSkipped) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  Batch::Options limited_options = Caller("alice");
  limited_options.max_concurrency = 1;
  auto limited = MakeBatch(limited_options);
  auto other = MakeBatch(Caller("bob"));
  for (uint32_t i = 0; i < 3; ++i) {
    scheduler.Enqueue(MakeJob(limited, kHostA, i), kT0);
    scheduler.Enqueue(MakeJob(other, kHostA, i), kT0);
  }
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{limited.get(), 0, kHostA},
                                  {other.get(), 0, kHostA},
                                  {other.get(), 1, kHostA},
                                  {other.get(), 2, kHostA}}));
  EXPECT_EQ(scheduler.queued(), 2u);
  EXPECT_EQ(Indices(scheduler.TakeBatch(limited.get(), kT0)),
            (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(scheduler.queued(), 0u);
}

TEST(HostSchedulerTest, HostsAreServedRoundRobin) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  for (uint32_t i = 0; i < 3; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
  }
  for (uint32_t i = 3; i < 6; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostB, i), kT0);
  }
  std::vector<std::string> hosts;
  for (const Started& s : DrainStartable(scheduler, kT0)) {
    hosts.push_back(s.host_key);
  }
  EXPECT_THAT(hosts,
              ElementsAre(kHostA, kHostB, kHostA, kHostB, kHostA, kHostB));
}

TEST(HostSchedulerTest, BlockedBatchIsSkippedNotWaitedOn) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto limited = MakeBatch(Concurrency(1));
  auto other = MakeBatch();
  scheduler.Enqueue(MakeJob(limited, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(limited, kHostA, 1), kT0);
  scheduler.Enqueue(MakeJob(other, kHostA, 0), kT0);

  std::vector<Started> started = DrainStartable(scheduler, kT0);
  EXPECT_EQ(started, (std::vector<Started>{{limited.get(), 0, kHostA},
                                           {other.get(), 0, kHostA}}));
  EXPECT_EQ(scheduler.queued(), 1u);

  // The first attempt of `limited` ends: its second job may start.
  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  limited->ReleaseConcurrency();
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{limited.get(), 1, kHostA}}));
}

TEST(HostSchedulerTest, BatchWindowHoldsJobsUntilAResultIsWritten) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  Batch::Options options;
  options.window = 1;
  auto batch = MakeBatch(options);
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostB, 1), kT0);

  EXPECT_EQ(DrainStartable(scheduler, kT0).size(), 1u);
  // The attempt ended but its result is not written: the window is full.
  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  batch->ReleaseConcurrency();
  EXPECT_EQ(scheduler.Next(kT0), nullptr);

  batch->OnResultWritten(/*held_window=*/true);
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{batch.get(), 1, kHostB}}));
}

TEST(HostSchedulerTest, RetryStartsWhenDueAndNotBefore) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  const absl::Time due = kT0 + absl::Milliseconds(250);
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 0), due);
  EXPECT_EQ(scheduler.delayed(), 1u);
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.NextEvent(), due);

  EXPECT_EQ(scheduler.Next(kT0), nullptr);
  EXPECT_EQ(scheduler.Next(due - absl::Nanoseconds(1)), nullptr);
  EXPECT_EQ(scheduler.delayed(), 1u);

  std::unique_ptr<FetchJob> job = scheduler.Next(due);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->index, 0u);
  EXPECT_EQ(job->not_before, absl::InfinitePast());
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.in_flight(), 1);
}

TEST(HostSchedulerTest, RetryAfterSevenSecondsWaitsSevenSeconds) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 0), kT0 + absl::Seconds(7));
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(7));
  EXPECT_EQ(scheduler.Next(kT0 + absl::Milliseconds(6999)), nullptr);
  EXPECT_NE(scheduler.Next(kT0 + absl::Seconds(7)), nullptr);
}

TEST(HostSchedulerTest, DueRetryGoesAheadOfLaterJobsInIndexOrder) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 3), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 4), kT0);
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 1), kT0);
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 2), kT0);

  std::vector<uint32_t> order;
  for (const Started& s : DrainStartable(scheduler, kT0)) {
    order.push_back(s.index);
  }
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
}

TEST(HostSchedulerTest, RetryWaitsForItsHostSlot) {
  Politeness polite(1);
  HostScheduler scheduler({.max_in_flight = 100}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  ASSERT_NE(scheduler.Next(kT0), nullptr);
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 1), kT0 + absl::Seconds(1));
  // Due, but host A is busy: promoted to the queue, not started.
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(1)), nullptr);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.queued(), 1u);

  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  std::unique_ptr<FetchJob> job = scheduler.Next(kT0 + absl::Seconds(3));
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->index, 1u);
  // Its queue wait runs from when it became due.
  EXPECT_EQ(job->queue_wait, absl::Seconds(2));
}

TEST(HostSchedulerTest, QueueWaitIsAddedWhenAJobStarts) {
  Politeness polite(1);
  HostScheduler scheduler({.max_in_flight = 100}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1), kT0);
  std::unique_ptr<FetchJob> first = scheduler.Next(kT0 + absl::Seconds(1));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->queue_wait, absl::Seconds(1));

  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  std::unique_ptr<FetchJob> second = scheduler.Next(kT0 + absl::Seconds(4));
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->queue_wait, absl::Seconds(4));

  // Its attempt fails and is retried at 10s, but job 2 holds the host then:
  // the retry waits from 10s to 12s, added to its earlier 4s.
  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  scheduler.EnqueueAt(std::move(second), kT0 + absl::Seconds(10));
  scheduler.Enqueue(MakeJob(batch, kHostA, 2), kT0 + absl::Seconds(9));
  std::unique_ptr<FetchJob> blocker = scheduler.Next(kT0 + absl::Seconds(9));
  ASSERT_NE(blocker, nullptr);
  EXPECT_EQ(blocker->index, 2u);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(10)), nullptr);
  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  std::unique_ptr<FetchJob> retried = scheduler.Next(kT0 + absl::Seconds(12));
  ASSERT_NE(retried, nullptr);
  EXPECT_EQ(retried->index, 1u);
  EXPECT_EQ(retried->queue_wait, absl::Seconds(6));
}

TEST(HostSchedulerTest, QueueTimeoutExpiresOnlyAtTheDeadline) {
  Politeness polite(1);
  HostScheduler scheduler({.max_in_flight = 100}, polite.limiter);
  auto batch = MakeBatch();
  // Job 0 takes the only slot; jobs 1 and 2 wait with different timeouts.
  scheduler.Enqueue(MakeJob(batch, kHostA, 0, absl::Seconds(60)), kT0);
  ASSERT_NE(scheduler.Next(kT0), nullptr);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1, absl::Seconds(5)), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 2, absl::Seconds(10)), kT0);
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(5));

  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Milliseconds(4999)).empty());
  EXPECT_EQ(scheduler.queued(), 2u);

  HostScheduler::JobList expired =
      scheduler.TakeExpired(kT0 + absl::Seconds(6));
  ASSERT_THAT(Indices(expired), ElementsAre(1));
  EXPECT_EQ(expired[0]->queue_wait, absl::Seconds(6));
  EXPECT_EQ(scheduler.queued(), 1u);
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(10));

  expired = scheduler.TakeExpired(kT0 + absl::Seconds(10));
  ASSERT_THAT(Indices(expired), ElementsAre(2));
  EXPECT_EQ(expired[0]->queue_wait, absl::Seconds(10));
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.NextEvent(), absl::InfiniteFuture());

  // The running job is not a queued job: it never expires here.
  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Hours(1)).empty());
  EXPECT_EQ(scheduler.in_flight(), 1);
}

TEST(HostSchedulerTest, DelayedRetryDoesNotExpireWhileWaitingForItsBackoff) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 0, absl::Seconds(1)),
                      kT0 + absl::Seconds(30));
  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Seconds(29)).empty());
  EXPECT_EQ(scheduler.delayed(), 1u);
  EXPECT_NE(scheduler.Next(kT0 + absl::Seconds(30)), nullptr);
}

TEST(HostSchedulerTest, TakeBatchRemovesOnlyThatBatch) {
  Politeness polite(1);
  HostScheduler scheduler({.max_in_flight = 100}, polite.limiter);
  auto doomed = MakeBatch();
  auto survivor = MakeBatch();
  // A running job of `doomed` holds host A's only slot.
  scheduler.Enqueue(MakeJob(doomed, kHostA, 0), kT0);
  ASSERT_NE(scheduler.Next(kT0), nullptr);

  scheduler.Enqueue(MakeJob(doomed, kHostA, 1), kT0);
  scheduler.Enqueue(MakeJob(doomed, kHostB, 2), kT0);
  scheduler.EnqueueAt(MakeJob(doomed, kHostA, 3), kT0 + absl::Seconds(5));
  scheduler.Enqueue(MakeJob(survivor, kHostA, 0), kT0);
  scheduler.EnqueueAt(MakeJob(survivor, kHostB, 1), kT0 + absl::Seconds(5));
  EXPECT_EQ(scheduler.queued(), 3u);
  EXPECT_EQ(scheduler.delayed(), 2u);

  HostScheduler::JobList taken = scheduler.TakeBatch(doomed.get(), kT0);
  EXPECT_THAT(Indices(taken), UnorderedElementsAre(1, 2, 3));
  for (const auto& job : taken) EXPECT_EQ(job->batch.get(), doomed.get());
  EXPECT_EQ(scheduler.queued(), 1u);
  EXPECT_EQ(scheduler.delayed(), 1u);
  // The running job is not the scheduler's to take.
  EXPECT_EQ(scheduler.in_flight(), 1);

  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  EXPECT_THAT(DrainStartable(scheduler, kT0 + absl::Seconds(5)),
              UnorderedElementsAre(Started{survivor.get(), 0, kHostA},
                                   Started{survivor.get(), 1, kHostB}));
  EXPECT_TRUE(scheduler.TakeBatch(doomed.get(), kT0).empty());
}

TEST(HostSchedulerTest, TakeAllEmptiesTheScheduler) {
  Politeness polite(1);
  HostScheduler scheduler({.max_in_flight = 100}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  ASSERT_NE(scheduler.Next(kT0), nullptr);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostB, 2), kT0);
  scheduler.EnqueueAt(MakeJob(batch, kHostC, 3), kT0 + absl::Seconds(1));

  EXPECT_THAT(Indices(scheduler.TakeAll(kT0)), UnorderedElementsAre(1, 2, 3));
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(1)), nullptr);
  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  EXPECT_EQ(scheduler.in_flight(), 0);
}

TEST(HostSchedulerTest, CountersFollowJobsThroughTheirStates) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostB, 1), kT0);
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 2), kT0 + absl::Seconds(1));
  EXPECT_EQ(scheduler.queued(), 2u);
  EXPECT_EQ(scheduler.delayed(), 1u);
  EXPECT_EQ(scheduler.in_flight(), 0);

  std::unique_ptr<FetchJob> a = scheduler.Next(kT0);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(scheduler.queued(), 1u);
  EXPECT_EQ(scheduler.in_flight(), 1);

  std::unique_ptr<FetchJob> b = scheduler.Next(kT0);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.in_flight(), 2);

  EXPECT_TRUE(ReleaseOk(scheduler, a->host_key));
  EXPECT_EQ(scheduler.in_flight(), 1);

  std::unique_ptr<FetchJob> c = scheduler.Next(kT0 + absl::Seconds(1));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.in_flight(), 2);

  EXPECT_TRUE(ReleaseOk(scheduler, b->host_key));
  EXPECT_TRUE(ReleaseOk(scheduler, c->host_key));
  EXPECT_EQ(scheduler.in_flight(), 0);
  EXPECT_TRUE(batch->delivered.empty());
}

// Ordered mode, window 1: job 0's first attempt failed and waits for its
// retry while job 1 holds the window. The stream waits for job 0, so job 0
// may still start; job 2 may not.
TEST(HostSchedulerTest, OrderedHeadBypassesAFullWindow) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  Batch::Options options;
  options.ordered = true;
  options.window = 1;
  auto batch = MakeBatch(options);
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1), kT0);

  std::unique_ptr<FetchJob> job0 = scheduler.Next(kT0);
  ASSERT_NE(job0, nullptr);
  EXPECT_EQ(job0->index, 0u);
  EXPECT_EQ(scheduler.Next(kT0), nullptr);

  // Attempt of job 0 fails and is retried in 1s; it gives its slots back.
  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  batch->ReleaseConcurrency();
  batch->ReleaseWindow();
  scheduler.EnqueueAt(std::move(job0), kT0 + absl::Seconds(1));

  std::unique_ptr<FetchJob> job1 = scheduler.Next(kT0);
  ASSERT_NE(job1, nullptr);
  EXPECT_EQ(job1->index, 1u);
  EXPECT_EQ(batch->window_in_use(), 1);
  scheduler.Enqueue(MakeJob(batch, kHostA, 2), kT0);
  EXPECT_EQ(scheduler.Next(kT0), nullptr);

  // Job 0 is due: it is the head and bypasses the full window. Job 2 isn't.
  EXPECT_EQ(DrainStartable(scheduler, kT0 + absl::Seconds(1)),
            (std::vector<Started>{{batch.get(), 0, kHostA}}));
  EXPECT_EQ(scheduler.queued(), 1u);
}

// --- Politeness: the scheduler with a LocalHostLimiter, on explicit times.

HostRule RuleFor(const std::string& name, const std::string& host) {
  HostRule rule;
  rule.name = name;
  rule.hosts = {host};
  return rule;
}

// Starts what may start at `now`, ends each attempt at once with a 200 and
// records the start times per job.
struct Timeline {
  std::vector<std::pair<absl::Duration, Started>> starts;
};

void RunUntilIdle(HostScheduler& scheduler, Timeline& timeline,
                  absl::Time limit) {
  absl::Time now = kT0;
  while (now <= limit) {
    while (std::unique_ptr<FetchJob> job = scheduler.Next(now)) {
      timeline.starts.push_back(
          {now - kT0, Started{job->batch.get(), job->index, job->host_key}});
      EXPECT_TRUE(scheduler.Release(*job, Response(200), now));
      job->batch->ReleaseConcurrency();
      job->batch->ReleaseWindow();
    }
    const absl::Time next = scheduler.NextEvent();
    if (next == absl::InfiniteFuture() || scheduler.queued() == 0) break;
    // Never asked to look again before something can change.
    EXPECT_GT(next, now);
    now = next;
  }
}

TEST(HostSchedulerPolitenessTest, RateLimitGivesExactStartTimes) {
  HostRule api = RuleFor("api", "a.test");
  api.rate = 20;
  api.burst = 1;
  Politeness polite(16, {api});
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  for (uint32_t i = 0; i < 5; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
  }
  scheduler.Enqueue(MakeJob(batch, kHostB, 5), kT0);

  // One start at A (burst 1), and B's job: B has no rule, no rate.
  std::vector<std::unique_ptr<FetchJob>> running;
  while (std::unique_ptr<FetchJob> job = scheduler.Next(kT0)) {
    running.push_back(std::move(job));
  }
  ASSERT_EQ(running.size(), 2u);
  EXPECT_EQ(running[0]->index, 0u);
  EXPECT_EQ(running[1]->host_key, kHostB);
  // Job 1 waits for the rate: the scheduler wakes at 50 ms, not before.
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Milliseconds(50));
  EXPECT_EQ(scheduler.Next(kT0 + absl::Milliseconds(49)), nullptr);

  for (uint32_t i = 1; i < 5; ++i) {
    const absl::Time at = kT0 + absl::Milliseconds(50) * i;
    EXPECT_EQ(scheduler.NextEvent(), at) << i;
    std::unique_ptr<FetchJob> job = scheduler.Next(at);
    ASSERT_NE(job, nullptr) << i;
    EXPECT_EQ(job->index, i);
    EXPECT_EQ(job->queue_wait, at - kT0);
    EXPECT_TRUE(job->politeness_waits.rate);
    EXPECT_FALSE(job->politeness_waits.paused);
    // Attempts in flight don't matter to the rate, only starts do.
    EXPECT_EQ(scheduler.Next(at), nullptr);
    running.push_back(std::move(job));
  }
  EXPECT_FALSE(running[0]->politeness_waits.rate);
  // Four jobs waited for the rate, each counted once however often asked.
  EXPECT_EQ(scheduler.rate_limited_jobs(), 4u);
  EXPECT_EQ(scheduler.in_flight(), 6);
}

TEST(HostSchedulerPolitenessTest, MinDelaySpacesStarts) {
  HostRule site = RuleFor("site", "a.test");
  site.min_delay = absl::Milliseconds(200);
  Politeness polite(16, {site});
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  for (uint32_t i = 0; i < 4; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
  }
  Timeline timeline;
  RunUntilIdle(scheduler, timeline, kT0 + absl::Seconds(10));
  std::vector<absl::Duration> times;
  for (const auto& [at, started] : timeline.starts) times.push_back(at);
  EXPECT_THAT(times,
              ElementsAre(absl::ZeroDuration(), absl::Milliseconds(200),
                          absl::Milliseconds(400), absl::Milliseconds(600)));
}

TEST(HostSchedulerPolitenessTest, ConcurrencyComesFromTheHostsRule) {
  HostRule narrow = RuleFor("narrow", "a.test");
  narrow.max_concurrency = 2;
  Politeness polite(3, {narrow});
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  for (uint32_t i = 0; i < 4; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
    scheduler.Enqueue(MakeJob(batch, kHostB, 10 + i), kT0);
  }
  std::vector<Started> started = DrainStartable(scheduler, kT0);
  int at_a = 0;
  int at_b = 0;
  for (const Started& s : started) (s.host_key == kHostA ? at_a : at_b)++;
  EXPECT_EQ(at_a, 2);  // the rule
  EXPECT_EQ(at_b, 3);  // the default rule
  // A concurrency wait is no timed event: only a Release frees it.
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(60));
  EXPECT_TRUE(ReleaseOk(scheduler, kHostA));
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{batch.get(), 2, kHostA}}));
}

// A 429 with Retry-After pauses the host for every batch and caller,
// including those that come during the pause.
TEST(HostSchedulerPolitenessTest, PausedHostHoldsEveryBatch) {
  Politeness polite;
  HostScheduler scheduler({}, polite.limiter);
  auto first = MakeBatch(Caller("alice"));
  auto second = MakeBatch(Caller("bob"));
  scheduler.Enqueue(MakeJob(first, kHostA, 0), kT0);
  std::unique_ptr<FetchJob> job = scheduler.Next(kT0);
  ASSERT_NE(job, nullptr);
  scheduler.Enqueue(MakeJob(first, kHostA, 1), kT0);
  scheduler.Enqueue(MakeJob(second, kHostA, 0), kT0);
  ASSERT_TRUE(scheduler.Release(*job, Response(429, absl::Seconds(2)), kT0));

  EXPECT_EQ(scheduler.Next(kT0), nullptr);
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(2));
  auto late = MakeBatch(Caller("carol"));
  scheduler.Enqueue(MakeJob(late, kHostA, 0), kT0 + absl::Seconds(1));
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(1)), nullptr);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Milliseconds(1999)), nullptr);
  // Other hosts go on.
  scheduler.Enqueue(MakeJob(late, kHostB, 1), kT0 + absl::Seconds(1));
  EXPECT_EQ(DrainStartable(scheduler, kT0 + absl::Seconds(1)),
            (std::vector<Started>{{late.get(), 1, kHostB}}));

  std::vector<std::unique_ptr<FetchJob>> resumed;
  while (std::unique_ptr<FetchJob> next =
             scheduler.Next(kT0 + absl::Seconds(2))) {
    resumed.push_back(std::move(next));
  }
  ASSERT_EQ(resumed.size(), 3u);
  for (const auto& j : resumed) {
    EXPECT_TRUE(j->politeness_waits.paused) << j->batch->caller();
  }
  EXPECT_EQ(scheduler.paused_jobs(), 3u);
}

// A job whose caller set its queue timeout: it may wait for an open breaker.
std::unique_ptr<FetchJob> WaitingJob(
    const std::shared_ptr<RecordingBatch>& batch, const std::string& host_key,
    uint32_t index, absl::Duration queue_timeout) {
  std::unique_ptr<FetchJob> job =
      MakeJob(batch, host_key, index, queue_timeout);
  job->wait_for_open_breaker = true;
  return job;
}

// Breaker: two connect failures open it for 5 s. Queued jobs that asked to
// wait and whose queue timeout outlasts the open time wait for it; the
// others are refused, as is every new job while it is open unless it asked
// to wait and can.
TEST(HostSchedulerPolitenessTest, OpenBreakerRefusesOrHoldsJobs) {
  HostRule flaky = RuleFor("flaky", "a.test");
  flaky.max_concurrency = 1;
  flaky.breaker.consecutive_failures = 2;
  flaky.breaker.base_open_time = absl::Seconds(5);
  Politeness polite(16, {flaky});
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1), kT0);
  scheduler.Enqueue(WaitingJob(batch, kHostA, 2, absl::Seconds(2)), kT0);
  scheduler.Enqueue(WaitingJob(batch, kHostA, 3, absl::Seconds(5)), kT0);
  scheduler.Enqueue(WaitingJob(batch, kHostA, 4, absl::Seconds(30)), kT0);
  // Could wait, but did not ask to.
  scheduler.Enqueue(MakeJob(batch, kHostA, 7, absl::Seconds(30)), kT0);
  for (uint32_t i = 0; i < 2; ++i) {
    std::unique_ptr<FetchJob> job = scheduler.Next(kT0);
    ASSERT_NE(job, nullptr);
    EXPECT_EQ(job->index, i);
    ASSERT_TRUE(scheduler.Release(*job, ConnectFailed(), kT0));
  }

  // Open until 5 s: job 2 (2 s) and job 3 (expires at 5 s) can't wait,
  // job 7 did not ask to.
  EXPECT_EQ(scheduler.Next(kT0), nullptr);
  EXPECT_EQ(scheduler.NextEvent(), absl::InfinitePast());
  std::vector<HostScheduler::Rejected> rejected = scheduler.TakeRejected();
  ASSERT_EQ(rejected.size(), 3u);
  EXPECT_EQ(rejected[0].job->index, 2u);
  EXPECT_EQ(rejected[1].job->index, 3u);
  EXPECT_EQ(rejected[2].job->index, 7u);
  for (const auto& r : rejected) {
    EXPECT_EQ(r.rejection.reason, politeness::RejectReason::kCircuitOpen);
    EXPECT_EQ(r.rejection.until, kT0 + absl::Seconds(5));
    EXPECT_THAT(r.rejection.message, ::testing::HasSubstr("flaky"));
  }
  EXPECT_EQ(scheduler.queued(), 1u);
  // The refused jobs' deadlines may still wake the worker once (a look that
  // finds nothing to expire), then the breaker's time is next.
  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Seconds(2)).empty());
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(5));

  // A new job is refused at once while the breaker is open, unless it asked
  // to wait and its queue timeout outlasts the open time.
  scheduler.Enqueue(MakeJob(batch, kHostA, 5), kT0 + absl::Seconds(1));
  scheduler.Enqueue(WaitingJob(batch, kHostA, 8, absl::Seconds(2)),
                    kT0 + absl::Seconds(1));
  scheduler.Enqueue(WaitingJob(batch, kHostA, 9, absl::Seconds(10)),
                    kT0 + absl::Seconds(1));
  rejected = scheduler.TakeRejected();
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_EQ(rejected[0].job->index, 5u);
  EXPECT_EQ(rejected[1].job->index, 8u);
  EXPECT_EQ(scheduler.queued(), 2u);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(4)), nullptr);

  // At 5 s job 4 is the half-open probe; its success closes the breaker.
  std::unique_ptr<FetchJob> probe = scheduler.Next(kT0 + absl::Seconds(5));
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->index, 4u);
  EXPECT_TRUE(probe->permit.probe);
  EXPECT_EQ(probe->queue_wait, absl::Seconds(5));
  ASSERT_TRUE(scheduler.Release(*probe, Response(200), kT0 + absl::Seconds(5)));
  scheduler.Enqueue(MakeJob(batch, kHostA, 6), kT0 + absl::Seconds(5));
  EXPECT_TRUE(scheduler.TakeRejected().empty());
  // The job that waited for the breaker goes first (max_concurrency 1).
  std::unique_ptr<FetchJob> waited = scheduler.Next(kT0 + absl::Seconds(5));
  ASSERT_NE(waited, nullptr);
  EXPECT_EQ(waited->index, 9u);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(5)), nullptr);
  ASSERT_TRUE(
      scheduler.Release(*waited, Response(200), kT0 + absl::Seconds(5)));
  EXPECT_EQ(DrainStartable(scheduler, kT0 + absl::Seconds(5)),
            (std::vector<Started>{{batch.get(), 6, kHostA}}));
}

// Jobs held by a breaker (open, then half-open with its probe out) still
// expire at their queue timeout.
TEST(HostSchedulerPolitenessTest, JobsHeldByABreakerExpire) {
  HostRule flaky = RuleFor("flaky", "a.test");
  flaky.breaker.consecutive_failures = 1;
  flaky.breaker.base_open_time = absl::Seconds(5);
  Politeness polite(16, {flaky});
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  std::unique_ptr<FetchJob> job = scheduler.Next(kT0);
  ASSERT_NE(job, nullptr);
  scheduler.Enqueue(WaitingJob(batch, kHostA, 1, absl::Seconds(8)), kT0);
  scheduler.Enqueue(WaitingJob(batch, kHostA, 2, absl::Seconds(6)), kT0);
  ASSERT_TRUE(scheduler.Release(*job, ConnectFailed(), kT0));
  EXPECT_EQ(scheduler.Next(kT0), nullptr);
  EXPECT_TRUE(scheduler.TakeRejected().empty());
  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Seconds(4)).empty());

  std::unique_ptr<FetchJob> probe = scheduler.Next(kT0 + absl::Seconds(5));
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->index, 1u);
  EXPECT_TRUE(probe->permit.probe);
  // Half-open admits one probe: job 2 waits for its end, or its timeout.
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(5)), nullptr);
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(6));
  EXPECT_THAT(Indices(scheduler.TakeExpired(kT0 + absl::Seconds(6))),
              ElementsAre(2));
  EXPECT_TRUE(scheduler.TakeRejected().empty());
}

TEST(HostSchedulerPolitenessTest, FullQueueRefusesNewJobs) {
  HostRule small = RuleFor("small", "a.test");
  small.max_concurrency = 1;
  small.max_queue = 2;
  Politeness polite(16, {small});
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  for (uint32_t i = 0; i < 3; ++i) {
    scheduler.Enqueue(MakeJob(batch, kHostA, i), kT0);
  }
  scheduler.Enqueue(MakeJob(batch, kHostB, 9), kT0);
  std::vector<HostScheduler::Rejected> rejected = scheduler.TakeRejected();
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].job->index, 2u);
  EXPECT_EQ(rejected[0].rejection.reason, politeness::RejectReason::kQueueFull);
  EXPECT_THAT(rejected[0].rejection.message,
              ::testing::HasSubstr("max_queue 2"));
  EXPECT_EQ(scheduler.queued(), 3u);
  // One starts: there is room for one more.
  ASSERT_EQ(DrainStartable(scheduler, kT0).size(), 2u);
  scheduler.Enqueue(MakeJob(batch, kHostA, 3), kT0);
  EXPECT_TRUE(scheduler.TakeRejected().empty());
}

// The fairness case: a small batch enqueued after a large one at
// one rate-limited host is interleaved with it, for batches of one caller
// (lanes) as for different callers.
TEST(HostSchedulerPolitenessTest, FairnessHoldsUnderARateLimit) {
  for (const bool same_caller : {true, false}) {
    HostRule api = RuleFor("api", "a.test");
    api.rate = 10;
    api.burst = 1;
    Politeness polite(16, {api});
    HostScheduler scheduler({}, polite.limiter);
    auto big = MakeBatch(Caller("alice"));
    auto small = MakeBatch(Caller(same_caller ? "alice" : "bob"));
    for (uint32_t i = 0; i < 20; ++i) {
      scheduler.Enqueue(MakeJob(big, kHostA, i), kT0);
    }
    for (uint32_t i = 0; i < 3; ++i) {
      scheduler.Enqueue(MakeJob(small, kHostA, i), kT0);
    }
    Timeline timeline;
    RunUntilIdle(scheduler, timeline, kT0 + absl::Milliseconds(700));
    std::vector<std::pair<absl::Duration, Started>> want;
    const std::vector<Started> order = {
        {big.get(), 0, kHostA}, {small.get(), 0, kHostA},
        {big.get(), 1, kHostA}, {small.get(), 1, kHostA},
        {big.get(), 2, kHostA}, {small.get(), 2, kHostA},
        {big.get(), 3, kHostA}, {big.get(), 4, kHostA}};
    for (size_t i = 0; i < order.size(); ++i) {
      want.push_back({absl::Milliseconds(100) * i, order[i]});
    }
    EXPECT_EQ(timeline.starts, want) << "same caller: " << same_caller;
  }
}

// A retry holds a place in its host's budget until its attempt ends or it
// leaves the scheduler unstarted.
TEST(HostSchedulerPolitenessTest, RetryBudgetPlaceIsGivenBack) {
  HostRule tight = RuleFor("tight", "a.test");
  tight.retry_budget.ratio = 0;
  tight.retry_budget.min_retry_concurrency = 1;
  Politeness polite(16, {tight});
  HostScheduler scheduler({}, polite.limiter);
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1), kT0);
  std::unique_ptr<FetchJob> j0 = scheduler.Next(kT0);
  std::unique_ptr<FetchJob> j1 = scheduler.Next(kT0);
  ASSERT_NE(j0, nullptr);
  ASSERT_NE(j1, nullptr);
  ASSERT_TRUE(scheduler.Release(*j0, Response(503), kT0));
  ASSERT_TRUE(scheduler.Release(*j1, Response(503), kT0));
  ASSERT_TRUE(scheduler.TryRetry(*j0, kT0).ok());
  EXPECT_TRUE(j0->retry_outstanding);
  const absl::Status denied = scheduler.TryRetry(*j1, kT0);
  EXPECT_EQ(denied.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(denied.message()), ::testing::HasSubstr("tight"));
  EXPECT_FALSE(j1->retry_outstanding);

  // The waiting retry is cancelled: its place frees.
  scheduler.EnqueueAt(std::move(j0), kT0 + absl::Seconds(1));
  HostScheduler::JobList taken = scheduler.TakeBatch(batch.get(), kT0);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_FALSE(taken[0]->retry_outstanding);
  ASSERT_TRUE(scheduler.TryRetry(*j1, kT0).ok());

  // The retry runs and ends: its place frees again.
  scheduler.EnqueueAt(std::move(j1), kT0 + absl::Seconds(1));
  std::unique_ptr<FetchJob> retry = scheduler.Next(kT0 + absl::Seconds(1));
  ASSERT_NE(retry, nullptr);
  EXPECT_TRUE(retry->retry_outstanding);
  ASSERT_TRUE(scheduler.Release(*retry, Response(200), kT0 + absl::Seconds(2)));
  EXPECT_FALSE(retry->retry_outstanding);
  EXPECT_TRUE(scheduler.TryRetry(*retry, kT0 + absl::Seconds(2)).ok());
}

}  // namespace
}  // namespace fetchd::core

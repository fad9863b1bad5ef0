#include "service/core/host_scheduler.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/core/batch.h"
#include "service/core/fetch_job.h"

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
  HostScheduler scheduler({});
  EXPECT_EQ(scheduler.Next(kT0), nullptr);
  EXPECT_EQ(scheduler.NextEvent(), absl::InfiniteFuture());
  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Hours(1)).empty());
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.in_flight(), 0);
}

TEST(HostSchedulerTest, PerHostLimitHoldsJobsUntilRelease) {
  HostScheduler scheduler({.max_per_host = 2, .max_in_flight = 100});
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

  EXPECT_TRUE(scheduler.Release(kHostA));
  std::unique_ptr<FetchJob> third = scheduler.Next(kT0);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->host_key, kHostA);
  EXPECT_EQ(third->index, 2u);
  EXPECT_EQ(scheduler.Next(kT0), nullptr);
}

TEST(HostSchedulerTest, GlobalLimitHoldsJobsOfEveryHost) {
  HostScheduler scheduler({.max_per_host = 10, .max_in_flight = 2});
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostB, 1), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostC, 2), kT0);

  std::vector<Started> started = DrainStartable(scheduler, kT0);
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(scheduler.in_flight(), 2);
  EXPECT_EQ(scheduler.queued(), 1u);

  EXPECT_TRUE(scheduler.Release(started[0].host_key));
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{batch.get(), 2, kHostC}}));
  EXPECT_EQ(scheduler.in_flight(), 2);
  EXPECT_EQ(scheduler.queued(), 0u);
}

TEST(HostSchedulerTest, JobsOfOneBatchStartInFifoOrder) {
  HostScheduler scheduler({});
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
  HostScheduler scheduler({.max_per_host = 1000, .max_in_flight = 1000});
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
  HostScheduler scheduler({.max_per_host = 1000, .max_in_flight = 1000});
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
  HostScheduler scheduler({.max_per_host = 1, .max_in_flight = 1000});
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
    EXPECT_TRUE(scheduler.Release(kHostA));
  }
  EXPECT_THAT(callers,
              ElementsAre("alice", "bob", "alice", "bob", "alice", "alice"));
}

// A caller whose only batch is blocked (its concurrency slot is taken)
// doesn't hold the host: the other caller's jobs start.
TEST(HostSchedulerTest, BlockedCallerIsSkipped) {
  HostScheduler scheduler({});
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
  EXPECT_EQ(Indices(scheduler.TakeBatch(limited.get())),
            (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(scheduler.queued(), 0u);
}

TEST(HostSchedulerTest, HostsAreServedRoundRobin) {
  HostScheduler scheduler({});
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
  HostScheduler scheduler({});
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
  EXPECT_TRUE(scheduler.Release(kHostA));
  limited->ReleaseConcurrency();
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{limited.get(), 1, kHostA}}));
}

TEST(HostSchedulerTest, BatchWindowHoldsJobsUntilAResultIsWritten) {
  HostScheduler scheduler({});
  Batch::Options options;
  options.window = 1;
  auto batch = MakeBatch(options);
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostB, 1), kT0);

  EXPECT_EQ(DrainStartable(scheduler, kT0).size(), 1u);
  // The attempt ended but its result is not written: the window is full.
  EXPECT_TRUE(scheduler.Release(kHostA));
  batch->ReleaseConcurrency();
  EXPECT_EQ(scheduler.Next(kT0), nullptr);

  batch->OnResultWritten(/*held_window=*/true);
  EXPECT_EQ(DrainStartable(scheduler, kT0),
            (std::vector<Started>{{batch.get(), 1, kHostB}}));
}

TEST(HostSchedulerTest, RetryStartsWhenDueAndNotBefore) {
  HostScheduler scheduler({});
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
  HostScheduler scheduler({});
  auto batch = MakeBatch();
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 0), kT0 + absl::Seconds(7));
  EXPECT_EQ(scheduler.NextEvent(), kT0 + absl::Seconds(7));
  EXPECT_EQ(scheduler.Next(kT0 + absl::Milliseconds(6999)), nullptr);
  EXPECT_NE(scheduler.Next(kT0 + absl::Seconds(7)), nullptr);
}

TEST(HostSchedulerTest, DueRetryGoesAheadOfLaterJobsInIndexOrder) {
  HostScheduler scheduler({});
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
  HostScheduler scheduler({.max_per_host = 1, .max_in_flight = 100});
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  ASSERT_NE(scheduler.Next(kT0), nullptr);
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 1), kT0 + absl::Seconds(1));
  // Due, but host A is busy: promoted to the queue, not started.
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(1)), nullptr);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.queued(), 1u);

  EXPECT_TRUE(scheduler.Release(kHostA));
  std::unique_ptr<FetchJob> job = scheduler.Next(kT0 + absl::Seconds(3));
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->index, 1u);
  // Its queue wait runs from when it became due.
  EXPECT_EQ(job->queue_wait, absl::Seconds(2));
}

TEST(HostSchedulerTest, QueueWaitIsAddedWhenAJobStarts) {
  HostScheduler scheduler({.max_per_host = 1, .max_in_flight = 100});
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1), kT0);
  std::unique_ptr<FetchJob> first = scheduler.Next(kT0 + absl::Seconds(1));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->queue_wait, absl::Seconds(1));

  EXPECT_TRUE(scheduler.Release(kHostA));
  std::unique_ptr<FetchJob> second = scheduler.Next(kT0 + absl::Seconds(4));
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->queue_wait, absl::Seconds(4));

  // Its attempt fails and is retried at 10s, but job 2 holds the host then:
  // the retry waits from 10s to 12s, added to its earlier 4s.
  EXPECT_TRUE(scheduler.Release(kHostA));
  scheduler.EnqueueAt(std::move(second), kT0 + absl::Seconds(10));
  scheduler.Enqueue(MakeJob(batch, kHostA, 2), kT0 + absl::Seconds(9));
  std::unique_ptr<FetchJob> blocker = scheduler.Next(kT0 + absl::Seconds(9));
  ASSERT_NE(blocker, nullptr);
  EXPECT_EQ(blocker->index, 2u);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(10)), nullptr);
  EXPECT_TRUE(scheduler.Release(kHostA));
  std::unique_ptr<FetchJob> retried = scheduler.Next(kT0 + absl::Seconds(12));
  ASSERT_NE(retried, nullptr);
  EXPECT_EQ(retried->index, 1u);
  EXPECT_EQ(retried->queue_wait, absl::Seconds(6));
}

TEST(HostSchedulerTest, QueueTimeoutExpiresOnlyAtTheDeadline) {
  HostScheduler scheduler({.max_per_host = 1, .max_in_flight = 100});
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
  HostScheduler scheduler({});
  auto batch = MakeBatch();
  scheduler.EnqueueAt(MakeJob(batch, kHostA, 0, absl::Seconds(1)),
                      kT0 + absl::Seconds(30));
  EXPECT_TRUE(scheduler.TakeExpired(kT0 + absl::Seconds(29)).empty());
  EXPECT_EQ(scheduler.delayed(), 1u);
  EXPECT_NE(scheduler.Next(kT0 + absl::Seconds(30)), nullptr);
}

TEST(HostSchedulerTest, TakeBatchRemovesOnlyThatBatch) {
  HostScheduler scheduler({.max_per_host = 1, .max_in_flight = 100});
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

  HostScheduler::JobList taken = scheduler.TakeBatch(doomed.get());
  EXPECT_THAT(Indices(taken), UnorderedElementsAre(1, 2, 3));
  for (const auto& job : taken) EXPECT_EQ(job->batch.get(), doomed.get());
  EXPECT_EQ(scheduler.queued(), 1u);
  EXPECT_EQ(scheduler.delayed(), 1u);
  // The running job is not the scheduler's to take.
  EXPECT_EQ(scheduler.in_flight(), 1);

  EXPECT_TRUE(scheduler.Release(kHostA));
  EXPECT_THAT(DrainStartable(scheduler, kT0 + absl::Seconds(5)),
              UnorderedElementsAre(Started{survivor.get(), 0, kHostA},
                                   Started{survivor.get(), 1, kHostB}));
  EXPECT_TRUE(scheduler.TakeBatch(doomed.get()).empty());
}

TEST(HostSchedulerTest, TakeAllEmptiesTheScheduler) {
  HostScheduler scheduler({.max_per_host = 1, .max_in_flight = 100});
  auto batch = MakeBatch();
  scheduler.Enqueue(MakeJob(batch, kHostA, 0), kT0);
  ASSERT_NE(scheduler.Next(kT0), nullptr);
  scheduler.Enqueue(MakeJob(batch, kHostA, 1), kT0);
  scheduler.Enqueue(MakeJob(batch, kHostB, 2), kT0);
  scheduler.EnqueueAt(MakeJob(batch, kHostC, 3), kT0 + absl::Seconds(1));

  EXPECT_THAT(Indices(scheduler.TakeAll()), UnorderedElementsAre(1, 2, 3));
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.Next(kT0 + absl::Seconds(1)), nullptr);
  EXPECT_TRUE(scheduler.Release(kHostA));
  EXPECT_EQ(scheduler.in_flight(), 0);
}

TEST(HostSchedulerTest, CountersFollowJobsThroughTheirStates) {
  HostScheduler scheduler({});
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

  EXPECT_TRUE(scheduler.Release(a->host_key));
  EXPECT_EQ(scheduler.in_flight(), 1);

  std::unique_ptr<FetchJob> c = scheduler.Next(kT0 + absl::Seconds(1));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(scheduler.delayed(), 0u);
  EXPECT_EQ(scheduler.queued(), 0u);
  EXPECT_EQ(scheduler.in_flight(), 2);

  EXPECT_TRUE(scheduler.Release(b->host_key));
  EXPECT_TRUE(scheduler.Release(c->host_key));
  EXPECT_EQ(scheduler.in_flight(), 0);
  EXPECT_TRUE(batch->delivered.empty());
}

// Ordered mode, window 1: job 0's first attempt failed and waits for its
// retry while job 1 holds the window. The stream waits for job 0, so job 0
// may still start; job 2 may not.
TEST(HostSchedulerTest, OrderedHeadBypassesAFullWindow) {
  HostScheduler scheduler({});
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
  EXPECT_TRUE(scheduler.Release(kHostA));
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

}  // namespace
}  // namespace fetchd::core

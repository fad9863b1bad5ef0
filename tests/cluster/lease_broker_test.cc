// LeaseBroker on a FakeLeaseStore and a FakeClock: rounds are run by the
// test (RunOnce), so every step of the lease and send-time bookkeeping and
// of the mode transitions is checked at an exact time, without sleeps.
#include "service/cluster/lease_broker.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster/fake_lease_store.h"
#include "tests/testing/fake_clock.h"

namespace fetchd::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using WaitReason = core::politeness::WaitReason;

constexpr char kHost[] = "http://127.0.0.1:8080";

class RecordingWakeup final : public HostWakeup {
 public:
  void WakeHosts(std::vector<std::string> host_keys) override {
    for (auto& k : host_keys) woken.push_back(std::move(k));
  }
  std::vector<std::string> Take() { return std::exchange(woken, {}); }
  std::vector<std::string> woken;
};

class RecordingObserver final : public LimiterObserver {
 public:
  void OnLimiterMode(LimiterMode mode) override { modes.push_back(mode); }
  void OnRedisCall(RedisOperation, int commands, absl::Duration,
                   const absl::Status& status) override {
    calls += commands;
    if (!status.ok()) ++errors;
  }
  void OnLeases(int g, int r, int, int h) override {
    granted += g;
    released += r;
    held = h;
  }
  void OnTokens(int reserved_n, int returned_n, int dropped_n) override {
    reserved += reserved_n;
    returned += returned_n;
    dropped += dropped_n;
  }
  void OnLimiterStarts(int n) override { starts += n; }

  std::vector<LimiterMode> modes;
  int calls = 0, errors = 0, granted = 0, released = 0, held = 0;
  int reserved = 0, returned = 0, dropped = 0, starts = 0;
};

LimiterOptions Options() {
  LimiterOptions o;
  o.lease_ttl = absl::Seconds(3);
  o.sync_interval = absl::Milliseconds(100);
  o.idle_release = absl::Milliseconds(200);
  o.rate_horizon = absl::Milliseconds(500);
  o.expected_replicas = 1;
  return o;
}

// One replica: its store, broker and a worker's wakeups.
struct Replica {
  Replica(FakeCluster* cluster, const std::string& id, const Clock* clock,
          LimiterOptions options = Options())
      : store(cluster, id), broker(options, &store, clock, &observer) {}

  FakeLeaseStore store;
  RecordingObserver observer;
  LeaseBroker broker;
  RecordingWakeup wakeup;
};

class LeaseBrokerTest : public ::testing::Test {
 protected:
  LeaseBroker::Decision Take(Replica& r, HostLimits limits,
                             const std::string& host = kHost) {
    return r.broker.TryTake(host, limits, &r.wakeup, clock_.Now());
  }
  // Takes up to `most` starts, running a round at each wait and going on
  // only while the round wakes the host; returns the starts.
  int TakeAll(Replica& r, HostLimits limits, int most = 100) {
    int n = 0;
    for (int i = 0; i < 200 && n < most; ++i) {
      if (Take(r, limits).go) {
        ++n;
        continue;
      }
      r.wakeup.Take();
      r.broker.RunOnce();
      if (r.wakeup.Take().empty()) break;
    }
    return n;
  }

  testing::FakeClock clock_;
  FakeCluster cluster_{&clock_};
};

TEST_F(LeaseBrokerTest, StartsDegradedAndLearnsANewEpochForOneTtl) {
  Replica a(&cluster_, "a", &clock_);
  EXPECT_EQ(a.broker.mode(), LimiterMode::kDegraded);
  a.broker.RunOnce();
  // The first heartbeat made the epoch: nobody can know the leases taken
  // before it, so one TTL of learning.
  EXPECT_EQ(a.broker.mode(), LimiterMode::kLearning);
  clock_.Advance(absl::Seconds(3));
  a.broker.RunOnce();
  EXPECT_EQ(a.broker.mode(), LimiterMode::kRedis);
  EXPECT_THAT(a.observer.modes,
              ElementsAre(LimiterMode::kDegraded, LimiterMode::kLearning,
                          LimiterMode::kRedis));
  EXPECT_EQ(cluster_.Members(), 1);
}

TEST_F(LeaseBrokerTest, AFirstStartWaitsForOneRoundThenLeasesAreReused) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  a.broker.RunOnce();
  ASSERT_EQ(a.broker.mode(), LimiterMode::kRedis);
  const HostLimits limits{4, 0, 1};
  LeaseBroker::Decision d = Take(a, limits);
  EXPECT_FALSE(d.go);
  EXPECT_EQ(d.until, absl::InfiniteFuture());
  // The round asked for ceil(4 / 1) leases and wakes the host.
  EXPECT_LE(a.broker.RunOnce(), clock_.Now() + absl::Milliseconds(100));
  EXPECT_THAT(a.wakeup.Take(), ElementsAre(kHost));
  EXPECT_EQ(cluster_.LeasesOf(kHost, "a"), 4);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(Take(a, limits).go) << i;
  EXPECT_FALSE(Take(a, limits).go);
  // Ends and new starts reuse the leases: no store call.
  const int calls = cluster_.calls();
  a.broker.Release(kHost, clock_.Now());
  EXPECT_TRUE(Take(a, limits).go);
  EXPECT_EQ(cluster_.calls(), calls);
  EXPECT_EQ(a.broker.held_leases(), 4);
}

TEST_F(LeaseBrokerTest, TheClusterLimitHoldsAndShortReplicasGetAFairShare) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  Replica b(&cluster_, "b", &clock_);
  a.broker.RunOnce();
  b.broker.RunOnce();
  const HostLimits limits{6, 0, 1};
  // a asks first: ceil(6 / 2 live) = 3 at a time, and grows while short.
  EXPECT_EQ(TakeAll(a, limits), 6);
  EXPECT_EQ(TakeAll(b, limits), 0);
  EXPECT_EQ(cluster_.Leases(kHost), 6);
  // b is short (a wanter): a's next sync lowers its share to 3, and a
  // gives back what it frees beyond it.
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();
  for (int i = 0; i < 4; ++i) a.broker.Release(kHost, clock_.Now());
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();
  EXPECT_EQ(cluster_.LeasesOf(kHost, "a"), 3);
  EXPECT_EQ(TakeAll(b, limits), 3);
  EXPECT_LE(cluster_.Leases(kHost), 6);
  // a, with 2 in use, may start one more within its share, not two.
  EXPECT_EQ(TakeAll(a, limits), 1);
}

TEST_F(LeaseBrokerTest, IdleLeasesGoBackAfterIdleRelease) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  a.broker.RunOnce();
  const HostLimits limits{4, 0, 1};
  ASSERT_EQ(TakeAll(a, limits), 4);
  for (int i = 0; i < 4; ++i) a.broker.Release(kHost, clock_.Now());
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();
  EXPECT_EQ(cluster_.LeasesOf(kHost, "a"), 4);  // kept for the next request
  clock_.Advance(absl::Milliseconds(150));
  a.broker.RunOnce();
  EXPECT_EQ(cluster_.LeasesOf(kHost, "a"), 0);
  EXPECT_EQ(a.observer.released, 4);
  clock_.Advance(absl::Seconds(1));
  a.broker.RunOnce();
  EXPECT_EQ(a.broker.pools(), 0u);
}

TEST_F(LeaseBrokerTest, HeldLeasesAreRenewedBeforeTheyExpire) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  a.broker.RunOnce();
  const HostLimits limits{2, 0, 1};
  ASSERT_EQ(TakeAll(a, limits), 2);
  // A long transfer: no activity, but the leases stay.
  for (int i = 0; i < 100; ++i) {
    clock_.Advance(absl::Milliseconds(100));
    a.broker.RunOnce();
  }
  EXPECT_EQ(cluster_.LeasesOf(kHost, "a"), 2);
}

TEST_F(LeaseBrokerTest, AStoreFailureMeansDegradedSharesAndWakesWaiters) {
  cluster_.SetOldEpoch();
  LimiterOptions options = Options();
  options.expected_replicas = 3;
  Replica a(&cluster_, "a", &clock_, options);
  a.broker.RunOnce();
  const HostLimits limits{7, 0, 1};
  EXPECT_FALSE(Take(a, limits).go);  // waits for the first round
  cluster_.Down();
  a.broker.RunOnce();
  EXPECT_EQ(a.broker.mode(), LimiterMode::kDegraded);
  EXPECT_THAT(a.wakeup.Take(), ElementsAre(kHost));
  EXPECT_EQ(a.observer.errors, 1);
  // floor(7 / max(1 live, 3 expected)) = 2.
  EXPECT_TRUE(Take(a, limits).go);
  EXPECT_TRUE(Take(a, limits).go);
  EXPECT_FALSE(Take(a, limits).go);
  // Back: REDIS again, and the two running attempts take leases (adopted).
  cluster_.Up();
  clock_.Advance(absl::Seconds(3));
  a.broker.RunOnce();
  EXPECT_EQ(a.broker.mode(), LimiterMode::kRedis);
  EXPECT_EQ(cluster_.LeasesOf(kHost, "a"), 2);
}

TEST_F(LeaseBrokerTest, NothingStartsBeforeTheFirstAttemptToReachTheStore) {
  cluster_.Down();
  Replica a(&cluster_, "a", &clock_);
  EXPECT_FALSE(Take(a, HostLimits{4, 0, 1}).go);
  a.broker.RunOnce();  // refused: degraded, and the waiting host is woken
  EXPECT_THAT(a.wakeup.Take(), ElementsAre(kHost));
  EXPECT_TRUE(Take(a, HostLimits{4, 0, 1}).go);
}

TEST_F(LeaseBrokerTest, DegradedLeavesWhatTheOthersHeldForOneTtl) {
  cluster_.SetOldEpoch();
  LimiterOptions options = Options();
  options.expected_replicas = 2;
  Replica a(&cluster_, "a", &clock_, options);
  Replica b(&cluster_, "b", &clock_, options);
  a.broker.RunOnce();
  b.broker.RunOnce();
  const HostLimits limits{8, 0, 1};
  // b takes 4, a the other 4; then a frees 2.
  ASSERT_EQ(TakeAll(b, limits, 4), 4);
  ASSERT_EQ(TakeAll(a, limits), 4);
  for (int i = 0; i < 2; ++i) a.broker.Release(kHost, clock_.Now());
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();  // a learns that the others hold 4
  cluster_.Down();
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();
  ASSERT_EQ(a.broker.mode(), LimiterMode::kDegraded);
  // Its share is floor(8 / 2) = 4, but b may still use its 4 (it has not
  // noticed): a keeps to 8 - 4 = 4 in all, i.e. 2 more.
  EXPECT_EQ(TakeAll(a, limits), 2);
  clock_.Advance(absl::Seconds(3));
  a.broker.Release(kHost, clock_.Now());
  EXPECT_EQ(TakeAll(a, limits), 1);
}

TEST_F(LeaseBrokerTest, AnEpochChangeMeansLearningForOneTtl) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  a.broker.RunOnce();
  const HostLimits limits{4, 0, 1};
  ASSERT_EQ(TakeAll(a, limits), 4);
  // Redis restarts without its data: the connection breaks, the next
  // round fails, the reconnect finds a new epoch.
  cluster_.Restart();
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();
  EXPECT_EQ(a.broker.mode(), LimiterMode::kDegraded);
  clock_.Advance(absl::Seconds(2));
  a.broker.RunOnce();
  ASSERT_EQ(a.broker.mode(), LimiterMode::kLearning);
  // Learning: the degraded share (4 / 1), so with 4 running none starts;
  // the store learns the 4 running ones.
  EXPECT_FALSE(Take(a, limits).go);
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();
  EXPECT_EQ(cluster_.LeasesOf(kHost, "a"), 4);
  clock_.Advance(absl::Seconds(3));
  a.broker.RunOnce();
  EXPECT_EQ(a.broker.mode(), LimiterMode::kRedis);
}

TEST_F(LeaseBrokerTest, SendTimesComeFromTheStoreAndLateOnesAreDropped) {
  cluster_.SetOldEpoch();
  LimiterOptions options = Options();
  options.idle_release = absl::Seconds(1);  // not idle between the starts
  Replica a(&cluster_, "a", &clock_, options);
  a.broker.RunOnce();
  const HostLimits limits{100, 10, 1};  // 10/s: one per 100 ms
  EXPECT_FALSE(Take(a, limits).go);
  a.broker.RunOnce();
  ASSERT_THAT(a.wakeup.Take(), ElementsAre(kHost));
  // ceil(10 * 0.5 s) = 5 send times: now, +100 ms, ... +400 ms.
  EXPECT_EQ(a.observer.reserved, 5);
  EXPECT_TRUE(Take(a, limits).go);
  LeaseBroker::Decision d = Take(a, limits);
  EXPECT_FALSE(d.go);
  EXPECT_EQ(d.reason, WaitReason::kRate);
  EXPECT_EQ(d.until, clock_.Now() + absl::Milliseconds(100));
  clock_.Advance(absl::Milliseconds(100));
  EXPECT_TRUE(Take(a, limits).go);
  // +200 ms used 90 ms late (within an interval) still counts...
  clock_.Advance(absl::Milliseconds(100));
  a.broker.RunOnce();
  clock_.Advance(absl::Milliseconds(90));
  EXPECT_TRUE(Take(a, limits).go);
  // ...but at +401 ms, +300 ms is more than an interval late: dropped;
  // +400 ms is used.
  clock_.Advance(absl::Milliseconds(10));
  a.broker.RunOnce();
  clock_.Advance(absl::Milliseconds(101));
  EXPECT_TRUE(Take(a, limits).go);
  a.broker.RunOnce();
  EXPECT_EQ(a.observer.dropped, 1);
}

TEST_F(LeaseBrokerTest, UnusedSendTimesGoBackToTheOthers) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  Replica b(&cluster_, "b", &clock_);
  a.broker.RunOnce();
  b.broker.RunOnce();
  const HostLimits limits{100, 10, 1};
  EXPECT_FALSE(Take(a, limits).go);
  a.broker.RunOnce();
  // ceil(10/s * 0.5 s / 1 live when a heartbeat) = 5 send times: now,
  // +100 ms, ... +400 ms.
  ASSERT_EQ(a.observer.reserved, 5);
  ASSERT_TRUE(Take(a, limits).go);
  a.broker.Release(kHost, clock_.Now());
  // Nobody at a asked for two intervals: the other 4 go back...
  clock_.Advance(absl::Milliseconds(200));
  a.broker.RunOnce();
  EXPECT_EQ(a.observer.returned, 4);
  // ...and b gets them first: +100 ms (not yet an interval late) and
  // +200 ms at once, +300 ms later; nothing new was reserved meanwhile.
  EXPECT_FALSE(Take(b, limits).go);
  b.broker.RunOnce();
  EXPECT_TRUE(Take(b, limits).go);
  EXPECT_TRUE(Take(b, limits).go);
  const LeaseBroker::Decision next = Take(b, limits);
  EXPECT_FALSE(next.go);
  EXPECT_EQ(next.until, clock_.Now() + absl::Milliseconds(100));
}

TEST_F(LeaseBrokerTest, APausePublishedByOneReplicaHoldsAtTheOthers) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  Replica b(&cluster_, "b", &clock_);
  a.broker.RunOnce();
  b.broker.RunOnce();
  const HostLimits limits{4, 0, 1};
  ASSERT_EQ(TakeAll(b, limits, 2), 2);
  const absl::Time until = clock_.Now() + absl::Seconds(5);
  a.broker.PublishPause(kHost, until, clock_.Now());
  EXPECT_EQ(Take(a, limits).reason, WaitReason::kPaused);
  a.broker.RunOnce();
  EXPECT_EQ(cluster_.PausedUntil(kHost), until);
  // b still holds idle leases, but its state is stale after two sync
  // intervals: it syncs and sees the pause.
  clock_.Advance(absl::Milliseconds(200));
  b.broker.Release(kHost, clock_.Now());
  EXPECT_FALSE(Take(b, limits).go);
  b.broker.RunOnce();
  const LeaseBroker::Decision d = Take(b, limits);
  EXPECT_FALSE(d.go);
  EXPECT_EQ(d.reason, WaitReason::kPaused);
  EXPECT_EQ(d.until, until);
}

TEST_F(LeaseBrokerTest, FailureModesAreExplicit) {
  cluster_.Down();
  LimiterOptions open = Options();
  open.on_failure = FailurePolicy::kFailOpen;
  open.expected_replicas = 4;
  Replica a(&cluster_, "a", &clock_, open);
  a.broker.RunOnce();
  EXPECT_EQ(TakeAll(a, HostLimits{3, 0, 1}), 3);
  LimiterOptions closed = Options();
  closed.on_failure = FailurePolicy::kFailClosed;
  Replica b(&cluster_, "b", &clock_, closed);
  b.broker.RunOnce();
  EXPECT_FALSE(Take(b, HostLimits{3, 0, 1}).go);
}

TEST_F(LeaseBrokerTest, StopGivesEverythingBackAndLeaves) {
  cluster_.SetOldEpoch();
  auto a = std::make_unique<Replica>(&cluster_, "a", &clock_);
  a->broker.RunOnce();
  ASSERT_EQ(TakeAll(*a, HostLimits{4, 0, 1}), 4);
  EXPECT_EQ(cluster_.Members(), 1);
  a->broker.Stop();
  EXPECT_EQ(cluster_.Leases(kHost), 0);
  EXPECT_EQ(cluster_.Members(), 0);
}

TEST_F(LeaseBrokerTest, UntakeGivesBackTheSlotAndTheSendTime) {
  cluster_.SetOldEpoch();
  Replica a(&cluster_, "a", &clock_);
  a.broker.RunOnce();
  const HostLimits limits{1, 10, 1};
  EXPECT_FALSE(Take(a, limits).go);
  a.broker.RunOnce();
  ASSERT_TRUE(Take(a, limits).go);
  a.broker.Untake(kHost);
  EXPECT_TRUE(Take(a, limits).go);
}

// The broker's own thread runs the rounds while two worker threads take
// and release at two hosts (real clock; TSan checks the locking): the
// limit holds at every moment, every wait ends, and Stop() gives every
// lease back.
TEST(LeaseBrokerThreadTest, RoundsOnItsThreadServeConcurrentWorkers) {
  FakeCluster cluster(RealClock::Get());
  cluster.SetOldEpoch();
  LimiterOptions options = Options();
  options.sync_interval = absl::Milliseconds(10);
  auto a = std::make_unique<Replica>(&cluster, "a", RealClock::Get(), options);
  a->broker.Start();
  const HostLimits limits{3, 0, 1};
  std::atomic<int> running[2] = {0, 0};
  std::atomic<int> most = 0;
  std::atomic<int> starts = 0;
  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w) {
    workers.emplace_back([&, w] {
      const std::string host = absl::StrCat("http://h", w, ":1");
      const absl::Time end = absl::Now() + absl::Milliseconds(300);
      std::vector<int> held;
      while (absl::Now() < end) {
        const LeaseBroker::Decision d = a->broker.TryTake(
            host, limits, &a->wakeup, RealClock::Get()->Now());
        if (d.go) {
          const int now_running = ++running[w];
          int seen = most.load();
          while (now_running > seen &&
                 !most.compare_exchange_weak(seen, now_running)) {
          }
          ++starts;
          held.push_back(0);
        }
        if (!d.go || held.size() == 3) {
          for (size_t i = 0; i < held.size(); ++i) {
            --running[w];
            a->broker.Release(host, RealClock::Get()->Now());
          }
          held.clear();
          absl::SleepFor(absl::Microseconds(200));
        }
      }
      for (size_t i = 0; i < held.size(); ++i) {
        --running[w];
        a->broker.Release(host, RealClock::Get()->Now());
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_LE(most.load(), limits.max_concurrency);
  EXPECT_GT(starts.load(), 10);
  a->broker.Stop();
  EXPECT_EQ(cluster.Leases("http://h0:1"), 0);
  EXPECT_EQ(cluster.Leases("http://h1:1"), 0);
  EXPECT_EQ(cluster.Members(), 0);
}

}  // namespace
}  // namespace fetchd::cluster

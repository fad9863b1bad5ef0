// The curl worker pool on its own (no gRPC): real libcurl against a real
// loopback server, results collected by a test Batch.
#include "service/transport/worker_pool.h"

#include <curl/curl.h>

#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"
#include "service/core/politeness/rule_set.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::transport {
namespace {

using fetch::v1::FetchResult;

// Collects the results of its jobs; Await() blocks until `n` arrived.
class RecordingBatch final : public core::Batch {
 public:
  RecordingBatch(const Options& options, core::DispatchWaker* waker)
      : core::Batch(options, waker) {}

  void Deliver(FetchResult result, bool holds_window) override {
    OnResultWritten(holds_window);
    absl::MutexLock lock(&mu_);
    results_.push_back(std::move(result));
  }

  std::vector<FetchResult> Await(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();
      return results_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return results_;
  }

 private:
  absl::Mutex mu_;
  std::vector<FetchResult> results_ ABSL_GUARDED_BY(mu_);
};

class WorkerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    curl_global_init(CURL_GLOBAL_ALL);
    ASSERT_TRUE(http_.Start().ok());
    WorkerPool::Options options;
    options.workers = 2;
    options.max_per_host = 2;
    auto pool = WorkerPool::Create(options, RealClock::Get());
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
  }

  std::shared_ptr<RecordingBatch> NewBatch() {
    return std::make_shared<RecordingBatch>(core::Batch::Options{},
                                            pool_.get());
  }

  std::unique_ptr<core::FetchJob> Job(const std::shared_ptr<core::Batch>& b,
                                      uint32_t index, const std::string& path) {
    auto job = std::make_unique<core::FetchJob>();
    job->batch = b;
    job->index = index;
    job->url = http_.Url(path);
    job->host_key = "http://127.0.0.1:" + std::to_string(http_.port());
    job->retry.max_attempts = 1;
    return job;
  }

  testing::TestHttpServer http_;
  std::unique_ptr<WorkerPool> pool_;
};

TEST_F(WorkerPoolTest, EveryJobGetsExactlyOneResult) {
  auto batch = NewBatch();
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (uint32_t i = 0; i < 50; ++i) jobs.push_back(Job(batch, i, "/ok"));
  pool_->Submit(std::move(jobs));
  const auto results = batch->Await(50, absl::Seconds(10));
  ASSERT_EQ(results.size(), 50u);
  std::vector<int> seen(50, 0);
  for (const auto& r : results) {
    EXPECT_EQ(r.status(), 200u);
    ++seen.at(r.index());
  }
  for (int count : seen) EXPECT_EQ(count, 1);
  EXPECT_LE(http_.tracker().max(), 2);
}

TEST_F(WorkerPoolTest, CancelBatchEndsQueuedAndRunningJobsOnly) {
  auto doomed = NewBatch();
  auto other = NewBatch();
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  // Two run (per-host limit 2), three wait in the queue.
  for (uint32_t i = 0; i < 5; ++i) {
    jobs.push_back(Job(doomed, i, "/drip?bytes=100000&interval_ms=10"));
  }
  pool_->Submit(std::move(jobs));
  ASSERT_TRUE(http_.tracker().AwaitCurrent(2, absl::Seconds(5)));

  ASSERT_TRUE(doomed->Cancel(fetch::v1::ERROR_KIND_CANCELLED));
  pool_->CancelBatch(doomed);
  const auto results = doomed->Await(5, absl::Seconds(5));
  ASSERT_EQ(results.size(), 5u);
  int started = 0;
  for (const auto& r : results) {
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_CANCELLED);
    started += r.attempts() > 0 ? 1 : 0;
  }
  EXPECT_EQ(started, 2);
  EXPECT_TRUE(http_.WaitForNoActiveStreams(absl::Seconds(2)));

  // The pool keeps serving other batches.
  std::vector<std::unique_ptr<core::FetchJob>> more;
  more.push_back(Job(other, 0, "/ok"));
  pool_->Submit(std::move(more));
  const auto ok = other->Await(1, absl::Seconds(5));
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].status(), 200u);
}

TEST_F(WorkerPoolTest, StopGivesEveryUnfinishedJobACancelledResult) {
  auto batch = NewBatch();
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (uint32_t i = 0; i < 6; ++i) jobs.push_back(Job(batch, i, "/stall"));
  pool_->Submit(std::move(jobs));
  ASSERT_TRUE(http_.tracker().AwaitCurrent(2, absl::Seconds(5)));
  pool_->Stop();
  // Stop() joined the workers, so every result is already there.
  const auto results = batch->Await(6, absl::ZeroDuration());
  ASSERT_EQ(results.size(), 6u);
  for (const auto& r : results) {
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_CANCELLED);
    EXPECT_EQ(r.error_message(), "server shutting down");
  }
  EXPECT_EQ(pool_->stats().in_flight, 0);
  EXPECT_EQ(pool_->stats().queued, 0);
}

TEST_F(WorkerPoolTest, RetryWaitsForItsBackoffThenSucceeds) {
  auto batch = NewBatch();
  auto job = Job(batch, 0, "/sequence?key=w&codes=503,200");
  job->retry.max_attempts = 2;
  job->retry.base_backoff = absl::Milliseconds(1);
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  jobs.push_back(std::move(job));
  pool_->Submit(std::move(jobs));
  const auto results = batch->Await(1, absl::Seconds(5));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 200u);
  EXPECT_EQ(results[0].attempts(), 2u);
}

TEST_F(WorkerPoolTest, AJobSubmittedAfterStopStillGetsItsResult) {
  pool_->Stop();
  auto batch = NewBatch();
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (uint32_t i = 0; i < 3; ++i) jobs.push_back(Job(batch, i, "/ok"));
  pool_->Submit(std::move(jobs));
  // Refused on the calling thread: the results are there on return.
  const auto results = batch->Await(3, absl::ZeroDuration());
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) {
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_CANCELLED);
    EXPECT_EQ(r.error_message(), "server shutting down");
    EXPECT_EQ(r.attempts(), 0u);
  }
  EXPECT_EQ(http_.TotalRequests(), 0);
}

// One error for a body over the cap, whoever noticed it: curl refusing the
// Content-Length, or the count of bytes as they arrive (chunked). Neither
// keeps a body, and neither is retried.
TEST_F(WorkerPoolTest, BodyOverTheCapIsOneErrorWithOneMessageAndNoBody) {
  auto batch = NewBatch();
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  jobs.push_back(Job(batch, 0, "/bytes?n=100000"));  // Content-Length
  jobs.push_back(Job(batch, 1, "/drip?bytes=2000&interval_ms=0"));  // chunked
  for (auto& job : jobs) {
    job->max_body_bytes = 1000;
    job->retry.max_attempts = 3;
    job->retry.retry_on = {fetch::v1::ERROR_KIND_BODY_TOO_LARGE};
  }
  pool_->Submit(std::move(jobs));
  const auto results = batch->Await(2, absl::Seconds(10));
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    SCOPED_TRACE(r.index());
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE);
    EXPECT_EQ(r.error_message(),
              "response body exceeds max_body_bytes (1000 bytes)");
    EXPECT_EQ(r.body(), "");
    EXPECT_EQ(r.status(), 200u);
    EXPECT_EQ(r.attempts(), 1u);
  }
}

// Politeness rules given to the pool reach its workers: two 500s in a row
// open the host's breaker, and the next requests end at once with
// CIRCUIT_OPEN, without reaching the server.
TEST_F(WorkerPoolTest, OpenBreakerEndsRequestsWithoutAConnection) {
  core::politeness::HostRule flaky;
  flaky.name = "flaky";
  flaky.hosts = {"127.0.0.1"};
  flaky.max_concurrency = 1;
  flaky.breaker.consecutive_failures = 2;
  flaky.breaker.base_open_time = absl::Minutes(5);
  flaky.breaker.max_open_time = absl::Minutes(5);
  absl::StatusOr<core::politeness::RuleSet> rules =
      core::politeness::RuleSet::Create(core::politeness::HostRule{}, {flaky});
  ASSERT_TRUE(rules.ok()) << rules.status();
  pool_->Stop();
  WorkerPool::Options options;
  options.workers = 2;
  options.politeness =
      std::make_shared<const core::politeness::RuleSet>(*std::move(rules));
  auto pool = WorkerPool::Create(options, RealClock::Get());
  ASSERT_TRUE(pool.ok()) << pool.status();
  pool_ = *std::move(pool);

  auto failing = NewBatch();
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (uint32_t i = 0; i < 2; ++i) {
    jobs.push_back(Job(failing, i, "/status?code=500"));
  }
  pool_->Submit(std::move(jobs));
  auto results = failing->Await(2, absl::Seconds(10));
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) EXPECT_EQ(r.status(), 500u);
  EXPECT_EQ(http_.TotalRequests(), 2);

  auto refused = NewBatch();
  jobs.clear();
  for (uint32_t i = 0; i < 3; ++i) {
    jobs.push_back(Job(refused, i, "/ok"));
  }
  pool_->Submit(std::move(jobs));
  results = refused->Await(3, absl::Seconds(10));
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) {
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_CIRCUIT_OPEN);
    EXPECT_THAT(r.error_message(), ::testing::HasSubstr("\"flaky\""));
    EXPECT_EQ(r.attempts(), 0u);
    EXPECT_EQ(r.status(), 0u);
  }
  EXPECT_EQ(http_.TotalRequests(), 2);
}

// A retry the host's budget can't take is not made: the request ends with
// its last error, and the message names the budget.
TEST_F(WorkerPoolTest, RetryOverTheBudgetIsNotMade) {
  core::politeness::HostRule stingy;
  stingy.name = "stingy";
  stingy.hosts = {"127.0.0.1"};
  stingy.breaker.consecutive_failures = 0;
  stingy.retry_budget.ratio = 0;
  stingy.retry_budget.min_retry_concurrency = 0;
  absl::StatusOr<core::politeness::RuleSet> rules =
      core::politeness::RuleSet::Create(core::politeness::HostRule{}, {stingy});
  ASSERT_TRUE(rules.ok()) << rules.status();
  pool_->Stop();
  WorkerPool::Options options;
  options.politeness =
      std::make_shared<const core::politeness::RuleSet>(*std::move(rules));
  auto pool = WorkerPool::Create(options, RealClock::Get());
  ASSERT_TRUE(pool.ok()) << pool.status();
  pool_ = *std::move(pool);

  auto batch = NewBatch();
  auto job = Job(batch, 0, "/status?code=500");
  job->fail_on_http_error = true;
  job->retry.max_attempts = 3;
  job->retry.base_backoff = absl::Milliseconds(1);
  job->retry.retry_on_status = {500};
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  jobs.push_back(std::move(job));
  pool_->Submit(std::move(jobs));
  const auto results = batch->Await(1, absl::Seconds(10));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_HTTP_STATUS);
  EXPECT_EQ(results[0].attempts(), 1u);
  EXPECT_THAT(results[0].error_message(),
              ::testing::HasSubstr("; not retried: politeness rule "
                                   "\"stingy\""));
  EXPECT_EQ(http_.TotalRequests(), 1);
}

}  // namespace
}  // namespace fetchd::transport

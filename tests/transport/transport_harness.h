// TransportHarness: the engine without gRPC: a real WorkerPool (real
// libcurl) with the destination policy of a default config plus loopback,
// and a CollectingBatch that receives results and streamed bodies the way
// the API's batch stream would. Tests build FetchJobs as the API would
// (Job() gives the API's defaults for a URL) and Run() them. Jobs are plain
// data, so what the API's validation would refuse is out of scope here;
// tests/api covers it.
//
// Thread-safety: the test thread owns the harness; results arrive on the
// workers and are collected under a lock.
#ifndef FETCHD_TESTS_TRANSPORT_TRANSPORT_HARNESS_H_
#define FETCHD_TESTS_TRANSPORT_TRANSPORT_HARNESS_H_

#include <curl/curl.h>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"
#include "service/core/batch.h"
#include "service/core/fetch_job.h"
#include "service/policy/policy_config.h"
#include "service/transport/worker_pool.h"
#include "service/url/http_url.h"
#include "tests/testing/fetch_helpers.h"

namespace fetchd::testing {

// Collects the results of its jobs, and their streamed heads and chunks.
class CollectingBatch final : public core::Batch {
 public:
  CollectingBatch(const Options& options, core::DispatchWaker* waker)
      : core::Batch(options, waker) {}

  void Deliver(fetch::v1::FetchResult result, bool holds_window) override {
    OnResultWritten(holds_window);
    absl::MutexLock lock(&mu_);
    results_.push_back(std::move(result));
  }

  // Blocks until `n` results arrived or `timeout` passed; returns them all.
  std::vector<fetch::v1::FetchResult> Await(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [&] {
      mu_.AssertHeld();
      return results_.size() >= n;
    };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return results_;
  }

  // The streamed body bytes of the job at `index`, in order.
  std::string StreamedBody(uint32_t index) {
    absl::MutexLock lock(&mu_);
    std::string body;
    for (const auto& chunk : chunks_) {
      if (chunk.index() == index) body += chunk.data();
    }
    return body;
  }
  int heads() {
    absl::MutexLock lock(&mu_);
    return heads_;
  }

 protected:
  void DeliverHead(fetch::v1::BodyHead head, int64_t bytes) override {
    (void)head;
    {
      absl::MutexLock lock(&mu_);
      ++heads_;
    }
    OnStreamWritten(bytes);
  }
  void DeliverChunk(fetch::v1::BodyChunk chunk, int64_t bytes) override {
    {
      absl::MutexLock lock(&mu_);
      chunks_.push_back(std::move(chunk));
    }
    OnStreamWritten(bytes);
  }

 private:
  absl::Mutex mu_;
  std::vector<fetch::v1::FetchResult> results_ ABSL_GUARDED_BY(mu_);
  std::vector<fetch::v1::BodyChunk> chunks_ ABSL_GUARDED_BY(mu_);
  int heads_ ABSL_GUARDED_BY(mu_) = 0;
};

class TransportHarness {
 public:
  TransportHarness() {
    curl_global_init(CURL_GLOBAL_ALL);
    options_.workers = 2;
    // The tests' servers are on loopback, which the default policy denies.
    policy_.set_deny_special_ranges(true);  // as DefaultServerConfig
    policy_.add_allow()->set_cidr("127.0.0.0/8");
    policy_.add_allow()->set_cidr("::1");
  }
  ~TransportHarness() { Stop(); }

  // Set before Start().
  transport::WorkerPool::Options& options() { return options_; }
  fetch::v1::DestinationPolicy& policy() { return policy_; }

  void Start() {
    auto gate = policy::DestinationGateFromConfig(policy_);
    ASSERT_TRUE(gate.ok()) << gate.status();
    options_.destinations = *std::move(gate);
    auto pool = transport::WorkerPool::Create(options_, RealClock::Get());
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
  }
  void Stop() {
    if (pool_ != nullptr) pool_->Stop();
  }
  transport::WorkerPool& pool() { return *pool_; }

  // A job for `url` with the API's defaults (3 attempts, 10 redirects, 2 MiB
  // body cap...); index and id are set by Run().
  static std::unique_ptr<core::FetchJob> Job(const std::string& url) {
    auto job = std::make_unique<core::FetchJob>();
    absl::StatusOr<url::HttpUrl> parsed = url::ParseHttpUrl(url);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    if (parsed.ok()) {
      job->url = parsed->url;
      job->host_key = parsed->host_key;
    }
    job->retry.max_attempts = 3;
    job->retry.base_backoff = absl::Milliseconds(100);
    return job;
  }

  std::shared_ptr<CollectingBatch> NewBatch(
      const core::Batch::Options& options = {}) {
    return std::make_shared<CollectingBatch>(options, pool_.get());
  }

  // Runs `jobs` in `batch` to the end; results by index, each index once.
  std::vector<fetch::v1::FetchResult> Run(
      std::vector<std::unique_ptr<core::FetchJob>> jobs,
      const std::shared_ptr<CollectingBatch>& batch) {
    const size_t n = jobs.size();
    for (size_t i = 0; i < n; ++i) {
      jobs[i]->batch = batch;
      jobs[i]->index = static_cast<uint32_t>(i);
      jobs[i]->id = "r" + std::to_string(i);
    }
    pool_->Submit(std::move(jobs));
    std::vector<fetch::v1::FetchResult> by_index(n);
    std::set<uint32_t> seen;
    for (auto& r : batch->Await(n, absl::Seconds(60))) {
      EXPECT_TRUE(seen.insert(r.index()).second) << "index " << r.index();
      by_index.at(r.index()) = std::move(r);
    }
    EXPECT_EQ(seen.size(), n);
    return by_index;
  }
  std::vector<fetch::v1::FetchResult> Run(
      std::vector<std::unique_ptr<core::FetchJob>> jobs,
      const core::Batch::Options& options = {}) {
    return Run(std::move(jobs), NewBatch(options));
  }
  // One job.
  fetch::v1::FetchResult RunOne(std::unique_ptr<core::FetchJob> job) {
    std::vector<std::unique_ptr<core::FetchJob>> jobs;
    jobs.push_back(std::move(job));
    return Run(std::move(jobs)).at(0);
  }

 private:
  transport::WorkerPool::Options options_;
  fetch::v1::DestinationPolicy policy_;
  std::unique_ptr<transport::WorkerPool> pool_;
};

// A list of jobs, for brevity.
template <typename... Ptrs>
std::vector<std::unique_ptr<core::FetchJob>> Jobs(Ptrs... jobs) {
  std::vector<std::unique_ptr<core::FetchJob>> out;
  (out.push_back(std::move(jobs)), ...);
  return out;
}

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TRANSPORT_TRANSPORT_HARNESS_H_

// Overload and drain under load, through the real fetchd binary: several
// clients (the C++ client library, one channel each) keep batches going at
// once, and the test checks what every single request got.
//
// - More batches than limits.max_pending allows: the extra ones get
//   RESOURCE_EXHAUSTED with a retry hint and no result, while every
//   admitted batch gets exactly one 200 per request.
// - SIGTERM in the middle of such a run: batches in flight finish, later
//   ones are refused, and the target saw each admitted request exactly once
//   (nothing lost, nothing duplicated); fetchd exits 0.
#include <signal.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/fetch_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchEvent;
using ::testing::HasSubstr;

// What one FetchBatch call came back with.
struct BatchOutcome {
  absl::Status status;
  int results = 0;
  int ok_results = 0;
  bool duplicate_index = false;
  absl::Time started;
  absl::Time ended;
};

BatchOutcome RunBatch(client::FetchClient& client, const BatchRequest& batch) {
  BatchOutcome out;
  std::set<uint32_t> seen;
  out.started = absl::Now();
  out.status = client.FetchBatch(batch, [&](const FetchEvent& event) {
    for (const auto& r : event.results()) {
      ++out.results;
      if (!seen.insert(r.index()).second) out.duplicate_index = true;
      if (r.status() == 200 && r.error() == fetch::v1::ERROR_KIND_NONE) {
        ++out.ok_results;
      }
    }
  });
  out.ended = absl::Now();
  return out;
}

BatchRequest DelayBatch(const TestHttpServer& http, int requests, int delay_ms,
                        int concurrency) {
  BatchRequest batch;
  batch.set_max_concurrency(concurrency);
  for (int i = 0; i < requests; ++i) {
    batch.add_requests()->set_url(
        http.Url(absl::StrCat("/delay?ms=", delay_ms)));
  }
  return batch;
}

class LoadE2eTest : public FetchdE2eTest {
 protected:
  std::unique_ptr<client::FetchClient> Connect() {
    absl::StatusOr<std::unique_ptr<client::FetchClient>> c =
        client::FetchClient::Connect(fetchd_address_, client::ClientOptions());
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }
};

TEST_F(LoadE2eTest, OverloadRejectsWithAHintWhileAdmittedBatchesComplete) {
  constexpr int kClients = 8;
  constexpr int kBatchesEach = 5;
  constexpr int kRequests = 50;
  // Room for four batches of 50 at a time; eight clients want more.
  ASSERT_NO_FATAL_FAILURE(
      StartFetchd({"--workers=2", "--max_pending=200", "--max_batch_size=100",
                   "--max_per_host=64"}));
  absl::Mutex mu;
  std::vector<BatchOutcome> outcomes;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      std::unique_ptr<client::FetchClient> client = Connect();
      if (client == nullptr) return;
      const BatchRequest batch = DelayBatch(http_, kRequests, 50, 25);
      for (int b = 0; b < kBatchesEach; ++b) {
        BatchOutcome out = RunBatch(*client, batch);
        absl::MutexLock lock(&mu);
        outcomes.push_back(std::move(out));
      }
    });
  }
  for (std::thread& t : clients) t.join();

  ASSERT_EQ(outcomes.size(), static_cast<size_t>(kClients * kBatchesEach));
  int admitted = 0;
  int rejected = 0;
  for (const BatchOutcome& out : outcomes) {
    if (out.status.ok()) {
      ++admitted;
      EXPECT_EQ(out.results, kRequests);
      EXPECT_EQ(out.ok_results, kRequests);
      EXPECT_FALSE(out.duplicate_index);
    } else {
      ++rejected;
      EXPECT_EQ(out.status.code(), absl::StatusCode::kResourceExhausted)
          << out.status;
      EXPECT_THAT(std::string(out.status.message()),
                  HasSubstr("retry-after-ms"));
      EXPECT_EQ(out.results, 0);
    }
  }
  EXPECT_GT(admitted, 0);
  EXPECT_GT(rejected, 0);
  // Every admitted request reached the target once; no rejected one did.
  EXPECT_EQ(http_.RequestCount("/delay"), admitted * kRequests);
}

TEST_F(LoadE2eTest, SigtermDuringLoadLosesAndDuplicatesNothing) {
  constexpr int kClients = 6;
  constexpr int kRequests = 40;
  // Far more than a run needs: the loops end when fetchd refuses them.
  constexpr int kMaxBatchesEach = 500;
  ASSERT_NO_FATAL_FAILURE(
      StartFetchd({"--workers=2", "--drain_seconds=20", "--max_per_host=64"}));
  absl::Mutex mu;
  std::vector<BatchOutcome> outcomes;
  std::atomic<int> completed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      std::unique_ptr<client::FetchClient> client = Connect();
      if (client == nullptr) return;
      const BatchRequest batch = DelayBatch(http_, kRequests, 20, 8);
      for (int b = 0; b < kMaxBatchesEach; ++b) {
        BatchOutcome out = RunBatch(*client, batch);
        const bool refused = !out.status.ok();
        if (!refused) completed.fetch_add(1);
        absl::MutexLock lock(&mu);
        outcomes.push_back(std::move(out));
        if (refused) return;  // fetchd is draining or gone
      }
    });
  }
  // Let the run get going, then stop fetchd in the middle of it.
  ASSERT_TRUE(PollUntil([&] { return completed.load() >= 2 * kClients; },
                        absl::Seconds(20)));
  const absl::Time signalled = absl::Now();
  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  for (std::thread& t : clients) t.join();
  const ExitInfo fetchd_info = fetchd_->Wait(kProcessTimeout);

  int admitted = 0;
  int finished_after_signal = 0;
  for (const BatchOutcome& out : outcomes) {
    EXPECT_FALSE(out.duplicate_index);
    if (out.status.ok()) {
      ++admitted;
      if (out.ended > signalled) ++finished_after_signal;
      EXPECT_EQ(out.results, kRequests);
      EXPECT_EQ(out.ok_results, kRequests);
    } else {
      // Refused as a whole: draining (UNAVAILABLE) or the listener closed.
      // A call that reaches the server while gRPC's Shutdown() runs, after
      // the drain, is failed by gRPC itself before fetchd sees it; the
      // client then reads CANCELLED. Only a call started after the signal
      // can meet that, and like every refused call it got nothing (the
      // target's request count below shows none of its requests ran).
      if (out.status.code() == absl::StatusCode::kCancelled) {
        EXPECT_GT(out.started, signalled) << out.status;
      } else {
        EXPECT_EQ(out.status.code(), absl::StatusCode::kUnavailable)
            << out.status;
      }
      EXPECT_EQ(out.results, 0) << out.status;
    }
  }
  // Every client ended by being refused, not by running out of batches.
  EXPECT_EQ(static_cast<int>(outcomes.size()), admitted + kClients);
  // Batches were in flight when the signal came, and finished.
  EXPECT_GT(finished_after_signal, 0);
  // The target saw each admitted request exactly once.
  EXPECT_EQ(http_.RequestCount("/delay"), admitted * kRequests);
  EXPECT_EQ(fetchd_info.exit_code, 0) << Describe(fetchd_info);
  EXPECT_FALSE(fetchd_info.timed_out);
}

}  // namespace
}  // namespace fetchd::testing

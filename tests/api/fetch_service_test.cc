// The service end to end inside one process: real gRPC over loopback TCP,
// real curl workers, real HTTP servers on 127.0.0.1/127.0.0.2 port 0.
#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchEvent;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;

class FetchServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(http_.Start().ok()); }

  TestHttpServer http_;
  ServiceHarness fetchd_;
};

TEST_F(FetchServiceTest, FetchesAndReportsTheResponse) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/bytes?n=1500"));
  const auto results = fetchd_.Run(batch);
  ASSERT_EQ(results.size(), 1u);
  const FetchResult& r = results[0];
  EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_NONE) << r.error_message();
  EXPECT_EQ(r.status(), 200u);
  EXPECT_EQ(r.id(), "r0");
  EXPECT_EQ(r.body(), std::string(1500, 'x'));
  EXPECT_EQ(r.bytes_received(), 1500u);
  EXPECT_EQ(r.attempts(), 1u);
  EXPECT_EQ(r.final_url(), http_.Url("/bytes?n=1500"));
  EXPECT_EQ(r.remote_address(), "127.0.0.1:" + std::to_string(http_.port()));
  EXPECT_EQ(r.http_version(), "1.1");
  EXPECT_GT(Seconds(r.timings().total()), 0.0);
  bool has_length = false;
  for (const auto& h : r.headers()) {
    if (h.name() == "Content-Length") has_length = h.value() == "1500";
  }
  EXPECT_TRUE(has_length);
}

// One result per request even when the call's deadline comes first: the
// unfinished ones end DEADLINE_EXCEEDED limits.deadline_margin before it and
// reach the caller, and the call ends OK.
TEST_F(FetchServiceTest,
       UnfinishedRequestsGetDeadlineResultsBeforeTheDeadline) {
  fetchd_.config().mutable_limits()->mutable_deadline_margin()->set_nanos(
      300'000'000);
  fetchd_.Start();
  fetch::v1::BatchRequest batch;
  AddUrl(&batch, http_.Url("/stall?ms=30000"));
  AddUrl(&batch, http_.Url("/bytes?n=10"));
  std::vector<fetch::v1::FetchResult> results;
  const absl::Status status = fetchd_.client().FetchBatch(
      batch,
      [&](const fetch::v1::FetchEvent& event) {
        for (const auto& r : event.results()) results.push_back(r);
      },
      absl::Now() + absl::Seconds(2));
  ASSERT_TRUE(status.ok()) << status;
  ASSERT_EQ(results.size(), 2u);
  std::vector<fetch::v1::FetchResult> by_index(2);
  for (auto& r : results) by_index.at(r.index()) = r;
  EXPECT_EQ(by_index[1].status(), 200);
  EXPECT_EQ(by_index[0].error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED)
      << by_index[0].DebugString();
  EXPECT_THAT(by_index[0].error_message(),
              ::testing::HasSubstr("limits.deadline_margin"));
  EXPECT_EQ(by_index[0].id(), "r0");

  // The unary call too: the result, not an RPC error.
  fetch::v1::FetchRequest one;
  one.set_url(http_.Url("/stall?ms=30000"));
  absl::StatusOr<fetch::v1::FetchResult> result =
      fetchd_.client().Fetch(one, absl::Now() + absl::Seconds(2));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED);
}

TEST_F(FetchServiceTest, PerHostLimitHoldsForAThousandUrls) {
  fetchd_.config().mutable_limits()->set_max_per_host(4);
  fetchd_.Start();
  BatchRequest batch;
  for (int i = 0; i < 1000; ++i) AddUrl(&batch, http_.Url("/delay?ms=2"));
  const auto results = fetchd_.Run(batch);
  for (const auto& r : results) {
    ASSERT_EQ(r.status(), 200u) << r.error_message();
  }
  EXPECT_EQ(http_.RequestCount("/delay"), 1000);
  EXPECT_LE(http_.tracker().max(), 4);
  EXPECT_EQ(http_.tracker().max(), 4);  // the limit is also used, not undershot
}

TEST_F(FetchServiceTest, TwoHostsAreLimitedIndependently) {
  ConcurrencyTracker both;
  TestHttpServer a({.host = "127.0.0.1", .shared_tracker = &both});
  TestHttpServer b({.host = "127.0.0.2", .shared_tracker = &both});
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  fetchd_.config().mutable_limits()->set_max_per_host(4);
  fetchd_.Start();
  BatchRequest batch;
  for (int i = 0; i < 200; ++i) {
    AddUrl(&batch, a.Url("/delay?ms=10"));
    AddUrl(&batch, b.Url("/delay?ms=10"));
  }
  const auto results = fetchd_.Run(batch);
  for (const auto& r : results) ASSERT_EQ(r.status(), 200u);
  EXPECT_LE(a.tracker().max(), 4);
  EXPECT_LE(b.tracker().max(), 4);
  EXPECT_GT(both.max(), 4);  // each host had its own 4 slots at once
}

TEST_F(FetchServiceTest, RetriesUntilSuccess) {
  fetchd_.Start();
  BatchRequest batch;
  *batch.mutable_defaults()->mutable_retry()->mutable_base_backoff() =
      Millis(1);
  AddUrl(&batch, http_.Url("/sequence?key=a&codes=503,503,200"));
  const auto results = fetchd_.Run(batch);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 200u);
  EXPECT_EQ(results[0].attempts(), 3u);
  EXPECT_EQ(http_.RequestCount("/sequence"), 3);
}

TEST_F(FetchServiceTest, GivesUpAfterMaxAttemptsWithTheLastStatus) {
  fetchd_.Start();
  BatchRequest batch;
  *batch.mutable_defaults()->mutable_retry()->mutable_base_backoff() =
      Millis(1);
  batch.mutable_defaults()->mutable_retry()->set_max_attempts(2);
  AddUrl(&batch, http_.Url("/status?code=503"));
  const auto results = fetchd_.Run(batch);
  EXPECT_EQ(results[0].status(), 503u);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_NONE);
  EXPECT_EQ(results[0].attempts(), 2u);
}

TEST_F(FetchServiceTest, PostIsNotRetriedOnceSentUnlessAsked) {
  fetchd_.Start();
  BatchRequest batch;
  *batch.mutable_defaults()->mutable_retry()->mutable_base_backoff() =
      Millis(1);
  auto* plain = AddUrl(&batch, http_.Url("/sequence?key=p&codes=503,200"));
  plain->set_method("POST");
  plain->set_body("payload");
  auto* opted = AddUrl(&batch, http_.Url("/sequence?key=q&codes=503,200"));
  opted->set_method("POST");
  opted->set_body("payload");
  opted->mutable_retry()->set_retry_non_idempotent(true);
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 503u);
  EXPECT_EQ(results[0].attempts(), 1u);
  EXPECT_EQ(results[1].status(), 200u);
  EXPECT_EQ(results[1].attempts(), 2u);
  EXPECT_EQ(http_.RequestCount("/sequence", "POST"), 3);
}

TEST_F(FetchServiceTest, ConnectionRefusedIsRetried) {
  fetchd_.Start();
  BatchRequest batch;
  *batch.mutable_defaults()->mutable_retry()->mutable_base_backoff() =
      Millis(1);
  batch.mutable_defaults()->mutable_retry()->set_max_attempts(3);
  auto* post = AddUrl(
      &batch, "http://127.0.0.1:" + std::to_string(UnusedLoopbackPort()) + "/");
  post->set_method("POST");  // nothing was sent, so even POST is retried
  const auto results = fetchd_.Run(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_CONNECT);
  EXPECT_EQ(results[0].attempts(), 3u);
}

TEST_F(FetchServiceTest, StallAfterHeadersIsAReadIdleTimeout) {
  fetchd_.Start();
  BatchRequest batch;
  auto* r = AddUrl(&batch, http_.Url("/stall?ms=5000"));
  *r->mutable_timeouts()->mutable_read_idle() = Millis(300);
  const auto results = fetchd_.Run(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_READ_TIMEOUT);
  EXPECT_THAT(results[0].error_message(), HasSubstr("read-idle"));
  EXPECT_EQ(results[0].status(), 200u);  // headers had arrived
  EXPECT_EQ(results[0].attempts(), 1u);
}

TEST_F(FetchServiceTest, SlowDripIsATotalTimeout) {
  fetchd_.Start();
  BatchRequest batch;
  auto* r = AddUrl(&batch, http_.Url("/drip?bytes=1000&interval_ms=20"));
  *r->mutable_timeouts()->mutable_total() = Millis(400);
  const auto results = fetchd_.Run(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_TOTAL_TIMEOUT);
  EXPECT_THAT(results[0].error_message(), HasSubstr("total timeout"));
}

TEST_F(FetchServiceTest, QueueWaitIsNotChargedToTheTransferTimeout) {
  fetchd_.config().mutable_limits()->set_max_per_host(1);
  fetchd_.Start();
  BatchRequest batch;
  *batch.mutable_defaults()->mutable_timeouts()->mutable_total() = Millis(500);
  for (int i = 0; i < 10; ++i) AddUrl(&batch, http_.Url("/delay?ms=200"));
  const auto results = fetchd_.Run(batch);
  double max_wait = 0;
  for (const auto& r : results) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
    EXPECT_EQ(r.attempts(), 1u);
    max_wait = std::max(max_wait, Seconds(r.timings().queue_wait()));
  }
  // The last of ten 200 ms requests through one slot waited ~1.8 s.
  EXPECT_GT(max_wait, 1.5);
  EXPECT_LE(http_.tracker().max(), 1);
}

TEST_F(FetchServiceTest, QueueTimeoutEndsAJobThatWaitsTooLong) {
  fetchd_.config().mutable_limits()->set_max_per_host(1);
  fetchd_.Start();
  BatchRequest batch;
  *batch.mutable_defaults()->mutable_timeouts()->mutable_queue() = Millis(200);
  AddUrl(&batch, http_.Url("/delay?ms=1000"));
  AddUrl(&batch, http_.Url("/delay?ms=1000"));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u);
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_QUEUE_TIMEOUT);
  EXPECT_EQ(results[1].attempts(), 0u);
  EXPECT_GE(Seconds(results[1].timings().queue_wait()), 0.2);
}

TEST_F(FetchServiceTest, BodyCapCountsBytesWithAndWithoutContentLength) {
  fetchd_.Start();
  BatchRequest batch;
  batch.mutable_defaults()->set_max_body_bytes(1000);
  AddUrl(&batch, http_.Url("/bytes?n=100000"));  // Content-Length
  AddUrl(&batch, http_.Url("/drip?bytes=2000&interval_ms=0"));  // chunked
  AddUrl(&batch, http_.Url("/bytes?n=1000"));  // exactly the cap
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE);
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE);
  EXPECT_LE(results[1].body().size(), 1000u);
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_NONE);
  EXPECT_EQ(results[2].body().size(), 1000u);
}

TEST_F(FetchServiceTest, CancellingMidBatchStopsTransfers) {
  fetchd_.Start();
  BatchRequest batch;
  for (int i = 0; i < 8; ++i) {
    AddUrl(&batch, http_.Url("/drip?bytes=100000&interval_ms=10"));
  }
  grpc::ClientContext context;
  auto reader = fetchd_.stub().FetchBatch(&context, batch);
  ASSERT_TRUE(Eventually([&] { return http_.ActiveStreams() == 8; }));
  const absl::Time cancelled_at = absl::Now();
  context.TryCancel();
  EXPECT_TRUE(http_.WaitForNoActiveStreams(absl::Milliseconds(250)))
      << http_.ActiveStreams() << " transfers still running";
  EXPECT_GE(http_.LastStreamEnd(), cancelled_at);
  FetchEvent event;
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(
      Eventually([&] { return fetchd_.pool().stats().in_flight == 0; }));
  EXPECT_TRUE(Eventually([&] { return fetchd_.gate().pending() == 0; }));
}

TEST_F(FetchServiceTest, RpcDeadlineStopsTransfers) {
  fetchd_.Start();
  BatchRequest batch;
  for (int i = 0; i < 4; ++i) {
    AddUrl(&batch, http_.Url("/drip?bytes=100000&interval_ms=10"));
  }
  grpc::ClientContext context;
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(500);
  context.set_deadline(deadline);
  auto reader = fetchd_.stub().FetchBatch(&context, batch);
  FetchEvent event;
  std::vector<FetchResult> results;
  while (reader->Read(&event)) {
    for (const auto& r : event.results()) results.push_back(r);
  }
  // fetchd cuts each transfer at the deadline, so its results may still
  // reach the client first (OK, every result DEADLINE_EXCEEDED); otherwise
  // the client's deadline ends the call.
  const grpc::StatusCode code = reader->Finish().error_code();
  if (code == grpc::StatusCode::OK) {
    ASSERT_EQ(results.size(), 4u);
    for (const auto& r : results) {
      EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED);
    }
  } else {
    EXPECT_EQ(code, grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_TRUE(http_.WaitForNoActiveStreams(
      absl::FromChrono(deadline) + absl::Milliseconds(250) - absl::Now()));
  EXPECT_TRUE(
      Eventually([&] { return fetchd_.pool().stats().in_flight == 0; }));
  EXPECT_TRUE(Eventually([&] { return fetchd_.gate().pending() == 0; }));
}

// A slow reader held at the window: tests/api/batch_stream_test.cc
// (SlowReaderHoldsItsBatchAtTheWindow), exactly, with a scripted fetcher.

TEST_F(FetchServiceTest, SmallBatchIsInterleavedWithABigOneAtTheSameHost) {
  fetchd_.config().mutable_limits()->set_max_per_host(2);
  fetchd_.Start();
  BatchRequest big;
  for (int i = 0; i < 2000; ++i) AddUrl(&big, http_.Url("/delay?ms=2"));
  std::atomic<int> big_done{0};
  absl::Notification big_started;
  std::thread big_thread([&] {
    grpc::ClientContext context;
    auto reader = fetchd_.stub().FetchBatch(&context, big);
    FetchEvent event;
    while (reader->Read(&event)) {
      const int before = big_done.fetch_add(event.results_size());
      if (before <= 10 && before + event.results_size() > 10) {
        big_started.Notify();
      }
    }
    EXPECT_TRUE(reader->Finish().ok());
  });
  big_started.WaitForNotification();
  BatchRequest small;
  for (int i = 0; i < 10; ++i) AddUrl(&small, http_.Url("/delay?ms=2"));
  const auto results = fetchd_.Run(small);
  const int big_done_when_small_finished = big_done.load();
  big_thread.join();
  for (const auto& r : results) EXPECT_EQ(r.status(), 200u);
  EXPECT_EQ(big_done.load(), 2000);
  // Round-robin: the small batch needed ~10 turns, not the 1,990 left.
  EXPECT_LT(big_done_when_small_finished, 500);
}

TEST_F(FetchServiceTest, OrderedModeStreamsInInputOrder) {
  fetchd_.Start();
  BatchRequest batch;
  for (int ms : {300, 200, 100, 0}) {
    AddUrl(&batch, http_.Url("/delay?ms=" + std::to_string(ms)));
  }
  batch.set_ordered(true);
  auto results = fetchd_.Run(batch);
  ASSERT_EQ(results.size(), 4u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(results[i].index(), i);

  batch.set_ordered(false);
  results = fetchd_.Run(batch);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].index(), 3u);  // completion order
}

TEST_F(FetchServiceTest, OrderedModeWithASmallWindowDoesNotDeadlock) {
  fetchd_.config().mutable_limits()->set_stream_window(2);
  fetchd_.Start();
  BatchRequest batch;
  batch.set_ordered(true);
  AddUrl(&batch, http_.Url("/delay?ms=200"));
  for (int i = 0; i < 50; ++i) AddUrl(&batch, http_.Url("/ok"));
  const auto results = fetchd_.Run(batch);
  for (uint32_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].index(), i);
    EXPECT_EQ(results[i].status(), 200u);
  }
}

TEST_F(FetchServiceTest, FailFastCancelsTheRest) {
  fetchd_.Start();
  BatchRequest batch;
  batch.set_fail_fast(true);
  batch.mutable_defaults()->mutable_retry()->set_max_attempts(1);
  for (int i = 0; i < 5; ++i) AddUrl(&batch, http_.Url("/stall?ms=10000"));
  AddUrl(&batch,
         "http://127.0.0.1:" + std::to_string(UnusedLoopbackPort()) + "/");
  const auto results = fetchd_.RunByIndex(batch);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(results[i].error(), fetch::v1::ERROR_KIND_CANCELLED);
  }
  EXPECT_EQ(results[5].error(), fetch::v1::ERROR_KIND_CONNECT);
  EXPECT_TRUE(http_.WaitForNoActiveStreams(absl::Seconds(2)));
}

TEST_F(FetchServiceTest, InvalidItemsAreResultsAndTheRestRuns) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, "not a url");
  AddUrl(&batch, "ftp://127.0.0.1/file");
  AddUrl(&batch, http_.Url("/ok"));
  auto* bad_header = AddUrl(&batch, http_.Url("/ok"));
  auto* h = bad_header->add_headers();
  h->set_name("X-Evil");
  h->set_value("a\r\nInjected: yes");
  auto* bad_method = AddUrl(&batch, http_.Url("/ok"));
  bad_method->set_method("BREW");
  AddUrl(&batch, "");
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[0].error_message(), HasSubstr("url"));
  // Only http and https: other schemes are refused by the policy.
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED);
  EXPECT_THAT(results[1].error_message(), HasSubstr("\"ftp\""));
  EXPECT_EQ(results[2].status(), 200u);
  EXPECT_EQ(results[3].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[3].error_message(), HasSubstr("headers[0]"));
  EXPECT_EQ(results[4].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[4].error_message(), HasSubstr("BREW"));
  EXPECT_EQ(results[5].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_EQ(results[3].id(), "r3");
  EXPECT_EQ(http_.RequestCount("/ok"), 1);
}

TEST_F(FetchServiceTest, EmptyAndOversizeBatchesAreInvalidArgument) {
  fetchd_.config().mutable_limits()->set_max_batch_size(10);
  fetchd_.Start();
  absl::Status status;
  fetchd_.Run(BatchRequest(), &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("empty"));

  BatchRequest big;
  for (int i = 0; i < 11; ++i) AddUrl(&big, http_.Url("/ok"));
  fetchd_.Run(big, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("max_batch_size"));

  BatchRequest bad_defaults;
  AddUrl(&bad_defaults, http_.Url("/ok"));
  *bad_defaults.mutable_defaults()->mutable_timeouts()->mutable_total() =
      Millis(3600 * 1000);
  fetchd_.Run(bad_defaults, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("defaults.timeouts.total"));
  EXPECT_EQ(http_.TotalRequests(), 0);
}

TEST_F(FetchServiceTest, OverloadIsResourceExhaustedWhileAdmittedWorkRuns) {
  fetchd_.config().mutable_limits()->set_max_pending(10);
  fetchd_.config().mutable_limits()->set_max_batch_size(10);
  fetchd_.Start();
  BatchRequest first;
  for (int i = 0; i < 10; ++i) AddUrl(&first, http_.Url("/delay?ms=300"));
  std::vector<FetchResult> first_results;
  std::thread runner([&] { first_results = fetchd_.Run(first); });
  ASSERT_TRUE(Eventually([&] { return fetchd_.gate().pending() == 10; }));
  BatchRequest second;
  AddUrl(&second, http_.Url("/ok"));
  absl::Status status;
  fetchd_.Run(second, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()), HasSubstr("retry-after-ms"));
  runner.join();
  ASSERT_EQ(first_results.size(), 10u);
  for (const auto& r : first_results) EXPECT_EQ(r.status(), 200u);
  // Once the first batch is done, there is room again.
  const auto again = fetchd_.Run(second);
  EXPECT_EQ(again[0].status(), 200u);
}

TEST_F(FetchServiceTest, DrainingRefusesNewCalls) {
  fetchd_.Start();
  fetchd_.gate().StartDraining();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  absl::Status status;
  fetchd_.Run(batch, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
}

TEST_F(FetchServiceTest, UnaryFetch) {
  fetchd_.Start();
  fetch::v1::FetchRequest request;
  request.set_url(http_.Url("/echo"));
  request.set_method("PUT");
  request.set_body("hello");
  request.set_id("u1");
  auto result = fetchd_.client().Fetch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status(), 200u);
  EXPECT_EQ(result->body(), "hello");
  EXPECT_EQ(result->id(), "u1");
  bool saw_method = false;
  for (const auto& h : result->headers()) {
    if (h.name() == "X-Echo-Method") saw_method = h.value() == "PUT";
  }
  EXPECT_TRUE(saw_method);

  request.set_url("gopher://nope");
  result = fetchd_.client().Fetch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), fetch::v1::ERROR_KIND_DENIED);

  request.set_url("http://[::1");
  result = fetchd_.client().Fetch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
}

TEST_F(FetchServiceTest, HeadAndFailOnHttpError) {
  fetchd_.Start();
  BatchRequest batch;
  auto* head = AddUrl(&batch, http_.Url("/bytes?n=10"));
  head->set_method("HEAD");
  auto* failing = AddUrl(&batch, http_.Url("/status?code=404"));
  failing->set_fail_on_http_error(true);
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u);
  EXPECT_TRUE(results[0].body().empty());
  EXPECT_EQ(http_.RequestCount("/bytes", "HEAD"), 1);
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_HTTP_STATUS);
  EXPECT_EQ(results[1].status(), 404u);
}

}  // namespace
}  // namespace fetchd::testing

// FetchStream through the real service in one process (real gRPC over
// loopback TCP, real curl workers, a local HTTP server): fairness against
// batches at one host, the deadline cut, and the reorder window of an
// ordered stream.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchEvent;
using fetch::v1::FetchRequest;
using fetch::v1::FetchResult;

FetchRequest Get(const std::string& url) {
  FetchRequest request;
  request.set_url(url);
  return request;
}

class FetchStreamServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(http_.Start().ok()); }

  TestHttpServer http_;
  ServiceHarness fetchd_;
};

// A long stream is one lane at its host, like a batch: a small batch that
// comes later takes turns with it instead of waiting behind it.
TEST_F(FetchStreamServiceTest, ASmallBatchIsNotStuckBehindALongStream) {
  constexpr int kStreamed = 20;
  fetchd_.config().mutable_limits()->set_max_per_host(1);
  fetchd_.Start();
  std::unique_ptr<client::FetchStreamCall> stream =
      fetchd_.client().OpenFetchStream();
  std::vector<FetchRequest> slow;
  for (int i = 0; i < kStreamed; ++i) {
    slow.push_back(Get(http_.Url(absl::StrCat("/delay?ms=200&i=", i))));
  }
  ASSERT_TRUE(stream->Send(std::move(slow)).ok());
  stream->WritesDone();
  std::atomic<int> streamed{0};
  std::thread reader([&] {
    FetchEvent event;
    while (stream->Read(&event)) streamed.fetch_add(event.results_size());
  });
  ASSERT_TRUE(
      Eventually([&] { return streamed.load() >= 1; }, absl::Seconds(10)));
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok?batch=1"));
  AddUrl(&batch, http_.Url("/ok?batch=2"));
  const std::vector<FetchResult> results = fetchd_.Run(batch);
  const int streamed_when_batch_done = streamed.load();
  reader.join();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(results.size(), 2u);
  for (const FetchResult& r : results) EXPECT_EQ(r.status(), 200u);
  // Round-robin between the two lanes: a few stream requests, not the
  // other 19, ran before the batch's two.
  EXPECT_LE(streamed_when_batch_done, 5);
  EXPECT_EQ(streamed.load(), kStreamed);
}

// The deadline cut: requests unfinished limits.deadline_margin before the
// call's deadline end DEADLINE_EXCEEDED and still reach the caller.
TEST_F(FetchStreamServiceTest,
       TheDeadlineCutTurnsUnfinishedRequestsIntoResults) {
  fetchd_.config().mutable_limits()->mutable_deadline_margin()->set_nanos(
      300'000'000);
  fetchd_.Start();
  std::unique_ptr<client::FetchStreamCall> stream =
      fetchd_.client().OpenFetchStream({}, absl::Now() + absl::Seconds(2));
  ASSERT_TRUE(stream
                  ->Send({Get(http_.Url("/stall?ms=30000")),
                          Get(http_.Url("/bytes?n=10"))})
                  .ok());
  stream->WritesDone();
  std::vector<FetchResult> by_index(2);
  int received = 0;
  FetchEvent event;
  while (stream->Read(&event)) {
    for (const FetchResult& r : event.results()) {
      by_index.at(r.index()) = r;
      ++received;
    }
  }
  const absl::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(received, 2);
  EXPECT_EQ(by_index[1].status(), 200u);
  EXPECT_EQ(by_index[0].error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED);
  EXPECT_THAT(by_index[0].error_message(),
              ::testing::HasSubstr("limits.deadline_margin"));
}

// ordered: a slow head request holds back at most stream_window results;
// fetchd neither starts nor reads more until it is done.
TEST_F(FetchStreamServiceTest, AnOrderedStreamHoldsAtMostItsWindow) {
  constexpr int kWindow = 8;
  constexpr int kFast = 30;
  fetchd_.config().mutable_limits()->set_stream_window(kWindow);
  fetchd_.Start();
  BatchRequest options;
  options.set_ordered(true);
  std::unique_ptr<client::FetchStreamCall> stream =
      fetchd_.client().OpenFetchStream(options);
  ASSERT_TRUE(stream->Send({Get(http_.Url("/delay?ms=1000"))}).ok());
  std::thread sender([&] {
    for (int i = 0; i < kFast; ++i) {
      if (!stream->Send({Get(http_.Url(absl::StrCat("/ok?i=", i)))}).ok()) {
        return;
      }
    }
    stream->WritesDone();
  });
  std::vector<uint32_t> order;
  FetchEvent event;
  while (stream->Read(&event)) {
    for (const FetchResult& r : event.results()) order.push_back(r.index());
  }
  sender.join();
  // While the head ran (it answers 1 s after it arrived), at most the
  // window's other requests reached the target.
  const std::vector<absl::Time> head = http_.Arrivals("/delay");
  ASSERT_EQ(head.size(), 1u);
  int during_head = 0;
  for (const absl::Time t : http_.Arrivals("/ok")) {
    if (t < head[0] + absl::Seconds(1)) ++during_head;
  }
  EXPECT_LE(during_head, kWindow - 1);
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(order.size(), static_cast<size_t>(kFast + 1));
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
}

}  // namespace
}  // namespace fetchd::testing

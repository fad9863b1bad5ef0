// The result stream of FetchBatch and FetchStream (api/batch_call.cc,
// api/stream_call.cc) through the seams: FetchServiceImpl
// on an in-process gRPC server, the production CallGate and DestinationGate
// built from a config, a scripted FakeFetcher in place of the curl workers
// and a FakeClock under the calls and their deadline cuts. The test decides
// when each job ends and when the client reads, so ordering, coalescing, the
// window and every cancellation are checked at exact points instead of by
// timing. On the in-process transport a server write completes only when
// the client reads it, so a client that doesn't read holds one write in
// flight.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/api/batch_call.h"
#include "service/api/call_env.h"
#include "service/api/call_gate.h"
#include "service/api/deadline_timer.h"
#include "service/api/fetch_service.h"
#include "service/auth/caller_auth.h"
#include "service/config/server_config.h"
#include "service/policy/policy_config.h"
#include "tests/api/fake_fetcher.h"
#include "tests/testing/fake_clock.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchEvent;
using fetch::v1::FetchResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A guard against a test that waits for a message that never comes: the
// client's deadline (real time). Far beyond what any test needs.
constexpr auto kCallDeadline = std::chrono::seconds(60);

class BatchStreamTest : public ::testing::Test {
 protected:
  BatchStreamTest() : config_(config::DefaultServerConfig()) {}
  ~BatchStreamTest() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now());
    }
  }

  // Builds the service over the fakes as FetchdServer builds it over the
  // worker pool, and connects a client in process.
  void Start() {
    ASSERT_TRUE(config::ValidateServerConfig(config_).ok())
        << config::ValidateServerConfig(config_);
    auto caller_auth = auth::CallerAuth::Load(config_.auth());
    ASSERT_TRUE(caller_auth.ok()) << caller_auth.status();
    caller_auth_ = *std::move(caller_auth);
    gate_ = std::make_unique<api::CallGate>(
        api::CallGate::OptionsFromConfig(config_, caller_auth_.get()));
    auto destinations = policy::DestinationGateFromConfig(config_.policy());
    ASSERT_TRUE(destinations.ok()) << destinations.status();
    destinations_ = *std::move(destinations);
    deadlines_ = std::make_unique<api::DeadlineTimer>(&clock_);

    api::FetchServiceImpl::Options options;
    options.gate = gate_.get();
    options.destinations = destinations_.get();
    options.env.fetcher = &fetcher_;
    options.env.deadlines = deadlines_.get();
    options.env.deadline_margin = deadline_margin_;
    options.env.clock = &clock_;
    options.env.stats = &call_stats_;
    auto service = api::FetchServiceImpl::Create(config_, options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);

    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = fetch::v1::FetchService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }

  static BatchRequest Batch(int n) {
    BatchRequest batch;
    for (int i = 0; i < n; ++i) {
      fetch::v1::FetchRequest* r = batch.add_requests();
      r->set_url("http://fetch.example/" + std::to_string(i));
      r->set_id("r" + std::to_string(i));
    }
    return batch;
  }

  // Starts the call; the client reads only when the test says so.
  std::unique_ptr<grpc::ClientReader<FetchEvent>> Call(
      grpc::ClientContext* context, const BatchRequest& batch) {
    context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    return stub_->FetchBatch(context, batch);
  }

  // The indices of one message's results, in message order.
  static std::vector<uint32_t> Indices(const FetchEvent& event) {
    std::vector<uint32_t> out;
    for (const FetchResult& r : event.results()) out.push_back(r.index());
    return out;
  }

  // Reads the rest of the stream; checks that the call ends with `code`
  // and, when OK, that `results` (earlier ones plus these) hold each of
  // `n` indices exactly once.
  void ReadToEnd(grpc::ClientReader<FetchEvent>& reader,
                 std::vector<FetchResult>& results, int n,
                 grpc::StatusCode code = grpc::StatusCode::OK) {
    FetchEvent event;
    while (reader.Read(&event)) {
      for (const FetchResult& r : event.results()) results.push_back(r);
    }
    const grpc::Status status = reader.Finish();
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    if (code != grpc::StatusCode::OK) return;
    std::set<uint32_t> seen;
    for (const FetchResult& r : results) {
      EXPECT_TRUE(seen.insert(r.index()).second) << "index " << r.index();
    }
    EXPECT_EQ(results.size(), static_cast<size_t>(n));
    EXPECT_EQ(seen.size(), static_cast<size_t>(n));
  }

  // Waits until every admitted call is done (the BatchCall and its ticket
  // are gone).
  bool AwaitIdle() { return gate_->WaitIdle(absl::Now() + absl::Seconds(30)); }

  fetch::v1::ServerConfig config_;
  absl::Duration deadline_margin_ = absl::ZeroDuration();
  FakeClock clock_;
  api::CallStats call_stats_;
  std::unique_ptr<auth::CallerAuth> caller_auth_;
  std::unique_ptr<api::CallGate> gate_;
  std::shared_ptr<const policy::DestinationGate> destinations_;
  std::unique_ptr<api::DeadlineTimer> deadlines_;
  // After what its jobs' calls use, before the service and the server: the
  // calls it still holds end with it.
  FakeFetcher fetcher_;
  std::unique_ptr<api::FetchServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<fetch::v1::FetchService::Stub> stub_;
};

TEST_F(BatchStreamTest, UnorderedResultsArriveInCompletionOrder) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto reader = Call(&context, Batch(4));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(4));
  ASSERT_EQ(fetcher_.started(), 4u);
  for (size_t job : {2, 0, 3, 1}) fetcher_.FinishOk(job);
  std::vector<FetchResult> results;
  ReadToEnd(*reader, results, 4);
  std::vector<uint32_t> order;
  for (const FetchResult& r : results) order.push_back(r.index());
  EXPECT_THAT(order, ElementsAre(2, 0, 3, 1));
  // The fake fills in what a worker does; the request's id comes through.
  EXPECT_EQ(results[0].id(), "r2");
  EXPECT_EQ(results[0].final_url(), "http://fetch.example/2");
}

TEST_F(BatchStreamTest, OrderedResultsWaitForTheHeadThenGoTogether) {
  ASSERT_NO_FATAL_FAILURE(Start());
  BatchRequest batch = Batch(4);
  batch.set_ordered(true);
  grpc::ClientContext context;
  auto reader = Call(&context, batch);
  ASSERT_TRUE(fetcher_.AwaitSubmitted(4));
  // Later indices finish first and are held back: nothing can be written
  // before index 0, so its result brings the rest in the same message.
  for (size_t job : {3, 1, 2, 0}) fetcher_.FinishOk(job);
  FetchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_THAT(Indices(event), ElementsAre(0, 1, 2, 3));
  std::vector<FetchResult> results(event.results().begin(),
                                   event.results().end());
  ReadToEnd(*reader, results, 4);
}

TEST_F(BatchStreamTest, OrderedResultsAfterAGapWaitForIt) {
  ASSERT_NO_FATAL_FAILURE(Start());
  BatchRequest batch = Batch(5);
  batch.set_ordered(true);
  grpc::ClientContext context;
  auto reader = Call(&context, batch);
  ASSERT_TRUE(fetcher_.AwaitSubmitted(5));
  fetcher_.FinishOk(0);
  fetcher_.FinishOk(3);
  fetcher_.FinishOk(4);
  std::vector<FetchResult> results;
  FetchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_THAT(Indices(event), ElementsAre(0));
  results.insert(results.end(), event.results().begin(), event.results().end());
  fetcher_.FinishOk(2);  // still waits for 1
  fetcher_.FinishOk(1);
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_THAT(Indices(event), ElementsAre(1, 2, 3, 4));
  results.insert(results.end(), event.results().begin(), event.results().end());
  ReadToEnd(*reader, results, 5);
}

// What finished while a message was being written goes out in the next
// one, up to kMaxEventBytes; a result larger than that goes alone.
TEST_F(BatchStreamTest, FinishedResultsShareOneMessageUpToTheCap) {
  ASSERT_NO_FATAL_FAILURE(Start());
  constexpr int kJobs = 9;
  grpc::ClientContext context;
  auto reader = Call(&context, Batch(kJobs));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(kJobs));
  const std::string small = "ok";
  const std::string large(400 << 10, 'x');  // two fit, three don't
  const std::string huge(api::kMaxEventBytes + (100 << 10), 'y');
  fetcher_.FinishOk(0, small);  // written at once; the client doesn't read
  for (size_t job : {1, 2, 3}) fetcher_.FinishOk(job, small);
  for (size_t job : {4, 5, 6}) fetcher_.FinishOk(job, large);
  fetcher_.FinishOk(7, huge);
  fetcher_.FinishOk(8, small);
  std::vector<std::vector<uint32_t>> messages;
  std::vector<FetchResult> results;
  FetchEvent event;
  while (reader->Read(&event)) {
    messages.push_back(Indices(event));
    if (event.results_size() > 1) {
      size_t bytes = 0;
      for (const FetchResult& r : event.results()) bytes += r.ByteSizeLong();
      EXPECT_LE(bytes, api::kMaxEventBytes);
    }
    for (const FetchResult& r : event.results()) results.push_back(r);
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(messages,
              ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3, 4, 5),
                          ElementsAre(6), ElementsAre(7), ElementsAre(8)));
  ASSERT_EQ(results.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(results[7].body(), huge);
}

// A reader that doesn't keep up holds its batch at the window: no more
// than `stream_window` results are running or finished and unread, and the
// window is used to the full. (Was a wall-clock test over TCP with a reader
// that slept; here every step is exact.)
TEST_F(BatchStreamTest, SlowReaderHoldsItsBatchAtTheWindow) {
  constexpr int kWindow = 4;
  constexpr int kJobs = 40;
  constexpr int kReadBeforeCancel = 20;
  config_.mutable_limits()->set_stream_window(kWindow);
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto reader = Call(&context, Batch(kJobs));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(kJobs));
  EXPECT_EQ(fetcher_.started(), static_cast<size_t>(kWindow));
  size_t read = 0;
  size_t finished = 0;
  FetchEvent event;
  while (read < kReadBeforeCancel) {
    // The engine: every job that could start ends at once.
    while (finished < fetcher_.started()) fetcher_.FinishOk(finished++);
    EXPECT_EQ(fetcher_.started(), finished);  // nothing more may start
    EXPECT_EQ(fetcher_.done() - read, static_cast<size_t>(kWindow))
        << "results finished ahead of the reader";
    // The reader: one message, whose window slots then go back.
    ASSERT_TRUE(reader->Read(&event));
    read += event.results_size();
    ASSERT_TRUE(fetcher_.AwaitStarted(read + kWindow));
    EXPECT_EQ(fetcher_.started(), read + kWindow);
  }
  // The reader gives up: the batch is cancelled in the fetcher, whose
  // unfinished jobs still end (once each), and the call's admission and
  // window are given back.
  context.TryCancel();
  ASSERT_TRUE(fetcher_.AwaitCancelRequests(1));
  EXPECT_EQ(fetcher_.RunCancellations(), kJobs - finished);
  EXPECT_EQ(fetcher_.done(), static_cast<size_t>(kJobs));
  std::vector<FetchResult> ignored;
  ReadToEnd(*reader, ignored, kJobs, grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(AwaitIdle());
  EXPECT_EQ(gate_->pending(), 0);
  EXPECT_EQ(gate_->active_calls(), 0);
  EXPECT_EQ(call_stats_.window_high_water(), kWindow);
}

// The client goes away while a message is being written (OnWriteDone(false)
// and OnCancel): the batch is cancelled in the fetcher and ends there.
TEST_F(BatchStreamTest, ClientGoneMidWriteCancelsTheBatchInTheFetcher) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto reader = Call(&context, Batch(3));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(3));
  fetcher_.FinishOk(0);  // its message is being written, unread
  EXPECT_EQ(fetcher_.cancel_requests(), 0);
  context.TryCancel();
  ASSERT_TRUE(fetcher_.AwaitCancelRequests(1));
  EXPECT_EQ(fetcher_.state(1), FakeFetcher::State::kRunning);
  EXPECT_EQ(fetcher_.RunCancellations(), 2u);
  std::vector<FetchResult> ignored;
  ReadToEnd(*reader, ignored, 3, grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(AwaitIdle());
  EXPECT_EQ(gate_->pending(), 0);
  EXPECT_EQ(fetcher_.cancel_requests(), 1);
}

// The server cancels the call (the drain's CancelAll) while a message is
// being written: the unfinished requests end CANCELLED and those results
// still reach the client after the message in flight; the call ends OK.
TEST_F(BatchStreamTest, CancelDuringAWriteStillStreamsEveryResult) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto reader = Call(&context, Batch(4));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(4));
  fetcher_.FinishOk(0);
  gate_->CancelAll();
  EXPECT_EQ(fetcher_.cancel_requests(), 1);
  EXPECT_EQ(fetcher_.RunCancellations(), 3u);
  FetchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_THAT(Indices(event), ElementsAre(0));
  EXPECT_EQ(event.results(0).error(), fetch::v1::ERROR_KIND_NONE);
  std::vector<FetchResult> results(event.results().begin(),
                                   event.results().end());
  ReadToEnd(*reader, results, 4);
  for (size_t i = 1; i < results.size(); ++i) {
    EXPECT_EQ(results[i].error(), fetch::v1::ERROR_KIND_CANCELLED)
        << results[i].index();
    EXPECT_THAT(results[i].error_message(), HasSubstr("cancelled"));
  }
}

// fail_fast: the first failed request cancels the rest, which still get
// CANCELLED results (fetch.proto). An HTTP error status is not a failure.
TEST_F(BatchStreamTest, FailFastCancelsTheRestOnTheFirstFailure) {
  ASSERT_NO_FATAL_FAILURE(Start());
  BatchRequest batch = Batch(5);
  batch.set_fail_fast(true);
  grpc::ClientContext context;
  auto reader = Call(&context, batch);
  ASSERT_TRUE(fetcher_.AwaitSubmitted(5));
  FetchResult http_error;
  http_error.set_status(503);
  fetcher_.Finish(0, http_error);
  EXPECT_EQ(fetcher_.cancel_requests(), 0);
  FetchResult failed;
  failed.set_error(fetch::v1::ERROR_KIND_CONNECT);
  failed.set_error_message("connection refused");
  fetcher_.Finish(2, failed);
  // Cancelled from inside the failed result's delivery.
  EXPECT_EQ(fetcher_.cancel_requests(), 1);
  EXPECT_EQ(fetcher_.RunCancellations(), 3u);
  std::vector<FetchResult> results;
  ReadToEnd(*reader, results, 5);
  std::vector<FetchResult> by_index(5);
  for (const FetchResult& r : results) by_index.at(r.index()) = r;
  EXPECT_EQ(by_index[0].status(), 503u);
  EXPECT_EQ(by_index[0].error(), fetch::v1::ERROR_KIND_NONE);
  EXPECT_EQ(by_index[2].error(), fetch::v1::ERROR_KIND_CONNECT);
  for (int i : {1, 3, 4}) {
    EXPECT_EQ(by_index[i].error(), fetch::v1::ERROR_KIND_CANCELLED) << i;
  }
}

// Requests the API refuses get their result from the API; the others from
// the fetcher; each index exactly once, and the call ends OK.
TEST_F(BatchStreamTest, EveryAcceptedRequestGetsExactlyOneResult) {
  ASSERT_NO_FATAL_FAILURE(Start());
  BatchRequest batch = Batch(5);
  batch.mutable_requests(1)->set_url("not a url");
  batch.mutable_requests(3)->set_url("http://169.254.169.254/latest");
  grpc::ClientContext context;
  auto reader = Call(&context, batch);
  ASSERT_TRUE(fetcher_.AwaitSubmitted(3));
  EXPECT_EQ(fetcher_.submitted(), 3u);
  // The fetcher's jobs keep their request's index.
  EXPECT_EQ(fetcher_.job(0).index, 0u);
  EXPECT_EQ(fetcher_.job(1).index, 2u);
  EXPECT_EQ(fetcher_.job(2).index, 4u);
  for (size_t job : {0, 1, 2}) fetcher_.FinishOk(job);
  std::vector<FetchResult> results;
  ReadToEnd(*reader, results, 5);
  std::vector<FetchResult> by_index(5);
  for (const FetchResult& r : results) by_index.at(r.index()) = r;
  EXPECT_EQ(by_index[1].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_EQ(by_index[3].error(), fetch::v1::ERROR_KIND_DENIED);
  for (int i : {0, 2, 4}) EXPECT_EQ(by_index[i].status(), 200u) << i;
  ASSERT_TRUE(AwaitIdle());
  EXPECT_EQ(gate_->pending(), 0);
}

// Heads and chunks of a streamed body go out as they come, ahead of the
// request's result and of results held for order.
TEST_F(BatchStreamTest, StreamedBodyPartsAreNotHeldForOrder) {
  ASSERT_NO_FATAL_FAILURE(Start());
  BatchRequest batch = Batch(2);
  batch.set_ordered(true);
  batch.mutable_requests(1)->set_stream_body(true);
  grpc::ClientContext context;
  auto reader = Call(&context, batch);
  ASSERT_TRUE(fetcher_.AwaitSubmitted(2));
  EXPECT_TRUE(fetcher_.job(1).stream_body);
  fetch::v1::BodyHead head;
  head.set_status(200);
  fetcher_.SendHead(1, head);
  FetchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_EQ(event.heads_size(), 1);
  EXPECT_EQ(event.heads(0).index(), 1u);
  EXPECT_EQ(event.results_size(), 0);
  fetch::v1::BodyChunk chunk;
  chunk.set_data("hello");
  fetcher_.SendChunk(1, chunk);
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_EQ(event.chunks_size(), 1);
  EXPECT_EQ(event.chunks(0).data(), "hello");
  fetcher_.FinishOk(1);  // held: index 0 has not finished
  fetcher_.FinishOk(0);
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_THAT(Indices(event), ElementsAre(0, 1));
  std::vector<FetchResult> results(event.results().begin(),
                                   event.results().end());
  ReadToEnd(*reader, results, 2);
}

// The deadline cut, on the fake clock: limits.deadline_margin before the
// RPC deadline the unfinished requests end DEADLINE_EXCEEDED and still
// reach the caller, and the call ends OK — without waiting real time.
TEST_F(BatchStreamTest, DeadlineCutTurnsUnfinishedRequestsIntoResults) {
  deadline_margin_ = absl::Seconds(5);
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::hours(1));
  auto reader = stub_->FetchBatch(&context, Batch(3));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(3));
  EXPECT_EQ(deadlines_->pending(), 1u);  // the call's cut
  fetcher_.FinishOk(0);

  // Just short of the cut: a probe scheduled at the new "now" runs, and
  // the cut, due later, has not.
  clock_.Advance(absl::Hours(1) - absl::Seconds(6));
  absl::Notification probed;
  int cancels_at_probe = -1;
  size_t pending_at_probe = 0;
  (void)deadlines_->Schedule(clock_.Now(), [&] {
    cancels_at_probe = fetcher_.cancel_requests();
    pending_at_probe = deadlines_->pending();
    probed.Notify();
  });
  deadlines_->ClockAdvanced();
  ASSERT_TRUE(probed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(cancels_at_probe, 0);
  EXPECT_EQ(pending_at_probe, 1u);

  clock_.Advance(absl::Seconds(2));
  deadlines_->ClockAdvanced();
  ASSERT_TRUE(fetcher_.AwaitCancelRequests(1));
  EXPECT_EQ(fetcher_.RunCancellations(), 2u);
  std::vector<FetchResult> results;
  ReadToEnd(*reader, results, 3);
  for (const FetchResult& r : results) {
    if (r.index() == 0) {
      EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_NONE);
    } else {
      EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED)
          << r.index();
      EXPECT_THAT(r.error_message(), HasSubstr("deadline"));
    }
  }
  ASSERT_TRUE(AwaitIdle());
  EXPECT_EQ(deadlines_->pending(), 0u);  // dropped with the call
}

// The unary call is cut the same way: its result, not an RPC error.
TEST_F(BatchStreamTest, DeadlineCutEndsAUnaryCallWithItsResult) {
  deadline_margin_ = absl::Seconds(5);
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::hours(1));
  fetch::v1::FetchRequest request;
  request.set_url("http://fetch.example/one");
  FetchResult response;
  absl::Notification done;
  grpc::Status status;
  stub_->async()->Fetch(&context, &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  ASSERT_TRUE(fetcher_.AwaitSubmitted(1));
  clock_.Advance(absl::Hours(1));
  deadlines_->ClockAdvanced();
  ASSERT_TRUE(fetcher_.AwaitCancelRequests(1));
  EXPECT_EQ(fetcher_.RunCancellations(), 1u);
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.error(), fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED);
}

// FetchStream: the same result stream, fed by open-ended input
// (api/stream_call.cc). On the in-process transport a client write
// completes only when the server reads it, so the number of completed
// writes is the number of messages fetchd has read.
class FetchStreamTest : public BatchStreamTest {
 protected:
  using Stream =
      grpc::ClientReaderWriter<fetch::v1::FetchStreamRequest, FetchEvent>;

  std::unique_ptr<Stream> Open(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    return stub_->FetchStream(context);
  }

  // A message of `n` requests numbered from `first` (ids s<first>...).
  static fetch::v1::FetchStreamRequest Message(int first, int n) {
    fetch::v1::FetchStreamRequest message;
    for (int i = first; i < first + n; ++i) {
      fetch::v1::FetchRequest* r = message.add_requests();
      r->set_url("http://fetch.example/" + std::to_string(i));
      r->set_id("s" + std::to_string(i));
    }
    return message;
  }

  // Reads the rest of the stream into `results`; returns its status.
  static grpc::Status Drain(Stream& stream, std::vector<FetchResult>& results) {
    FetchEvent event;
    while (stream.Read(&event)) {
      for (const FetchResult& r : event.results()) results.push_back(r);
    }
    return stream.Finish();
  }

  static std::set<uint32_t> IndexSet(const std::vector<FetchResult>& results) {
    std::set<uint32_t> seen;
    for (const FetchResult& r : results) {
      EXPECT_TRUE(seen.insert(r.index()).second) << "index " << r.index();
    }
    return seen;
  }
};

TEST_F(FetchStreamTest, AResultComesBackBeforeTheInputEnds) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  ASSERT_TRUE(stream->Write(Message(0, 1)));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(1));
  fetcher_.FinishOk(0);
  // The first result arrives while the stream is still open for input.
  FetchEvent event;
  ASSERT_TRUE(stream->Read(&event));
  EXPECT_THAT(Indices(event), ElementsAre(0));
  EXPECT_EQ(event.results(0).id(), "s0");
  // Later messages number on.
  ASSERT_TRUE(stream->Write(Message(1, 2)));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(3));
  EXPECT_EQ(fetcher_.job(1).index, 1u);
  EXPECT_EQ(fetcher_.job(2).index, 2u);
  fetcher_.FinishOk(2);
  fetcher_.FinishOk(1);
  ASSERT_TRUE(stream->WritesDone());
  std::vector<FetchResult> results;
  const grpc::Status status = Drain(*stream, results);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(IndexSet(results), ElementsAre(1, 2));
  ASSERT_TRUE(AwaitIdle());
  EXPECT_EQ(gate_->pending(), 0);
}

// fetchd reads a message only while fewer than stream_window of the
// stream's requests lack a written result: a fast sender is held by flow
// control, and what fetchd holds of it stays bounded.
TEST_F(FetchStreamTest, ReadsOnlyWhileTheStreamHasRoom) {
  constexpr int kWindow = 4;
  constexpr int kMessages = 40;
  config_.mutable_limits()->set_stream_window(kWindow);
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  std::atomic<int> written{0};
  std::thread sender([&] {
    for (int i = 0; i < kMessages; ++i) {
      if (!stream->Write(Message(i, 1))) return;
      written.fetch_add(1);
    }
    stream->WritesDone();
  });
  ASSERT_TRUE(fetcher_.AwaitSubmitted(kWindow));
  // The window is full: the sender is blocked on the next message.
  EXPECT_LE(written.load(), kWindow);
  EXPECT_EQ(fetcher_.submitted(), static_cast<size_t>(kWindow));
  // A result written makes room for one more message.
  fetcher_.FinishOk(0);
  FetchEvent event;
  ASSERT_TRUE(stream->Read(&event));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(kWindow + 1));
  EXPECT_LE(written.load(), kWindow + 1);
  EXPECT_EQ(fetcher_.submitted(), static_cast<size_t>(kWindow + 1));
  // The rest, each result making room for the next.
  std::vector<FetchResult> results(event.results().begin(),
                                   event.results().end());
  for (size_t job = 1; job < kMessages; ++job) {
    ASSERT_TRUE(fetcher_.AwaitSubmitted(job + 1)) << job;
    fetcher_.FinishOk(job);
    // Never more than the window (plus the message being read) submitted
    // without a written result.
    EXPECT_LE(fetcher_.submitted(), results.size() + kWindow + 1);
    ASSERT_TRUE(stream->Read(&event));
    for (const FetchResult& r : event.results()) results.push_back(r);
  }
  sender.join();
  const grpc::Status status = Drain(*stream, results);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(IndexSet(results).size(), static_cast<size_t>(kMessages));
}

TEST_F(FetchStreamTest, ABadRequestGetsItsOwnResultAndTheStreamGoesOn) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  fetch::v1::FetchStreamRequest message = Message(0, 3);
  message.mutable_requests(1)->set_url("not a url");
  ASSERT_TRUE(stream->Write(message));
  ASSERT_TRUE(stream->Write(Message(3, 1)));
  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(fetcher_.AwaitSubmitted(3));
  EXPECT_EQ(fetcher_.job(2).index, 3u);
  for (size_t job : {0, 1, 2}) fetcher_.FinishOk(job);
  std::vector<FetchResult> results;
  const grpc::Status status = Drain(*stream, results);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(IndexSet(results), ElementsAre(0, 1, 2, 3));
  for (const FetchResult& r : results) {
    if (r.index() == 1) {
      EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
      EXPECT_EQ(r.id(), "s1");
    } else {
      EXPECT_EQ(r.status(), 200u) << r.index();
    }
  }
}

TEST_F(FetchStreamTest, AStreamedBodyComesAsInABatch) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  fetch::v1::FetchStreamRequest message = Message(0, 1);
  message.mutable_requests(0)->set_stream_body(true);
  ASSERT_TRUE(stream->Write(message));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(1));
  EXPECT_TRUE(fetcher_.job(0).stream_body);
  fetch::v1::BodyHead head;
  head.set_status(200);
  fetcher_.SendHead(0, head);
  FetchEvent event;
  ASSERT_TRUE(stream->Read(&event));
  ASSERT_EQ(event.heads_size(), 1);
  EXPECT_EQ(event.heads(0).index(), 0u);
  fetch::v1::BodyChunk chunk;
  chunk.set_data("hello");
  fetcher_.SendChunk(0, chunk);
  ASSERT_TRUE(stream->Read(&event));
  ASSERT_EQ(event.chunks_size(), 1);
  EXPECT_EQ(event.chunks(0).data(), "hello");
  fetcher_.FinishOk(0);
  ASSERT_TRUE(stream->WritesDone());
  std::vector<FetchResult> results;
  EXPECT_TRUE(Drain(*stream, results).ok());
  EXPECT_THAT(IndexSet(results), ElementsAre(0));
}

TEST_F(FetchStreamTest, TheFirstMessagesOptionsApplyToEveryRequest) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  fetch::v1::FetchStreamRequest first;
  first.mutable_options()->set_ordered(true);
  first.mutable_options()->mutable_defaults()->set_method("HEAD");
  ASSERT_TRUE(stream->Write(first));
  ASSERT_TRUE(stream->Write(Message(0, 3)));
  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(fetcher_.AwaitSubmitted(3));
  EXPECT_EQ(fetcher_.job(0).method, "HEAD");
  // Ordered: the head holds the others back.
  for (size_t job : {2, 1, 0}) fetcher_.FinishOk(job);
  FetchEvent event;
  ASSERT_TRUE(stream->Read(&event));
  EXPECT_THAT(Indices(event), ElementsAre(0, 1, 2));
  std::vector<FetchResult> results;
  EXPECT_TRUE(Drain(*stream, results).ok());
}

TEST_F(FetchStreamTest, BadOptionsEndTheStreamNamingTheField) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  fetch::v1::FetchStreamRequest first = Message(0, 1);
  first.mutable_options()->mutable_defaults()->set_url("http://x.example/");
  ASSERT_TRUE(stream->Write(first));
  std::vector<FetchResult> results;
  const grpc::Status status = Drain(*stream, results);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("options.defaults.url"));
  EXPECT_TRUE(results.empty());
  EXPECT_EQ(fetcher_.submitted(), 0u);
}

// A later message with options, or with more requests than max_batch_size,
// stops the reading; what was read still gets its results, then the
// stream ends with INVALID_ARGUMENT naming the rule.
TEST_F(FetchStreamTest, ABadMessageEndsTheStreamAfterTheResultsOfTheRest) {
  config_.mutable_limits()->set_max_batch_size(5);
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const bool oversize : {false, true}) {
    SCOPED_TRACE(oversize ? "oversize" : "late options");
    const size_t before = fetcher_.submitted();
    grpc::ClientContext context;
    auto stream = Open(&context);
    ASSERT_TRUE(stream->Write(Message(0, 2)));
    ASSERT_TRUE(fetcher_.AwaitSubmitted(before + 2));
    fetch::v1::FetchStreamRequest bad = Message(2, oversize ? 6 : 1);
    if (!oversize) bad.mutable_options()->set_ordered(true);
    ASSERT_TRUE(stream->Write(bad));
    fetcher_.FinishOk(before);
    fetcher_.FinishOk(before + 1);
    std::vector<FetchResult> results;
    const grpc::Status status = Drain(*stream, results);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                HasSubstr(oversize ? "limits.max_batch_size" : "options:"));
    EXPECT_THAT(IndexSet(results), ElementsAre(0, 1));
    EXPECT_EQ(fetcher_.submitted(), before + 2);
  }
}

// A drain stops the reading: what was read finishes and gets its results,
// then the stream ends with UNAVAILABLE.
TEST_F(FetchStreamTest, ADrainStopsTheReadingAndEndsWithUnavailable) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  ASSERT_TRUE(stream->Write(Message(0, 2)));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(2));
  gate_->StartDraining();
  fetcher_.FinishOk(0);
  fetcher_.FinishOk(1);
  std::vector<FetchResult> results;
  const grpc::Status status = Drain(*stream, results);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("another replica"));
  EXPECT_THAT(IndexSet(results), ElementsAre(0, 1));
  ASSERT_TRUE(AwaitIdle());
}

TEST_F(FetchStreamTest, FailFastStopsTheReadingAndEndsWithAborted) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  fetch::v1::FetchStreamRequest first = Message(0, 3);
  first.mutable_options()->set_fail_fast(true);
  ASSERT_TRUE(stream->Write(first));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(3));
  FetchResult failed;
  failed.set_error(fetch::v1::ERROR_KIND_CONNECT);
  fetcher_.Finish(1, failed);
  EXPECT_EQ(fetcher_.RunCancellations(), 2u);
  std::vector<FetchResult> results;
  const grpc::Status status = Drain(*stream, results);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(status.error_message(), HasSubstr("fail_fast: request 1"));
  EXPECT_THAT(IndexSet(results), ElementsAre(0, 1, 2));
  EXPECT_EQ(fetcher_.submitted(), 3u);
}

// A message whose requests would take the server past limits.max_pending
// waits, unread further, until the stream's own results make room.
TEST_F(FetchStreamTest, AMessageOverMaxPendingWaitsForRoom) {
  config_.mutable_limits()->set_max_pending(3);
  config_.mutable_limits()->set_max_batch_size(3);
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  ASSERT_TRUE(stream->Write(Message(0, 2)));
  ASSERT_TRUE(stream->Write(Message(2, 2)));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(2));
  EXPECT_EQ(gate_->pending(), 2);
  fetcher_.FinishOk(0);
  FetchEvent event;
  ASSERT_TRUE(stream->Read(&event));
  // One pending now: two more fit.
  ASSERT_TRUE(fetcher_.AwaitSubmitted(4));
  EXPECT_EQ(fetcher_.job(2).index, 2u);
  ASSERT_TRUE(stream->WritesDone());
  for (size_t job : {1, 2, 3}) fetcher_.FinishOk(job);
  std::vector<FetchResult> results(event.results().begin(),
                                   event.results().end());
  EXPECT_TRUE(Drain(*stream, results).ok());
  EXPECT_EQ(IndexSet(results).size(), 4u);
  ASSERT_TRUE(AwaitIdle());
  EXPECT_EQ(gate_->pending(), 0);
}

TEST_F(FetchStreamTest, AClientCancelEndsTheStreamsJobs) {
  ASSERT_NO_FATAL_FAILURE(Start());
  grpc::ClientContext context;
  auto stream = Open(&context);
  ASSERT_TRUE(stream->Write(Message(0, 2)));
  ASSERT_TRUE(fetcher_.AwaitSubmitted(2));
  context.TryCancel();
  ASSERT_TRUE(fetcher_.AwaitCancelRequests(1));
  EXPECT_EQ(fetcher_.RunCancellations(), 2u);
  std::vector<FetchResult> results;
  EXPECT_EQ(Drain(*stream, results).error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(AwaitIdle());
  EXPECT_EQ(gate_->pending(), 0);
}

}  // namespace
}  // namespace fetchd::testing

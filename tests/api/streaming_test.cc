// Streamed bodies (FetchRequest.stream_body) through the real service: real
// libcurl against the test HTTP server, real gRPC to the client. The order
// of heads, chunks and results, what is not streamed (redirect and retried
// responses), flow control against a slow reader (fetchd's own buffered-byte
// counter), and memory for a large body.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::BodyChunk;
using fetch::v1::BodyHead;
using fetch::v1::FetchEvent;
using fetch::v1::FetchRequest;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;

// What one batch's stream said about each request, checked for order as it
// arrives: per index, the head (at most one, before any chunk), the body
// from chunks with contiguous offsets, and the result (after all of them).
struct Streamed {
  std::optional<BodyHead> head;
  std::string body;
  size_t chunks = 0;
  size_t largest_chunk = 0;
  std::optional<FetchResult> result;
};

class StreamRecorder {
 public:
  void OnEvent(const FetchEvent& event) {
    // The order the proto asks a reader to take them in.
    for (const BodyHead& head : event.heads()) {
      Streamed& s = by_index_[head.index()];
      EXPECT_FALSE(s.head.has_value()) << "second head for " << head.index();
      EXPECT_FALSE(s.result.has_value()) << "head after result";
      s.head = head;
    }
    for (const BodyChunk& chunk : event.chunks()) {
      Streamed& s = by_index_[chunk.index()];
      EXPECT_TRUE(s.head.has_value()) << "chunk before head";
      EXPECT_FALSE(s.result.has_value()) << "chunk after result";
      EXPECT_EQ(chunk.offset(), s.body.size()) << "gap or overlap";
      s.body += chunk.data();
      ++s.chunks;
      s.largest_chunk = std::max(s.largest_chunk, chunk.data().size());
    }
    for (const FetchResult& result : event.results()) {
      Streamed& s = by_index_[result.index()];
      EXPECT_FALSE(s.result.has_value()) << "second result";
      s.result = result;
    }
  }
  std::map<uint32_t, Streamed>& by_index() { return by_index_; }

 private:
  std::map<uint32_t, Streamed> by_index_;
};

class StreamingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(http_.Start().ok()); }

  std::map<uint32_t, Streamed> RunStreamed(const BatchRequest& batch) {
    StreamRecorder recorder;
    const absl::Status status = fetchd_.client().FetchBatch(
        batch, [&](const FetchEvent& event) { recorder.OnEvent(event); });
    EXPECT_TRUE(status.ok()) << status;
    for (int i = 0; i < batch.requests_size(); ++i) {
      EXPECT_TRUE(recorder.by_index()[i].result.has_value()) << i;
    }
    return recorder.by_index();
  }

  TestHttpServer http_;
  ServiceHarness fetchd_;
};

std::string HeaderValue(const BodyHead& head, const std::string& name) {
  for (const auto& h : head.headers()) {
    if (absl::AsciiStrToLower(h.name()) == name) return h.value();
  }
  return "";
}

TEST_F(StreamingTest, HeadThenChunksInOrderThenResultWithoutBody) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* big = AddUrl(&batch, http_.Url("/bytes?n=1000000"));
  big->set_stream_body(true);
  big->set_chunk_bytes(64 << 10);
  // A request that doesn't ask gets its body inline, and nothing else.
  AddUrl(&batch, http_.Url("/bytes?n=3000"));
  // An empty body still gets its head.
  FetchRequest* empty = AddUrl(&batch, http_.Url("/bytes?n=0"));
  empty->set_stream_body(true);

  auto streamed = RunStreamed(batch);
  const Streamed& s = streamed[0];
  ASSERT_TRUE(s.head.has_value());
  EXPECT_EQ(s.head->id(), "r0");
  EXPECT_EQ(s.head->status(), 200u);
  EXPECT_EQ(s.head->content_length(), 1000000u);
  EXPECT_EQ(s.head->final_url(), http_.Url("/bytes?n=1000000"));
  EXPECT_EQ(HeaderValue(*s.head, "content-length"), "1000000");
  EXPECT_EQ(s.body, std::string(1000000, 'x'));
  EXPECT_LE(s.largest_chunk, size_t{64} << 10);
  EXPECT_GE(s.chunks, 1000000u / (64 << 10));
  EXPECT_EQ(s.result->error(), fetch::v1::ERROR_KIND_NONE)
      << s.result->error_message();
  EXPECT_EQ(s.result->status(), 200u);
  EXPECT_TRUE(s.result->body().empty());
  EXPECT_EQ(s.result->bytes_received(), 1000000u);

  EXPECT_FALSE(streamed[1].head.has_value());
  EXPECT_EQ(streamed[1].chunks, 0u);
  EXPECT_EQ(streamed[1].result->body(), std::string(3000, 'x'));

  ASSERT_TRUE(streamed[2].head.has_value());
  EXPECT_EQ(streamed[2].head->status(), 200u);
  EXPECT_EQ(streamed[2].chunks, 0u);
  EXPECT_EQ(streamed[2].result->bytes_received(), 0u);
}

TEST_F(StreamingTest, BatchDefaultsStreamEveryRequestWithTheirOwnIndex) {
  fetchd_.Start();
  BatchRequest batch;
  batch.mutable_defaults()->set_stream_body(true);
  batch.mutable_defaults()->set_chunk_bytes(4096);
  batch.set_ordered(true);
  for (int i = 0; i < 8; ++i) {
    AddUrl(&batch, http_.Url(absl::StrCat("/bytes?n=", 10000 + i)));
  }
  auto streamed = RunStreamed(batch);
  for (uint32_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(streamed[i].head.has_value()) << i;
    EXPECT_EQ(streamed[i].head->index(), i);
    EXPECT_EQ(streamed[i].body.size(), 10000u + i) << i;
    EXPECT_LE(streamed[i].largest_chunk, 4096u);
    EXPECT_EQ(streamed[i].result->bytes_received(), 10000u + i);
  }
}

TEST_F(StreamingTest, DecodedBodyIsStreamedWithoutALengthInTheHead) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* r =
      AddUrl(&batch, http_.Url("/encoded?encoding=gzip&bytes=300000"));
  r->set_stream_body(true);
  r->set_chunk_bytes(32 << 10);
  auto streamed = RunStreamed(batch);
  ASSERT_TRUE(streamed[0].head.has_value());
  // Content-Length is the encoded size: not the body's.
  EXPECT_FALSE(streamed[0].head->has_content_length());
  EXPECT_EQ(HeaderValue(*streamed[0].head, "content-encoding"), "gzip");
  EXPECT_EQ(streamed[0].body, TestBodyPattern(300000));
  EXPECT_EQ(streamed[0].result->bytes_received(), 300000u);
}

TEST_F(StreamingTest, OnlyTheFinalResponseOfARedirectIsStreamed) {
  fetchd_.Start();
  BatchRequest batch;
  const std::string target = http_.Url("/bytes?n=5000");
  FetchRequest* r = AddUrl(
      &batch, http_.Url("/redirect?to=" + UrlEncode(target) + "&code=302"));
  r->set_stream_body(true);
  auto streamed = RunStreamed(batch);
  ASSERT_TRUE(streamed[0].head.has_value());
  EXPECT_EQ(streamed[0].head->status(), 200u);
  EXPECT_EQ(streamed[0].head->final_url(), target);
  EXPECT_EQ(streamed[0].body, std::string(5000, 'x'));
  EXPECT_EQ(streamed[0].result->redirects(), 1u);
}

TEST_F(StreamingTest, ARetriedResponseIsNotStreamed) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* r =
      AddUrl(&batch, http_.Url("/sequence?key=stream-retry&codes=503,200"));
  r->set_stream_body(true);
  r->mutable_retry()->set_max_attempts(3);
  *r->mutable_retry()->mutable_base_backoff() = Millis(1);
  auto streamed = RunStreamed(batch);
  ASSERT_TRUE(streamed[0].head.has_value());
  EXPECT_EQ(streamed[0].head->status(), 200u);
  EXPECT_EQ(streamed[0].body, "status 200");
  EXPECT_EQ(streamed[0].result->attempts(), 2u);
}

TEST_F(StreamingTest, TheLastAttemptsRetryableStatusIsStreamed) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* r = AddUrl(&batch, http_.Url("/status?code=503"));
  r->set_stream_body(true);
  r->mutable_retry()->set_max_attempts(2);
  *r->mutable_retry()->mutable_base_backoff() = Millis(1);
  auto streamed = RunStreamed(batch);
  ASSERT_TRUE(streamed[0].head.has_value());
  EXPECT_EQ(streamed[0].head->status(), 503u);
  EXPECT_EQ(streamed[0].body, "status 503");
  EXPECT_EQ(streamed[0].result->attempts(), 2u);
  EXPECT_EQ(http_.RequestCount("/status"), 2);
}

TEST_F(StreamingTest, NoResponseMeansNoHead) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* r = AddUrl(
      &batch, absl::StrCat("http://127.0.0.1:", UnusedLoopbackPort(), "/"));
  r->set_stream_body(true);
  r->mutable_retry()->set_max_attempts(1);
  auto streamed = RunStreamed(batch);
  EXPECT_FALSE(streamed[0].head.has_value());
  EXPECT_EQ(streamed[0].result->error(), fetch::v1::ERROR_KIND_CONNECT);
}

TEST_F(StreamingTest, StreamedBodyStopsAtItsCap) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* r = AddUrl(&batch, http_.Url("/bytes?n=10000000"));
  r->set_stream_body(true);
  r->set_max_body_bytes(1 << 20);
  // Over the inline bound (64 MiB) but within the streamed one.
  FetchRequest* big = AddUrl(&batch, http_.Url("/bytes?n=100"));
  big->set_stream_body(true);
  big->set_max_body_bytes(uint64_t{1} << 30);
  auto streamed = RunStreamed(batch);
  EXPECT_EQ(streamed[0].result->error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE);
  EXPECT_LE(streamed[0].body.size(), size_t{1} << 20);
  EXPECT_EQ(streamed[0].result->bytes_received(), streamed[0].body.size());
  EXPECT_EQ(streamed[0].result->attempts(), 1u);
  EXPECT_EQ(streamed[1].result->error(), fetch::v1::ERROR_KIND_NONE)
      << streamed[1].result->error_message();
}

TEST_F(StreamingTest, BadStreamOptionsAreTheItemsError) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* big = AddUrl(&batch, http_.Url("/ok"));
  big->set_stream_body(true);
  big->set_chunk_bytes(4 << 20);
  FetchRequest* small = AddUrl(&batch, http_.Url("/ok"));
  small->set_chunk_bytes(100);
  FetchRequest* inline_cap = AddUrl(&batch, http_.Url("/ok"));
  inline_cap->set_max_body_bytes(uint64_t{1} << 30);
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[0].error_message(),
              HasSubstr("chunk_bytes: must be between 1024 and 1048576"));
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[1].error_message(), HasSubstr("chunk_bytes"));
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[2].error_message(), HasSubstr("max_body_bytes"));
}

TEST_F(StreamingTest, UnaryFetchRefusesToStream) {
  fetchd_.Start();
  FetchRequest request;
  request.set_url(http_.Url("/ok"));
  request.set_stream_body(true);
  absl::StatusOr<FetchResult> result = fetchd_.client().Fetch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(result->error_message(), HasSubstr("stream_body"));
}

TEST_F(StreamingTest, ClientFetchStreamedHandsOverTheBodyInOrder) {
  fetchd_.Start();
  FetchRequest request;
  request.set_url(http_.Url("/encoded?encoding=zstd&bytes=2000000"));
  request.set_chunk_bytes(100000);
  std::optional<BodyHead> head;
  std::string body;
  absl::StatusOr<FetchResult> result = fetchd_.client().FetchStreamed(
      request, [&](const BodyHead& h) { head = h; },
      [&](absl::string_view data) {
        EXPECT_LE(data.size(), 100000u);
        body.append(data.data(), data.size());
        return absl::OkStatus();
      });
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status(), 200u);
  EXPECT_EQ(body, TestBodyPattern(2000000));
  EXPECT_TRUE(result->body().empty());
  EXPECT_EQ(result->bytes_received(), 2000000u);
}

TEST_F(StreamingTest, AConsumerErrorCancelsTheCall) {
  fetchd_.Start();
  FetchRequest request;
  request.set_url(http_.Url("/bytes?n=50000000"));
  int64_t seen = 0;
  absl::StatusOr<FetchResult> result = fetchd_.client().FetchStreamed(
      request, [](const BodyHead&) {},
      [&](absl::string_view data) {
        seen += static_cast<int64_t>(data.size());
        return absl::DataLossError("disk full");
      });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_GT(seen, 0);
  EXPECT_TRUE(Eventually([&] { return fetchd_.gate().pending() == 0; }));
  EXPECT_TRUE(
      Eventually([&] { return fetchd_.pool().stats().in_flight == 0; }));
}

// A slow reader: fetchd pauses the transfer instead of buffering the body.
// Its own counter of streamed bytes held for the call stays within the
// bound plus what a transfer may add after its last check (one chunk and
// one write of curl's).
TEST_F(StreamingTest, SlowReaderKeepsTheBufferedBytesBounded) {
  constexpr int64_t kBound = 1 << 20;
  constexpr uint32_t kChunk = 64 << 10;
  fetchd_.config().mutable_limits()->set_max_stream_buffer_bytes(kBound);
  fetchd_.Start();
  BatchRequest batch;
  constexpr int64_t kBody = 48 << 20;
  FetchRequest* r = AddUrl(&batch, http_.Url(absl::StrCat("/bytes?n=", kBody)));
  r->set_stream_body(true);
  r->set_chunk_bytes(kChunk);
  // Paused transfers receive nothing; that is not a read-idle timeout.
  *r->mutable_timeouts()->mutable_read_idle() = Millis(300);
  grpc::ClientContext context;
  auto reader = fetchd_.stub().FetchBatch(&context, batch);
  FetchEvent event;
  StreamRecorder recorder;
  int events = 0;
  while (reader->Read(&event)) {
    recorder.OnEvent(event);
    // Slow at first (longer than read_idle once), then fast.
    if (events < 20)
      absl::SleepFor(absl::Milliseconds(events == 10 ? 600 : 20));
    ++events;
  }
  ASSERT_TRUE(reader->Finish().ok());
  const Streamed& s = recorder.by_index()[0];
  ASSERT_TRUE(s.result.has_value());
  EXPECT_EQ(s.result->error(), fetch::v1::ERROR_KIND_NONE)
      << s.result->error_message();
  EXPECT_EQ(s.body.size(), static_cast<size_t>(kBody));
  EXPECT_EQ(s.result->bytes_received(), static_cast<uint64_t>(kBody));
  ASSERT_TRUE(Eventually([&] { return fetchd_.gate().active_calls() == 0; }));
  const int64_t high = fetchd_.call_stats().stream_buffer_high_water();
  std::cerr << "slow reader: at most " << high
            << " streamed bytes held by fetchd (bound " << kBound << ")\n";
  EXPECT_GT(high, 0);
  EXPECT_LE(high, kBound + kChunk + (64 << 10));
}

int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kib = 0;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits.push_back(c);
      }
      if (absl::SimpleAtoi(digits, &kib)) return kib << 10;
    }
  }
  return -1;
}

// Sanitizers run ~10x slower: there the test streams less.
#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kLargeBody = int64_t{128} << 20;
#else
constexpr int64_t kLargeBody = int64_t{1} << 30;
#endif

// 1 GiB through fetchd, the client and the test server, all in this process:
// fetchd never holds more than its stream bound (8 MiB by default) of it.
// The process's resident memory is printed, not judged: it also counts the
// client's and the test server's buffers and malloc arenas; fetchd's own is
// judged in tests/e2e/download_e2e_test.cc.
TEST_F(StreamingTest, ALargeBodyStreamsWithinTheBufferBound) {
  fetchd_.Start();
  FetchRequest request;
  request.set_url(http_.Url(absl::StrCat("/bytes?n=", kLargeBody)));
  // Warm up gRPC, curl and the server's threads first.
  {
    FetchRequest warm = request;
    warm.set_url(http_.Url("/bytes?n=4000000"));
    ASSERT_TRUE(fetchd_.client()
                    .FetchStreamed(
                        warm, [](const BodyHead&) {},
                        [](absl::string_view) { return absl::OkStatus(); })
                    .ok());
  }
  const int64_t before = ResidentBytes();
  int64_t peak = before;
  int64_t received = 0;
  int64_t next_sample = 0;
  const absl::Time start = absl::Now();
  absl::StatusOr<FetchResult> result = fetchd_.client().FetchStreamed(
      request, [](const BodyHead&) {},
      [&](absl::string_view data) {
        received += static_cast<int64_t>(data.size());
        if (received >= next_sample) {
          peak = std::max(peak, ResidentBytes());
          next_sample = received + (int64_t{8} << 20);
        }
        return absl::OkStatus();
      });
  const absl::Duration took = absl::Now() - start;
  peak = std::max(peak, ResidentBytes());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), fetch::v1::ERROR_KIND_NONE)
      << result->error_message();
  EXPECT_EQ(received, kLargeBody);
  EXPECT_EQ(result->bytes_received(), static_cast<uint64_t>(kLargeBody));
  std::cerr << (kLargeBody >> 20) << " MiB streamed in " << took << " ("
            << static_cast<double>(kLargeBody) / (1 << 20) /
                   absl::ToDoubleSeconds(took)
            << " MiB/s); RSS " << before / (1 << 20) << " MiB -> peak "
            << peak / (1 << 20) << " MiB\n";
  ASSERT_TRUE(Eventually([&] { return fetchd_.gate().active_calls() == 0; }));
  const int64_t bound = fetchd_.config().limits().max_stream_buffer_bytes();
  EXPECT_LE(fetchd_.call_stats().stream_buffer_high_water(),
            bound + (256 << 10) + (64 << 10));
}

}  // namespace
}  // namespace fetchd::testing

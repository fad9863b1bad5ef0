#include "tests/testing/test_http_server.h"

#include <curl/curl.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::testing {
namespace {

using ::testing::SizeIs;

struct CurlEasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct CurlMultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;

// What a client saw of one transfer.
struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;  // NOLINT(google-runtime-int): curl's type.
  std::string body;
  std::string headers;  // The raw header block.

  // The value of header `name` (case-insensitive), or "" if absent.
  std::string Header(absl::string_view name) const {
    const absl::string_view wanted(name.data(), name.size());
    for (absl::string_view line : absl::StrSplit(headers, "\r\n")) {
      const size_t colon = line.find(':');
      if (colon != absl::string_view::npos &&
          absl::EqualsIgnoreCase(line.substr(0, colon), wanted)) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
    return "";
  }
};

size_t AppendToString(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// An easy handle for `url` that records into `reply`, bounded to 10 s.
CurlEasy NewEasy(const std::string& url, Reply* reply) {
  CurlEasy easy(curl_easy_init());
  if (easy == nullptr) {
    return easy;
  }
  curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy.get(), CURLOPT_PROXY, "");  // Ignore *_proxy env.
  curl_easy_setopt(easy.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy.get(), CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, &AppendToString);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, &reply->body);
  curl_easy_setopt(easy.get(), CURLOPT_HEADERFUNCTION, &AppendToString);
  curl_easy_setopt(easy.get(), CURLOPT_HEADERDATA, &reply->headers);
  return easy;
}

void RecordResult(CURL* easy, CURLcode code, Reply* reply) {
  reply->code = code;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &reply->status);
}

// Fetches `url` with a fresh handle; `configure` may set more options.
Reply Fetch(const std::string& url,
            const std::function<void(CURL*)>& configure = nullptr) {
  Reply reply;
  CurlEasy easy = NewEasy(url, &reply);
  if (easy == nullptr) {
    reply.code = CURLE_FAILED_INIT;
    return reply;
  }
  if (configure) {
    configure(easy.get());
  }
  RecordResult(easy.get(), curl_easy_perform(easy.get()), &reply);
  return reply;
}

// Fetches all `urls` at once on one multi handle (one connection each).
std::vector<Reply> FetchAll(const std::vector<std::string>& urls) {
  std::vector<Reply> replies(urls.size());
  CurlMulti multi(curl_multi_init());
  if (multi == nullptr) {
    for (Reply& reply : replies) {
      reply.code = CURLE_FAILED_INIT;
    }
    return replies;
  }
  std::vector<CurlEasy> easies;
  for (size_t i = 0; i < urls.size(); ++i) {
    easies.push_back(NewEasy(urls[i], &replies[i]));
    curl_multi_add_handle(multi.get(), easies.back().get());
  }
  int running = 0;
  do {
    if (curl_multi_perform(multi.get(), &running) != CURLM_OK) {
      break;
    }
    if (running > 0 &&
        curl_multi_poll(multi.get(), nullptr, 0, 1000, nullptr) != CURLM_OK) {
      break;
    }
  } while (running > 0);
  int queued = 0;
  while (const CURLMsg* msg = curl_multi_info_read(multi.get(), &queued)) {
    if (msg->msg != CURLMSG_DONE) {
      continue;
    }
    for (size_t i = 0; i < easies.size(); ++i) {
      if (easies[i].get() == msg->easy_handle) {
        RecordResult(msg->easy_handle, msg->data.result, &replies[i]);
      }
    }
  }
  for (CurlEasy& easy : easies) {
    curl_multi_remove_handle(multi.get(), easy.get());
  }
  return replies;
}

class TestHttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
  }
  static void TearDownTestSuite() { curl_global_cleanup(); }

  void SetUp() override {
    const absl::Status status = server_.Start();
    ASSERT_TRUE(status.ok()) << status;
  }

  TestHttpServer server_;
};

TEST_F(TestHttpServerTest, OkServesOkAndCountsByMethod) {
  const Reply reply = Fetch(server_.Url("/ok"));
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "ok");

  const Reply head = Fetch(server_.Url("/ok?ignored=1"), [](CURL* easy) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  });
  ASSERT_EQ(head.code, CURLE_OK) << curl_easy_strerror(head.code);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");

  EXPECT_EQ(server_.RequestCount("/ok"), 2);
  EXPECT_EQ(server_.RequestCount("/ok", "GET"), 1);
  EXPECT_EQ(server_.RequestCount("/ok", "HEAD"), 1);
  EXPECT_EQ(server_.RequestCount("/ok", "POST"), 0);
  EXPECT_EQ(server_.RequestCount("/other"), 0);
  EXPECT_EQ(server_.TotalRequests(), 2);
}

TEST_F(TestHttpServerTest, UrlHasHostAndPort) {
  EXPECT_EQ(server_.host(), "127.0.0.1");
  EXPECT_GT(server_.port(), 0);
  EXPECT_EQ(server_.Url("/ok?a=b"),
            "http://127.0.0.1:" + std::to_string(server_.port()) + "/ok?a=b");
}

TEST_F(TestHttpServerTest, BytesSendsExactlyNWithContentLength) {
  const Reply reply = Fetch(server_.Url("/bytes?n=300000"));
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, std::string(300000, 'x'));
  EXPECT_EQ(reply.Header("Content-Length"), "300000");

  const Reply empty = Fetch(server_.Url("/bytes?n=0"));
  ASSERT_EQ(empty.code, CURLE_OK) << curl_easy_strerror(empty.code);
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
  EXPECT_EQ(empty.Header("Content-Length"), "0");
}

TEST_F(TestHttpServerTest, BadParameterIs400) {
  EXPECT_EQ(Fetch(server_.Url("/bytes?n=-1")).status, 400);
  EXPECT_EQ(Fetch(server_.Url("/status?code=abc")).status, 400);
  EXPECT_EQ(Fetch(server_.Url("/status")).status, 400);
  EXPECT_EQ(Fetch(server_.Url("/sequence?key=k&codes=200,x")).status, 400);
  EXPECT_EQ(Fetch(server_.Url("/sequence?codes=200")).status, 400);
}

TEST_F(TestHttpServerTest, StatusSetsCodeBodyAndRetryAfter) {
  const Reply unavailable =
      Fetch(server_.Url("/status?code=503&retry_after=7"));
  ASSERT_EQ(unavailable.code, CURLE_OK);
  EXPECT_EQ(unavailable.status, 503);
  EXPECT_EQ(unavailable.body, "status 503");
  EXPECT_EQ(unavailable.Header("Retry-After"), "7");

  const Reply not_found = Fetch(server_.Url("/status?code=404"));
  ASSERT_EQ(not_found.code, CURLE_OK);
  EXPECT_EQ(not_found.status, 404);
  EXPECT_EQ(not_found.body, "status 404");
  EXPECT_EQ(not_found.Header("Retry-After"), "");

  const Reply no_content = Fetch(server_.Url("/status?code=204"));
  ASSERT_EQ(no_content.code, CURLE_OK);
  EXPECT_EQ(no_content.status, 204);
  EXPECT_EQ(no_content.body, "");
}

TEST_F(TestHttpServerTest, SequenceStepsThroughCodesPerKey) {
  const std::string url =
      server_.Url("/sequence?key=a&codes=503,503,200&retry_after=2");
  std::vector<long> statuses;  // NOLINT(google-runtime-int): curl's type.
  std::vector<std::string> retry_afters;
  for (int i = 0; i < 4; ++i) {
    const Reply reply = Fetch(url);
    ASSERT_EQ(reply.code, CURLE_OK);
    statuses.push_back(reply.status);
    retry_afters.push_back(reply.Header("Retry-After"));
  }
  EXPECT_THAT(statuses, ::testing::ElementsAre(503, 503, 200, 200));
  EXPECT_THAT(retry_afters, ::testing::ElementsAre("2", "2", "", ""));

  // Another key has its own position.
  EXPECT_EQ(Fetch(server_.Url("/sequence?key=b&codes=500,201")).status, 500);
  EXPECT_EQ(Fetch(server_.Url("/sequence?key=b&codes=500,201")).status, 201);
  EXPECT_EQ(server_.RequestCount("/sequence"), 6);
}

TEST_F(TestHttpServerTest, EchoReturnsBodyAndMethod) {
  const Reply reply = Fetch(server_.Url("/echo"), [](CURL* easy) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "hello");
  });
  ASSERT_EQ(reply.code, CURLE_OK);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "hello");
  EXPECT_EQ(reply.Header("X-Echo-Method"), "POST");
  EXPECT_EQ(reply.Header("X-Echo-Body-Bytes"), "5");

  const Reply put = Fetch(server_.Url("/echo"), [](CURL* easy) {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
  });
  ASSERT_EQ(put.code, CURLE_OK);
  EXPECT_EQ(put.status, 200);
  EXPECT_EQ(put.body, "");
  EXPECT_EQ(put.Header("X-Echo-Method"), "PUT");
  EXPECT_EQ(put.Header("X-Echo-Body-Bytes"), "0");
  EXPECT_EQ(server_.RequestCount("/echo", "PUT"), 1);
}

TEST_F(TestHttpServerTest, EchoTakesLargeFormLabelledBodies) {
  // libcurl labels POSTFIELDS bodies application/x-www-form-urlencoded and,
  // for bodies this large, sends "Expect: 100-continue".
  const std::string body(size_t{2} * 1024 * 1024, 'b');
  const Reply reply = Fetch(server_.Url("/echo?n=1"), [&body](CURL* easy) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
  });
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.Header("X-Echo-Body-Bytes"), std::to_string(body.size()));
  EXPECT_EQ(reply.body, body);
}

TEST_F(TestHttpServerTest, UnknownPathIs404AndCounted) {
  const Reply reply = Fetch(server_.Url("/nope?x=1"), [](CURL* easy) {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "DELETE");
  });
  ASSERT_EQ(reply.code, CURLE_OK);
  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(server_.RequestCount("/nope", "DELETE"), 1);
}

TEST_F(TestHttpServerTest, ParallelDelaysAreCountedAsConcurrent) {
  const std::string url = server_.Url("/delay?ms=200");
  const std::vector<Reply> replies = FetchAll({url, url, url});
  ASSERT_THAT(replies, SizeIs(3));
  for (const Reply& reply : replies) {
    EXPECT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body, "ok");
  }
  EXPECT_EQ(server_.tracker().max(), 3);
  EXPECT_TRUE(server_.tracker().AwaitCurrent(0, absl::Seconds(2)));
  EXPECT_EQ(server_.tracker().current(), 0);

  server_.tracker().Reset();
  EXPECT_EQ(server_.tracker().max(), 0);
}

TEST_F(TestHttpServerTest, TwoHostsShareATracker) {
  ConcurrencyTracker shared;
  TestHttpServer first({.host = "127.0.0.1", .shared_tracker = &shared});
  TestHttpServer second({.host = "127.0.0.2", .shared_tracker = &shared});
  ASSERT_TRUE(first.Start().ok());
  ASSERT_TRUE(second.Start().ok());
  EXPECT_EQ(second.host(), "127.0.0.2");
  EXPECT_TRUE(absl::StartsWith(second.Url("/ok"), "http://127.0.0.2:"));

  const std::vector<Reply> replies =
      FetchAll({first.Url("/delay?ms=200"), first.Url("/delay?ms=200"),
                second.Url("/delay?ms=200"), second.Url("/delay?ms=200")});
  for (const Reply& reply : replies) {
    EXPECT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
    EXPECT_EQ(reply.status, 200);
  }
  EXPECT_EQ(shared.max(), 4);
  EXPECT_EQ(first.tracker().max(), 2);
  EXPECT_EQ(second.tracker().max(), 2);
  EXPECT_EQ(first.RequestCount("/delay"), 2);
  EXPECT_EQ(second.RequestCount("/delay"), 2);
  EXPECT_TRUE(shared.AwaitCurrent(0, absl::Seconds(2)));
}

TEST_F(TestHttpServerTest, StallSendsOneByteThenFinishesAfterItsTime) {
  const Reply reply = Fetch(server_.Url("/stall?ms=50"));
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "x");
  EXPECT_TRUE(server_.WaitForNoActiveStreams(absl::Seconds(2)));
  EXPECT_EQ(server_.LastStreamEnd(), absl::InfinitePast());
}

TEST_F(TestHttpServerTest, DripSendsAllBytes) {
  const Reply reply = Fetch(server_.Url("/drip?bytes=5&interval_ms=1"));
  ASSERT_EQ(reply.code, CURLE_OK) << curl_easy_strerror(reply.code);
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "xxxxx");
  EXPECT_TRUE(server_.WaitForNoActiveStreams(absl::Seconds(2)));
  EXPECT_EQ(server_.LastStreamEnd(), absl::InfinitePast());
}

TEST_F(TestHttpServerTest, DripNoticesClientAbort) {
  const absl::Time before = absl::Now();
  const Reply reply = Fetch(
      server_.Url("/drip?bytes=1000&interval_ms=10"),
      [](CURL* easy) { curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 100L); });
  EXPECT_EQ(reply.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(reply.status, 200);
  EXPECT_FALSE(reply.body.empty());
  EXPECT_TRUE(server_.WaitForNoActiveStreams(absl::Seconds(2)));
  EXPECT_GE(server_.LastStreamEnd(), before);
  EXPECT_EQ(server_.ActiveStreams(), 0);
}

TEST_F(TestHttpServerTest, StallNoticesClientAbort) {
  const absl::Time before = absl::Now();
  const Reply reply = Fetch(server_.Url("/stall"), [](CURL* easy) {
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 100L);
  });
  EXPECT_EQ(reply.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(reply.body, "x");
  EXPECT_TRUE(server_.WaitForNoActiveStreams(absl::Seconds(2)));
  EXPECT_GE(server_.LastStreamEnd(), before);
}

TEST_F(TestHttpServerTest, UnusedLoopbackPortRefusesConnections) {
  const int port = UnusedLoopbackPort();
  ASSERT_GT(port, 0);
  const Reply reply = Fetch("http://127.0.0.1:" + std::to_string(port) + "/ok");
  EXPECT_EQ(reply.code, CURLE_COULDNT_CONNECT);
}

TEST_F(TestHttpServerTest, StartTwiceFails) {
  EXPECT_EQ(server_.Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TestHttpServerTest, StopRefusesLaterConnections) {
  server_.Stop();
  server_.Stop();  // Idempotent.
  EXPECT_EQ(Fetch(server_.Url("/ok")).code, CURLE_COULDNT_CONNECT);
}

TEST_F(TestHttpServerTest, StopEndsDelayEarly) {
  Reply reply;
  std::thread client([&] { reply = Fetch(server_.Url("/delay?ms=30000")); });
  ASSERT_TRUE(server_.tracker().AwaitCurrent(1, absl::Seconds(5)));
  const absl::Time before = absl::Now();
  server_.Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(2));
  client.join();
  EXPECT_NE(reply.code, CURLE_OPERATION_TIMEDOUT);
}

TEST_F(TestHttpServerTest, StopIsPromptWithAnIdleKeepAliveConnection) {
  Reply reply;
  CurlEasy easy = NewEasy(server_.Url("/ok"), &reply);
  ASSERT_NE(easy, nullptr);
  ASSERT_EQ(curl_easy_perform(easy.get()), CURLE_OK);
  // `easy` keeps its connection open and idle.
  const absl::Time before = absl::Now();
  server_.Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(2));
}

// Signals `arg` (an absl::Notification) on the first body byte.
size_t NotifyOnData(char* /*data*/, size_t size, size_t count, void* arg) {
  auto* first_byte = static_cast<absl::Notification*>(arg);
  if (!first_byte->HasBeenNotified()) {
    first_byte->Notify();
  }
  return size * count;
}

TEST(TestHttpServerLifetimeTest, DestructorIsPromptWhileAStallIsInFlight) {
  ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
  auto server = std::make_unique<TestHttpServer>();
  ASSERT_TRUE(server->Start().ok());
  const std::string url = server->Url("/stall");

  absl::Notification first_byte;
  Reply reply;
  std::thread client([&] {
    reply = Fetch(url, [&](CURL* easy) {
      curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
      curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &NotifyOnData);
      curl_easy_setopt(easy, CURLOPT_WRITEDATA, &first_byte);
    });
  });
  ASSERT_TRUE(first_byte.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(server->ActiveStreams(), 1);

  const absl::Time before = absl::Now();
  server.reset();
  EXPECT_LT(absl::Now() - before, absl::Seconds(2));
  client.join();
  // The body was cut short, well before the client's own timeout.
  EXPECT_NE(reply.code, CURLE_OK);
  EXPECT_NE(reply.code, CURLE_OPERATION_TIMEDOUT);
  curl_global_cleanup();
}

}  // namespace
}  // namespace fetchd::testing

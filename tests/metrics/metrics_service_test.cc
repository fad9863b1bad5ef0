// The metrics end to end inside one process: real traffic through the gRPC
// service and the curl workers against a local HTTP server, then /metrics
// scraped over HTTP, checked value by value and by `promtool check metrics`.
// Also the access log of that traffic.
#include <curl/curl.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/metrics/fetch_metrics.h"
#include "service/metrics/metrics_server.h"
#include "tests/api/service_harness.h"
#include "tests/metrics/exposition.h"
#include "tests/metrics/log_capture.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchResult;
using metrics::FetchMetrics;
using ::testing::HasSubstr;
using ::testing::Not;

// Every family of the metric contract that has series without traffic of
// its kind.
const std::set<std::string>& ContractFamilies() {
  static const auto* names =
      new std::set<std::string>{"fetch_requests_total",
                                "fetch_denied_total",
                                "fetch_request_body_bytes_total",
                                "fetch_response_body_bytes_total",
                                "fetch_attempts_total",
                                "fetch_retries_total",
                                "fetch_redirects_total",
                                "fetch_connections_total",
                                "fetch_rejected_calls_total",
                                "fetch_grpc_server_handled_total",
                                "fetch_process_cpu_seconds_total",
                                "fetch_request_duration_seconds",
                                "fetch_phase_duration_seconds",
                                "fetch_grpc_server_handling_seconds",
                                "fetch_in_flight_transfers",
                                "fetch_queued_requests",
                                "fetch_delayed_retries",
                                "fetch_pending_requests",
                                "fetch_active_calls",
                                "fetch_process_resident_memory_bytes",
                                "fetch_process_open_fds",
                                "fetch_process_start_time_seconds",
                                "fetch_build_info",
                                "fetch_serving",
                                "fetch_websockets_open",
                                "fetch_websocket_frames_total",
                                "fetch_websocket_bytes_total",
                                "fetch_websocket_closes_total",
                                "fetch_websocket_handshake_failures_total",
                                "fetch_politeness_rate_limited_requests_total",
                                "fetch_politeness_paused_requests_total",
                                "fetch_politeness_pauses_total",
                                "fetch_politeness_paused_hosts",
                                "fetch_circuit_breaker_hosts",
                                "fetch_circuit_breaker_transitions_total",
                                "fetch_limiter_mode",
                                "fetch_limiter_mode_transitions_total",
                                "fetch_limiter_redis_round_trip_seconds",
                                "fetch_limiter_redis_calls_total",
                                "fetch_limiter_redis_errors_total",
                                "fetch_limiter_starts_total",
                                "fetch_limiter_leases_held",
                                "fetch_limiter_leases_granted_total",
                                "fetch_limiter_leases_released_total",
                                "fetch_limiter_leases_reaped_total",
                                "fetch_limiter_tokens_reserved_total",
                                "fetch_limiter_tokens_returned_total",
                                "fetch_limiter_tokens_dropped_total",
                                "fetch_retries_denied_total",
                                "fetch_adaptive_concurrency_limit",
                                "fetch_stream_requests_received_total",
                                "fetch_stream_room_wait_seconds_total"};
  return *names;
}

size_t AppendTo(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// GET `url`; the body of a 200 response.
absl::StatusOr<std::string> HttpGet(const std::string& url) {
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return absl::InternalError("curl_easy_init");
  std::string body;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &AppendTo);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  const CURLcode code = curl_easy_perform(easy);
  long status = 0;  // NOLINT(google-runtime-int)
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(easy);
  if (code != CURLE_OK) {
    return absl::UnavailableError(curl_easy_strerror(code));
  }
  if (status != 200) {
    return absl::InternalError(absl::StrCat("HTTP status ", status));
  }
  return body;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs `promtool check metrics` on `exposition`.
CommandResult PromtoolCheckMetrics(const std::string& exposition) {
  const std::string dir = ::testing::TempDir();
  const std::string in = dir + "/fetchd_metrics.txt";
  const std::string out = dir + "/fetchd_promtool.txt";
  std::ofstream(in) << exposition;
  const std::string command = absl::StrCat(
      "'", PROMTOOL_BIN, "' check metrics < '", in, "' > '", out, "' 2>&1");
  const int status = std::system(command.c_str());  // NOLINT: test only
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  result.output = text.str();
  return result;
}

class MetricsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(http_.Start().ok()); }

  // Starts fetchd with metrics (`options`) and the metrics server.
  void StartFetchd(FetchMetrics::Options options) {
    options.host_labels = {"127.0.0.1"};
    options.version = "0.0.0-test";
    options.grpc_version = "grpc-test";
    options.curl_version = "curl-test";
    absl::StatusOr<std::unique_ptr<metrics::FetchMetrics>> created =
        metrics::FetchMetrics::Create(options);
    ASSERT_TRUE(created.ok()) << created.status();
    metrics_ = *std::move(created);
    fetchd_.set_observer(metrics_.get());
    ASSERT_NO_FATAL_FAILURE(fetchd_.Start());
    metrics_->SetLiveSource([this] {
      metrics::FetchMetrics::LiveStats live;
      live.engine = fetchd_.pool().stats();
      live.pending = fetchd_.gate().pending();
      live.active_calls = {
          fetchd_.gate().active_calls(api::CallKind::kFetchBatch),
          fetchd_.gate().active_calls(api::CallKind::kFetch)};
      return live;
    });
    metrics_->SetServing(true);
    absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server =
        metrics::MetricsServer::Start("127.0.0.1:0", metrics_->collectable());
    ASSERT_TRUE(server.ok()) << server.status();
    metrics_server_ = *std::move(server);
  }

  void TearDown() override {
    metrics_server_.reset();
    fetchd_.Stop();
  }

  std::string MetricsUrl() const {
    return absl::StrCat("http://", metrics_server_->address(), "/metrics");
  }

  // Scrapes until every gauge of work in progress reads 0 (results reach
  // the client a moment before the server's counters settle), or 10s.
  std::string ScrapeWhenIdle() {
    std::string text;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    do {
      absl::StatusOr<std::string> scraped = HttpGet(MetricsUrl());
      EXPECT_TRUE(scraped.ok()) << scraped.status();
      if (!scraped.ok()) return "";
      text = *std::move(scraped);
      const std::vector<Sample> s = ParseExposition(text);
      if (Sum(s, "fetch_in_flight_transfers") == 0 &&
          Sum(s, "fetch_queued_requests") == 0 &&
          Sum(s, "fetch_delayed_retries") == 0 &&
          Sum(s, "fetch_pending_requests") == 0 &&
          Sum(s, "fetch_active_calls") == 0) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    } while (absl::Now() < deadline);
    return text;
  }

  // One batch with an ok GET, a 503 then 200 sequence, a connection
  // refused (on 127.0.0.2, a host outside the allow-list), an invalid URL
  // and a POST with a 5-byte body; then a unary Fetch and an empty (invalid)
  // batch. `query` is appended to every URL.
  void RunTraffic(const std::string& query = "") {
    BatchRequest batch;
    AddUrl(&batch, http_.Url("/ok" + query));
    AddUrl(&batch, http_.Url("/sequence?key=metrics&codes=503,200" +
                             (query.empty() ? "" : "&" + query.substr(1))));
    AddUrl(&batch, absl::StrCat("http://127.0.0.2:", UnusedLoopbackPort(),
                                "/refused", query));
    AddUrl(&batch, "http://user:pw@[bad/invalid" + query);
    fetch::v1::FetchRequest* post = AddUrl(&batch, http_.Url("/echo" + query));
    post->set_method("POST");
    post->set_body("hello");
    const std::vector<FetchResult> results = fetchd_.RunByIndex(batch);
    ASSERT_EQ(results.size(), 5u);
    EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
    EXPECT_EQ(results[1].status(), 200u) << results[1].error_message();
    EXPECT_EQ(results[1].attempts(), 2u);
    EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_CONNECT)
        << results[2].error_message();
    EXPECT_EQ(results[2].attempts(), 3u);
    EXPECT_EQ(results[3].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
    EXPECT_EQ(results[4].body(), "hello");

    fetch::v1::FetchRequest single;
    single.set_url(http_.Url("/ok" + query));
    const absl::StatusOr<FetchResult> unary = fetchd_.client().Fetch(single);
    ASSERT_TRUE(unary.ok()) << unary.status();
    EXPECT_EQ(unary->status(), 200u);

    absl::Status empty_status;
    fetchd_.Run(BatchRequest(), &empty_status);
    EXPECT_EQ(empty_status.code(), absl::StatusCode::kInvalidArgument);
  }

  TestHttpServer http_;
  std::unique_ptr<metrics::FetchMetrics> metrics_;
  ServiceHarness fetchd_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
};

TEST_F(MetricsServiceTest, ScrapeShowsTheTrafficAndPassesPromtool) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({}));
  ASSERT_NO_FATAL_FAILURE(RunTraffic());
  const std::string text = ScrapeWhenIdle();
  const std::vector<Sample> s = ParseExposition(text);

  // Requests: GET ok (batch /ok, /sequence after its retry, unary /ok),
  // POST ok, a refused connection, an invalid URL.
  const auto requests =
      [&](const std::string& method, const std::string& outcome,
          const std::string& status_class, const std::string& host) {
        return Sum(s, "fetch_requests_total",
                   {{"method", method},
                    {"outcome", outcome},
                    {"status_class", status_class},
                    {"host", host}});
      };
  EXPECT_EQ(requests("GET", "ok", "2xx", "127.0.0.1"), 3);
  EXPECT_EQ(requests("POST", "ok", "2xx", "127.0.0.1"), 1);
  EXPECT_EQ(requests("GET", "connect", "none", "other"), 1);
  EXPECT_EQ(requests("GET", "invalid_request", "none", "other"), 1);
  EXPECT_EQ(Sum(s, "fetch_requests_total"), 6);

  // Attempts: 1 + 2 + 3 + 1 (batch) + 1 (unary); retries: the 503 once,
  // the refused connection twice.
  EXPECT_EQ(Sum(s, "fetch_attempts_total"), 8);
  EXPECT_GE(Sum(s, "fetch_retries_total"), 1);
  EXPECT_EQ(Sum(s, "fetch_retries_total", {{"reason", "status"}}), 1);
  EXPECT_EQ(Sum(s, "fetch_retries_total", {{"reason", "error"}}), 2);
  EXPECT_EQ(Sum(s, "fetch_retries_total", {{"reason", "retry_after"}}), 0);
  // Every attempt that reached the server had a connection.
  EXPECT_EQ(Sum(s, "fetch_connections_total"), 5);
  EXPECT_EQ(Sum(s, "fetch_request_body_bytes_total"), 5);
  // "ok", "status 503", "status 200", "hello", "ok".
  EXPECT_EQ(Sum(s, "fetch_response_body_bytes_total"), 29);
  EXPECT_EQ(Sum(s, "fetch_redirects_total"), 0);

  // Histograms.
  EXPECT_EQ(Sum(s, "fetch_request_duration_seconds_count",
                {{"method", "GET"}, {"outcome", "ok"}}),
            3);
  EXPECT_EQ(Sum(s, "fetch_request_duration_seconds_count",
                {{"method", "GET"}, {"outcome", "connect"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_request_duration_seconds_count"), 6);
  EXPECT_EQ(Sum(s, "fetch_request_duration_seconds_bucket",
                {{"method", "GET"}, {"outcome", "ok"}, {"le", "+Inf"}}),
            3);
  EXPECT_EQ(
      Sum(s, "fetch_phase_duration_seconds_count", {{"phase", "queue_wait"}}),
      8);
  EXPECT_EQ(
      Sum(s, "fetch_phase_duration_seconds_count", {{"phase", "first_byte"}}),
      5);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handling_seconds_count",
                {{"grpc_method", "FetchBatch"}}),
            2);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handling_seconds_count",
                {{"grpc_method", "Fetch"}}),
            1);

  // gRPC calls, and the refused empty batch.
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total",
                {{"grpc_method", "FetchBatch"}, {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(
      Sum(s, "fetch_grpc_server_handled_total",
          {{"grpc_method", "FetchBatch"}, {"grpc_code", "INVALID_ARGUMENT"}}),
      1);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total",
                {{"grpc_method", "Fetch"}, {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total"), 3);
  EXPECT_EQ(
      Sum(s, "fetch_rejected_calls_total", {{"reason", "invalid_argument"}}),
      1);
  EXPECT_EQ(Sum(s, "fetch_rejected_calls_total"), 1);

  // Work in progress is back to 0.
  EXPECT_EQ(Sum(s, "fetch_in_flight_transfers"), 0);
  EXPECT_EQ(Sum(s, "fetch_queued_requests"), 0);
  EXPECT_EQ(Sum(s, "fetch_delayed_retries"), 0);
  EXPECT_EQ(Sum(s, "fetch_pending_requests"), 0);
  EXPECT_EQ(Sum(s, "fetch_active_calls", {{"grpc_method", "FetchBatch"}}), 0);
  EXPECT_EQ(Sum(s, "fetch_active_calls", {{"grpc_method", "Fetch"}}), 0);

  // The process and the build.
  EXPECT_EQ(Sum(s, "fetch_build_info",
                {{"version", "0.0.0-test"},
                 {"grpc_version", "grpc-test"},
                 {"curl_version", "curl-test"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_serving"), 1);
  EXPECT_GT(Sum(s, "fetch_process_open_fds"), 0);
  EXPECT_GT(Sum(s, "fetch_process_resident_memory_bytes"), 0);
  EXPECT_GT(Sum(s, "fetch_process_cpu_seconds_total"), 0);
  EXPECT_GT(Sum(s, "fetch_process_start_time_seconds"), 1.6e9);

  // Exactly the contract's fetch_ families, no more, no fewer; besides them
  // only the scrape statistics that prometheus-cpp's Exposer always adds.
  std::set<std::string> fetch_families, other_families;
  for (const std::string& name : FamilyNames(text)) {
    (name.rfind("fetch_", 0) == 0 ? fetch_families : other_families)
        .insert(name);
  }
  EXPECT_EQ(fetch_families, ContractFamilies());
  EXPECT_EQ(other_families,
            (std::set<std::string>{"exposer_request_latencies",
                                   "exposer_scrapes_total",
                                   "exposer_transferred_bytes_total"}));

  const CommandResult promtool = PromtoolCheckMetrics(text);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.output;
  std::cout << "promtool check metrics: exit " << promtool.exit_code
            << ", output: \"" << promtool.output << "\"\n";
}

TEST_F(MetricsServiceTest, AccessLogHasOneLinePerRequestAndNoQuery) {
  LogCapture capture;  // before any worker logs
  FetchMetrics::Options options;
  options.access_log_sample_rate = 1.0;
  ASSERT_NO_FATAL_FAILURE(StartFetchd(options));
  ASSERT_NO_FATAL_FAILURE(RunTraffic("?sig=secret"));
  ScrapeWhenIdle();  // every result has been reported
  metrics_server_.reset();
  fetchd_.Stop();  // no worker logs from here on

  std::vector<std::string> access;
  for (const std::string& line : capture.lines()) {
    EXPECT_THAT(line, Not(HasSubstr("secret"))) << line;
    EXPECT_THAT(line, Not(HasSubstr("sig="))) << line;
    EXPECT_THAT(line, Not(HasSubstr("user:pw"))) << line;
    if (line.rfind("access ", 0) == 0) access.push_back(line);
  }
  // Six requests (five in the batch, one unary); the refused empty batch
  // has none.
  ASSERT_EQ(access.size(), 6u);
  const std::string origin = absl::StrCat("http://127.0.0.1:", http_.port());
  const auto count = [&](const std::string& part) {
    int n = 0;
    for (const std::string& line : access) n += line.find(part) != line.npos;
    return n;
  };
  EXPECT_EQ(count("method=GET url=" + origin +
                  "/ok status=200 outcome=ok "
                  "attempts=1 "),
            2);
  EXPECT_EQ(count("url=" + origin +
                  "/sequence status=200 outcome=ok "
                  "attempts=2 "),
            1);
  EXPECT_EQ(count("/refused status=0 outcome=connect attempts=3 "), 1);
  EXPECT_EQ(count("url=http://[bad/invalid status=0 outcome=invalid_request "
                  "attempts=0 "),
            1);
  EXPECT_EQ(count("method=POST url=" + origin +
                  "/echo status=200 outcome=ok attempts=1 "),
            1);
  EXPECT_EQ(count("bytes_sent=5"), 1);
}

}  // namespace
}  // namespace fetchd::testing

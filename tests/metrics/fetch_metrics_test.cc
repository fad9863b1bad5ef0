// FetchMetrics driven directly through the observer interface: each report
// lands on the contract's series, with the contract's labels.
#include "service/metrics/fetch_metrics.h"

#include <random>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/metrics/exposition.h"
#include "tests/metrics/log_capture.h"

namespace fetchd::metrics {
namespace {

using fetchd::testing::ParseExposition;
using fetchd::testing::Sample;
using fetchd::testing::Sum;
using google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;

std::unique_ptr<FetchMetrics> Make(FetchMetrics::Options options = {}) {
  options.version = "1.2.3";
  options.grpc_version = "1.51.1";
  options.curl_version = "7.88.1";
  auto metrics = FetchMetrics::Create(options);
  EXPECT_TRUE(metrics.ok()) << metrics.status();
  return metrics.ok() ? *std::move(metrics) : nullptr;
}

fetch::v1::FetchResult Result(uint32_t status, fetch::v1::ErrorKind error) {
  fetch::v1::FetchResult r;
  r.set_status(status);
  r.set_error(error);
  return r;
}

TEST(FetchMetricsTest, CountsResultsByMethodOutcomeStatusClassAndHost) {
  FetchMetrics::Options options;
  options.host_labels = {"api.example.com"};
  auto metrics = Make(options);
  std::mt19937 rng(1);
  const auto report = [&](absl::string_view method, absl::string_view host_key,
                          const fetch::v1::FetchResult& result,
                          absl::Duration duration) {
    metrics->OnResult(
        core::FinishedRequest{method, "http://x/", host_key, duration}, result,
        rng);
  };
  report("GET", "https://api.example.com:443", Result(200, {}),
         absl::Milliseconds(20));
  report("GET", "https://api.example.com:443", Result(200, {}),
         absl::Milliseconds(30));
  report("GET", "https://other.example.com:443",
         Result(503, fetch::v1::ERROR_KIND_HTTP_STATUS), absl::Seconds(2));
  report("POST", "http://10.0.0.1:80",
         Result(0, fetch::v1::ERROR_KIND_CONNECT_TIMEOUT), absl::Seconds(10));
  report("BREW", "", Result(0, fetch::v1::ERROR_KIND_INVALID_REQUEST),
         absl::ZeroDuration());

  const std::vector<Sample> s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_requests_total",
                {{"method", "GET"},
                 {"outcome", "ok"},
                 {"status_class", "2xx"},
                 {"host", "api.example.com"}}),
            2);
  EXPECT_EQ(Sum(s, "fetch_requests_total",
                {{"method", "GET"},
                 {"outcome", "http_status"},
                 {"status_class", "5xx"},
                 {"host", "other"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_requests_total",
                {{"method", "POST"},
                 {"outcome", "connect_timeout"},
                 {"status_class", "none"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_requests_total",
                {{"method", "other"}, {"outcome", "invalid_request"}}),
            1);
  // Only the combinations that happened have series.
  EXPECT_EQ(Sum(s, "fetch_requests_total", {{"outcome", "dns"}}), -1);

  EXPECT_EQ(Sum(s, "fetch_request_duration_seconds_count",
                {{"method", "GET"}, {"outcome", "ok"}}),
            2);
  EXPECT_DOUBLE_EQ(Sum(s, "fetch_request_duration_seconds_sum",
                       {{"method", "GET"}, {"outcome", "ok"}}),
                   0.05);
  EXPECT_EQ(Sum(s, "fetch_request_duration_seconds_bucket",
                {{"method", "GET"}, {"outcome", "ok"}, {"le", "0.025"}}),
            1);
  EXPECT_EQ(
      Sum(s, "fetch_request_duration_seconds_bucket",
          {{"method", "POST"}, {"outcome", "connect_timeout"}, {"le", "+Inf"}}),
      1);
}

TEST(FetchMetricsTest, CountsAttemptsRetriesConnectionsBytesAndPhases) {
  auto metrics = Make();
  core::FetchJob job;
  metrics->OnAttemptStarted(job, absl::Milliseconds(3));
  metrics->OnAttemptStarted(job, absl::ZeroDuration());

  // A new connection: DNS 1ms, connect 2ms, TLS 3ms, first byte at 10ms,
  // done at 15ms; one redirect; will be retried for its status.
  fetch::v1::FetchResult first = Result(503, {});
  first.set_bytes_sent(100);
  first.set_bytes_received(10);
  first.set_redirects(1);
  auto* t = first.mutable_timings();
  *t->mutable_dns() = TimeUtil::MillisecondsToDuration(1);
  *t->mutable_connect() = TimeUtil::MillisecondsToDuration(2);
  *t->mutable_tls() = TimeUtil::MillisecondsToDuration(3);
  *t->mutable_first_byte() = TimeUtil::MillisecondsToDuration(10);
  *t->mutable_total() = TimeUtil::MillisecondsToDuration(15);
  metrics->OnAttemptFinished(job, first, /*connected=*/true,
                             core::RetryReason::kStatus);
  // The retry reuses the connection.
  fetch::v1::FetchResult second = Result(200, {});
  second.set_bytes_sent(100);
  second.set_bytes_received(2);
  second.set_connection_reused(true);
  *second.mutable_timings()->mutable_first_byte() =
      TimeUtil::MillisecondsToDuration(4);
  *second.mutable_timings()->mutable_total() =
      TimeUtil::MillisecondsToDuration(5);
  metrics->OnAttemptFinished(job, second, /*connected=*/true, std::nullopt);
  // A connect failure, retried; and a Retry-After retry.
  metrics->OnAttemptFinished(job, Result(0, fetch::v1::ERROR_KIND_CONNECT),
                             /*connected=*/false, core::RetryReason::kError);
  metrics->OnAttemptFinished(job, Result(429, {}), /*connected=*/true,
                             core::RetryReason::kRetryAfter);

  const std::vector<Sample> s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_attempts_total"), 2);
  EXPECT_EQ(Sum(s, "fetch_retries_total", {{"reason", "status"}}), 1);
  EXPECT_EQ(Sum(s, "fetch_retries_total", {{"reason", "error"}}), 1);
  EXPECT_EQ(Sum(s, "fetch_retries_total", {{"reason", "retry_after"}}), 1);
  EXPECT_EQ(Sum(s, "fetch_connections_total", {{"reused", "false"}}), 2);
  EXPECT_EQ(Sum(s, "fetch_connections_total", {{"reused", "true"}}), 1);
  EXPECT_EQ(Sum(s, "fetch_request_body_bytes_total"), 200);
  EXPECT_EQ(Sum(s, "fetch_response_body_bytes_total"), 12);
  EXPECT_EQ(Sum(s, "fetch_redirects_total"), 1);

  const auto phase_count = [&](const std::string& phase) {
    return Sum(s, "fetch_phase_duration_seconds_count", {{"phase", phase}});
  };
  const auto phase_sum = [&](const std::string& phase) {
    return Sum(s, "fetch_phase_duration_seconds_sum", {{"phase", phase}});
  };
  EXPECT_EQ(phase_count("queue_wait"), 2);
  EXPECT_NEAR(phase_sum("queue_wait"), 0.003, 1e-9);
  // DNS and connect for the two new connections that got that far (the 429
  // one had zero times); TLS only where there was a handshake.
  EXPECT_EQ(phase_count("dns"), 2);
  EXPECT_EQ(phase_count("connect"), 2);
  EXPECT_EQ(phase_count("tls"), 1);
  EXPECT_NEAR(phase_sum("tls"), 0.003, 1e-9);
  // first_byte: 10 - 1 - 2 - 3 = 4ms, and 4ms on the reused connection.
  EXPECT_EQ(phase_count("first_byte"), 2);
  EXPECT_NEAR(phase_sum("first_byte"), 0.008, 1e-9);
  EXPECT_NEAR(phase_sum("transfer"), 0.006, 1e-9);
}

TEST(FetchMetricsTest, StreamsCountTheirRequestsAndTheirWaits) {
  auto metrics = Make();
  std::vector<Sample> s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_stream_requests_received_total"), 0);
  EXPECT_EQ(Sum(s, "fetch_stream_room_wait_seconds_total"), 0);
  metrics->OnStreamRequests(256);
  metrics->OnStreamRequests(3);
  metrics->OnStreamWaited(absl::Milliseconds(1500));
  metrics->OnCallFinished(core::CallMethod::kFetchStream,
                          absl::StatusCode::kAborted, absl::Seconds(2), false);
  s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_stream_requests_received_total"), 259);
  EXPECT_DOUBLE_EQ(Sum(s, "fetch_stream_room_wait_seconds_total"), 1.5);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total",
                {{"grpc_method", "FetchStream"}, {"grpc_code", "ABORTED"}}),
            1);
}

TEST(FetchMetricsTest, GrpcCallsAndRejections) {
  auto metrics = Make();
  metrics->OnCallFinished(core::CallMethod::kFetchBatch, absl::StatusCode::kOk,
                          absl::Milliseconds(40), false);
  metrics->OnCallFinished(core::CallMethod::kFetchBatch,
                          absl::StatusCode::kResourceExhausted,
                          absl::ZeroDuration(), true);
  metrics->OnCallFinished(core::CallMethod::kFetch,
                          absl::StatusCode::kUnavailable, absl::ZeroDuration(),
                          true);
  metrics->OnCallFinished(core::CallMethod::kFetch,
                          absl::StatusCode::kCancelled, absl::Seconds(1),
                          false);
  const std::vector<Sample> s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total",
                {{"grpc_method", "FetchBatch"}, {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(
      Sum(s, "fetch_grpc_server_handled_total",
          {{"grpc_method", "FetchBatch"}, {"grpc_code", "RESOURCE_EXHAUSTED"}}),
      1);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total",
                {{"grpc_method", "Fetch"}, {"grpc_code", "CANCELLED"}}),
            1);
  // Every method x code series exists from the start.
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total",
                {{"grpc_method", "Fetch"}, {"grpc_code", "DATA_LOSS"}}),
            0);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handling_seconds_count",
                {{"grpc_method", "Fetch"}}),
            2);
  EXPECT_EQ(
      Sum(s, "fetch_rejected_calls_total", {{"reason", "resource_exhausted"}}),
      1);
  EXPECT_EQ(Sum(s, "fetch_rejected_calls_total", {{"reason", "unavailable"}}),
            1);
  EXPECT_EQ(
      Sum(s, "fetch_rejected_calls_total", {{"reason", "invalid_argument"}}),
      0);
}

TEST(FetchMetricsTest, GaugesAreReadAtScrapeTime) {
  auto metrics = Make();
  std::vector<Sample> s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_in_flight_transfers"), 0);  // no source yet
  EXPECT_EQ(Sum(s, "fetch_serving"), 0);

  int64_t queued = 7;
  metrics->SetLiveSource([&queued] {
    FetchMetrics::LiveStats live;
    live.engine = {
        .in_flight = 3, .queued = queued, .delayed = 2, .politeness = {}};
    live.pending = 12;
    live.active_calls = {4, 1, 2};
    return live;
  });
  metrics->SetServing(true);
  s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_in_flight_transfers"), 3);
  EXPECT_EQ(Sum(s, "fetch_queued_requests"), 7);
  EXPECT_EQ(Sum(s, "fetch_delayed_retries"), 2);
  EXPECT_EQ(Sum(s, "fetch_pending_requests"), 12);
  EXPECT_EQ(Sum(s, "fetch_active_calls", {{"grpc_method", "FetchBatch"}}), 4);
  EXPECT_EQ(Sum(s, "fetch_active_calls", {{"grpc_method", "Fetch"}}), 1);
  EXPECT_EQ(Sum(s, "fetch_active_calls", {{"grpc_method", "FetchStream"}}), 2);
  EXPECT_EQ(Sum(s, "fetch_serving"), 1);
  queued = 0;
  metrics->SetServing(false);
  s = ParseExposition(metrics->Render());
  EXPECT_EQ(Sum(s, "fetch_queued_requests"), 0);
  EXPECT_EQ(Sum(s, "fetch_serving"), 0);

  EXPECT_EQ(Sum(s, "fetch_build_info",
                {{"version", "1.2.3"},
                 {"grpc_version", "1.51.1"},
                 {"curl_version", "7.88.1"}}),
            1);
  EXPECT_GT(Sum(s, "fetch_process_start_time_seconds"), 1.6e9);
  EXPECT_GT(Sum(s, "fetch_process_resident_memory_bytes"), 0);
  EXPECT_GT(Sum(s, "fetch_process_open_fds"), 0);
  EXPECT_GE(Sum(s, "fetch_process_cpu_seconds_total"), 0);
}

// The politeness families come from the engine's per-rule stats, labelled
// by rule name only; a rule that never saw a host is left out, the default
// rule never; the adaptive limit only for rules with adaptive on.
TEST(FetchMetricsTest, PolitenessFamiliesAreByRule) {
  auto metrics = Make();
  metrics->SetLiveSource([] {
    FetchMetrics::LiveStats live;
    core::politeness::RuleStats api;
    api.rule = "api";
    api.adaptive = true;
    api.hosts = 2;
    api.hosts_paused = 1;
    api.breakers_open = 1;
    api.breakers_half_open = 0;
    api.adaptive_limit_min = 3;
    api.rate_limited_requests = 40;
    api.paused_requests = 5;
    api.backoffs_started = 2;
    api.breaker_opened = 4;
    api.breaker_half_opened = 3;
    api.breaker_closed = 2;
    api.retries_denied = 9;
    core::politeness::RuleStats unused;
    unused.rule = "unused";
    core::politeness::RuleStats fallback;
    fallback.rule = "default";
    fallback.adaptive_limit_min = 16;
    live.engine.politeness = {api, unused, fallback};
    return live;
  });
  const std::string text = metrics->Render();
  const std::vector<Sample> s = ParseExposition(text);
  const std::map<std::string, std::string> api = {{"rule", "api"}};
  EXPECT_EQ(Sum(s, "fetch_politeness_rate_limited_requests_total", api), 40);
  EXPECT_EQ(Sum(s, "fetch_politeness_paused_requests_total", api), 5);
  EXPECT_EQ(Sum(s, "fetch_politeness_pauses_total", api), 2);
  EXPECT_EQ(Sum(s, "fetch_politeness_paused_hosts", api), 1);
  EXPECT_EQ(Sum(s, "fetch_circuit_breaker_hosts",
                {{"rule", "api"}, {"state", "open"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_circuit_breaker_hosts",
                {{"rule", "api"}, {"state", "half_open"}}),
            0);
  EXPECT_EQ(Sum(s, "fetch_circuit_breaker_transitions_total",
                {{"rule", "api"}, {"to", "open"}}),
            4);
  EXPECT_EQ(Sum(s, "fetch_circuit_breaker_transitions_total",
                {{"rule", "api"}, {"to", "half_open"}}),
            3);
  EXPECT_EQ(Sum(s, "fetch_circuit_breaker_transitions_total",
                {{"rule", "api"}, {"to", "closed"}}),
            2);
  EXPECT_EQ(Sum(s, "fetch_retries_denied_total", api), 9);
  EXPECT_EQ(Sum(s, "fetch_adaptive_concurrency_limit", api), 3);
  // The default rule is always there; a rule without hosts is not.
  EXPECT_EQ(Sum(s, "fetch_retries_denied_total", {{"rule", "default"}}), 0);
  EXPECT_EQ(Sum(s, "fetch_retries_denied_total", {{"rule", "unused"}}), -1);
  EXPECT_EQ(Sum(s, "fetch_adaptive_concurrency_limit", {{"rule", "default"}}),
            -1);
  EXPECT_EQ(text.find("host="), std::string::npos);
}

TEST(FetchMetricsTest, AccessLogIsSampled) {
  const auto logged = [](double rate) {
    FetchMetrics::Options options;
    options.access_log_sample_rate = rate;
    auto metrics = Make(options);
    fetchd::testing::LogCapture capture;
    std::mt19937 rng(42);
    for (int i = 0; i < 1000; ++i) {
      metrics->OnResult(
          core::FinishedRequest{"GET", "http://h/p?sig=secret", "http://h:80",
                                absl::Milliseconds(1)},
          Result(200, {}), rng);
    }
    return capture.lines();
  };
  EXPECT_TRUE(logged(0).empty());
  const auto all = logged(1);
  ASSERT_EQ(all.size(), 1000u);
  EXPECT_THAT(all[0], HasSubstr("access method=GET url=http://h:80/p status="));
  const size_t half = logged(0.5).size();
  EXPECT_GT(half, 400u);
  EXPECT_LT(half, 600u);
}

}  // namespace
}  // namespace fetchd::metrics

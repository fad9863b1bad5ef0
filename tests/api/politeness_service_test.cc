// Per-host politeness through the real service (gRPC, the curl workers, the
// config's rules) against local servers that record when each request
// arrived and how many were handled at once: rates and least delays hold in
// every window, rules are independent, a Retry-After pauses a host for every
// batch, an open breaker refuses without connecting and recovers, the retry
// budget bounds retries, max_queue refuses only the overflow, a batch may
// ask for stricter limits but never looser, and fairness holds under a rate.
//
// Arrival times are the servers' (real time): the checks allow what the
// path from fetchd's start to the server's handler adds (loopback connect,
// thread hand-off) and nothing more. Exact admit times are the unit tests'
// (tests/core/politeness), on an injected clock.
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_duration.h"
#include "service/config/server_config.h"
#include "tests/api/service_harness.h"
#include "tests/testing/loopback_listener.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;

// What the way from a start in fetchd to the server's handler (loopback
// connect, thread hand-off, a busy CI machine) may take off the spacing of
// two arrivals. Without the limits the spacing would be about 1 ms. ctest
// runs these tests alone (SERIAL).
constexpr absl::Duration kJitter = absl::Milliseconds(50);

// Whether `arrivals` (in order) never exceed rate * t + burst + 1 in any
// window [arrivals[i], arrivals[j]]; the +1 is for the jitter of arrival.
::testing::AssertionResult WithinRate(const std::vector<absl::Time>& arrivals,
                                      double rate, int burst) {
  for (size_t i = 0; i < arrivals.size(); ++i) {
    for (size_t j = i + 1; j < arrivals.size(); ++j) {
      const double seconds = absl::ToDoubleSeconds(arrivals[j] - arrivals[i]);
      const double allowed = rate * seconds + burst + 1;
      if (static_cast<double>(j - i + 1) > allowed) {
        return ::testing::AssertionFailure()
               << j - i + 1 << " arrivals in " << seconds << " s (from arrival "
               << i << "), more than " << allowed;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

class PolitenessServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(a_.Start().ok());
    ASSERT_TRUE(b_.Start().ok());
  }

  // Lays `json` (a ServerConfig in the JSON mapping) over the config.
  void Configure(const std::string& json) {
    absl::StatusOr<fetch::v1::ServerConfig> merged =
        config::MergeJsonConfig(fetchd_.config(), json);
    ASSERT_TRUE(merged.ok()) << merged.status();
    fetchd_.config() = *std::move(merged);
  }

  // Requests are tried once unless a test says otherwise.
  void NoRetries() {
    fetchd_.config()
        .mutable_request_defaults()
        ->mutable_retry()
        ->set_max_attempts(1);
  }

  static BatchRequest Urls(const TestHttpServer& server,
                           const std::string& path, int n) {
    BatchRequest batch;
    for (int i = 0; i < n; ++i) AddUrl(&batch, server.Url(path));
    return batch;
  }

  // The stats of `rule` summed over the workers, once `done` holds for
  // them (they are refreshed every few hundred milliseconds); fails after
  // 10 s.
  template <typename Done>
  core::politeness::RuleStats RuleStatsOnce(const std::string& rule,
                                            Done done) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    core::politeness::RuleStats found;
    while (absl::Now() < give_up) {
      for (const auto& s : fetchd_.pool().stats().politeness) {
        if (s.rule == rule) found = s;
      }
      if (done(found)) return found;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "the stats of rule " << rule << " never got there";
    return found;
  }

  TestHttpServer a_{TestHttpServerOptions{.host = "127.0.0.2"}};
  TestHttpServer b_{TestHttpServerOptions{.host = "127.0.0.3"}};
  ServiceHarness fetchd_;
};

TEST_F(PolitenessServiceTest, ARateHoldsInEveryWindow) {
  Configure(R"({"politeness": {"rules": [
      {"name": "api", "hosts": ["127.0.0.2"], "rate": 20, "burst": 2}]}})");
  fetchd_.Start();
  const std::vector<FetchResult> results =
      fetchd_.RunByIndex(Urls(a_, "/ok", 100));
  int limited = 0;
  for (const FetchResult& r : results) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
    if (r.politeness().rate_limited()) {
      ++limited;
      EXPECT_EQ(r.politeness().rule(), "api");
    }
  }
  // Two go at once (the burst); every other one waited for the rate.
  EXPECT_GE(limited, 98);
  const std::vector<absl::Time> arrivals = a_.Arrivals("/ok");
  ASSERT_EQ(arrivals.size(), 100u);
  EXPECT_TRUE(WithinRate(arrivals, 20, 2));
  // The rate wait is queue time: the last one waited about (100 - 2) / 20 s.
  EXPECT_GE(FromProto(results.back().timings().queue_wait()), absl::Seconds(4));
  const core::politeness::RuleStats stats = RuleStatsOnce(
      "api", [](const auto& s) { return s.rate_limited_requests >= 98; });
  EXPECT_EQ(stats.rate_limited_requests, static_cast<uint64_t>(limited));
}

TEST_F(PolitenessServiceTest, MinDelaySpacesTheStarts) {
  Configure(R"({"politeness": {"rules": [
      {"name": "site", "hosts": ["127.0.0.2"], "min_delay": "0.2s"}]}})");
  fetchd_.Start();
  for (const FetchResult& r : fetchd_.Run(Urls(a_, "/ok", 6))) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
  }
  const std::vector<absl::Time> arrivals = a_.Arrivals("/ok");
  ASSERT_EQ(arrivals.size(), 6u);
  for (size_t i = 1; i < arrivals.size(); ++i) {
    EXPECT_GE(arrivals[i] - arrivals[i - 1], absl::Milliseconds(200) - kJitter)
        << "arrivals " << i - 1 << " and " << i;
  }
  EXPECT_GE(arrivals.back() - arrivals.front(),
            absl::Milliseconds(5 * 200) - kJitter);
}

TEST_F(PolitenessServiceTest, TwoRulesHoldTheirHostsIndependently) {
  Configure(R"({"politeness": {"rules": [
      {"name": "slow", "hosts": ["127.0.0.2"], "rate": 5},
      {"name": "one", "hosts": ["127.0.0.3"], "max_concurrency": 1}]}})");
  fetchd_.Start();
  BatchRequest batch = Urls(a_, "/ok", 8);
  for (int i = 0; i < 8; ++i) AddUrl(&batch, b_.Url("/delay?ms=20"));
  for (const FetchResult& r : fetchd_.RunByIndex(batch)) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
    // Only the rate-limited host's requests say they waited for a rate.
    EXPECT_EQ(r.politeness().rate_limited(), r.index() < 8 && r.index() > 0)
        << r.index();
  }
  const std::vector<absl::Time> slow = a_.Arrivals("/ok");
  const std::vector<absl::Time> one = b_.Arrivals("/delay");
  ASSERT_EQ(slow.size(), 8u);
  ASSERT_EQ(one.size(), 8u);
  EXPECT_TRUE(WithinRate(slow, 5, 1));
  EXPECT_EQ(b_.tracker().max(), 1);
  // The other host is not held by the first one's rate: its eight were done
  // long before the rate let the first host's eighth start (1.4 s).
  EXPECT_LT(one.back(), slow.back() - absl::Milliseconds(700));
}

TEST_F(PolitenessServiceTest, RetryAfterPausesTheHostForEveryBatch) {
  NoRetries();
  fetchd_.Start();
  const std::vector<FetchResult> first =
      fetchd_.Run(Urls(a_, "/status?code=429&retry_after=2", 1));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].status(), 429u);
  const absl::Time throttled = a_.Arrivals("/status").at(0);

  // Another batch, after the response: nothing reaches the paused host for
  // 2 s; the other host is not paused.
  BatchRequest batch = Urls(a_, "/ok", 3);
  AddUrl(&batch, b_.Url("/ok"));
  for (const FetchResult& r : fetchd_.RunByIndex(batch)) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
    const bool paused_host = r.index() < 3;
    EXPECT_EQ(r.politeness().paused(), paused_host) << r.index();
    if (paused_host) {
      EXPECT_EQ(r.politeness().rule(), "default");
      EXPECT_GE(FromProto(r.timings().queue_wait()), absl::Seconds(1));
    }
  }
  for (const absl::Time arrival : a_.Arrivals("/ok")) {
    EXPECT_GE(arrival - throttled, absl::Seconds(2) - kJitter);
  }
  EXPECT_LT(b_.Arrivals("/ok").at(0) - throttled, absl::Seconds(1));
  const core::politeness::RuleStats stats =
      RuleStatsOnce("default", [](const auto& s) {
        return s.backoffs_started >= 1 && s.paused_requests >= 3;
      });
  EXPECT_EQ(stats.backoffs_started, 1u);
  EXPECT_EQ(stats.paused_requests, 3u);
}

// A server that closes every connection at once while `failing`, and
// answers 200 otherwise; it counts the connections it accepted.
class FlakyServer {
 public:
  FlakyServer()
      : listener_([this](int fd) {
          accepted_.fetch_add(1);
          if (failing_.load()) return;
          std::string request;
          char buffer[4096];
          while (request.find("\r\n\r\n") == std::string::npos) {
            const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
            if (n <= 0) return;
            request.append(buffer, static_cast<size_t>(n));
          }
          const std::string response =
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
              "Connection: close\r\n\r\nok";
          (void)send(fd, response.data(), response.size(), MSG_NOSIGNAL);
        }) {}

  absl::Status Start() { return listener_.Start(); }
  std::string Url() const {
    return absl::StrCat("http://127.0.0.1:", listener_.port(), "/");
  }
  int port() const { return listener_.port(); }
  int accepted() const { return accepted_.load(); }
  void Recover() { failing_.store(false); }

 private:
  std::atomic<int> accepted_{0};
  std::atomic<bool> failing_{true};
  LoopbackListener listener_;
};

TEST_F(PolitenessServiceTest, AnOpenBreakerRefusesWithoutConnectingThenHeals) {
  FlakyServer flaky;
  ASSERT_TRUE(flaky.Start().ok());
  NoRetries();
  Configure(absl::StrCat(R"({"politeness": {"rules": [{"name": "flaky",
      "hosts": ["http://127.0.0.1:)",
                         flaky.port(), R"("], "breaker":
      {"consecutive_failures": 3, "base_open_time": "0.3s"}}]}})"));
  fetchd_.Start();
  BatchRequest failing;
  failing.set_max_concurrency(1);
  for (int i = 0; i < 3; ++i) AddUrl(&failing, flaky.Url());
  for (const FetchResult& r : fetchd_.Run(failing)) {
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_PROTOCOL) << r.error_message();
  }
  EXPECT_EQ(flaky.accepted(), 3);

  BatchRequest refused;
  for (int i = 0; i < 5; ++i) AddUrl(&refused, flaky.Url());
  for (const FetchResult& r : fetchd_.Run(refused)) {
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_CIRCUIT_OPEN);
    EXPECT_THAT(r.error_message(), HasSubstr("\"flaky\""));
    EXPECT_EQ(r.attempts(), 0u);
  }
  EXPECT_EQ(flaky.accepted(), 3);  // Not one connection attempt.

  // A request that sets its queue timeout waits for the open time to end
  // and is the half-open probe; its success closes the breaker.
  flaky.Recover();
  BatchRequest patient;
  *AddUrl(&patient, flaky.Url())->mutable_timeouts()->mutable_queue() =
      ToProto(absl::Seconds(30));
  const FetchResult probe = fetchd_.Run(patient).at(0);
  EXPECT_EQ(probe.status(), 200u) << probe.error_message();
  EXPECT_GT(FromProto(probe.timings().queue_wait()), absl::ZeroDuration());
  EXPECT_EQ(flaky.accepted(), 4);
  BatchRequest healed;
  for (int i = 0; i < 3; ++i) AddUrl(&healed, flaky.Url());
  for (const FetchResult& r : fetchd_.Run(healed)) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
  }
  const core::politeness::RuleStats stats = RuleStatsOnce(
      "flaky", [](const auto& s) { return s.breaker_closed >= 1; });
  EXPECT_EQ(stats.breaker_opened, 1u);
  EXPECT_EQ(stats.breaker_half_opened, 1u);
  EXPECT_EQ(stats.breaker_closed, 1u);
}

TEST_F(PolitenessServiceTest, TheRetryBudgetBoundsRetriesToAFailingHost) {
  Configure(R"({"politeness": {
      "rules": [{"name": "down", "hosts": ["127.0.0.2"],
                 "retry_budget": {"ratio": 0, "min_retry_concurrency": 1}}],
      "pause": {"consecutive_throttles": 0}}})");
  fetch::v1::RetryPolicy& retry =
      *fetchd_.config().mutable_request_defaults()->mutable_retry();
  retry.set_max_attempts(3);
  *retry.mutable_base_backoff() = ToProto(absl::Milliseconds(1));
  *retry.mutable_max_backoff() = ToProto(absl::Milliseconds(5));
  fetchd_.Start();
  int denied = 0;
  int attempts = 0;
  for (const FetchResult& r : fetchd_.Run(Urls(a_, "/status?code=503", 20))) {
    EXPECT_EQ(r.status(), 503u);
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_NONE);
    attempts += static_cast<int>(r.attempts());
    if (r.politeness().retry_denied()) {
      ++denied;
      EXPECT_EQ(r.politeness().rule(), "down");
      EXPECT_LT(r.attempts(), 3u);
    } else {
      EXPECT_EQ(r.attempts(), 3u);
    }
  }
  // Without the budget: 20 x 3 = 60 attempts. With one retry outstanding at
  // a time, most requests that failed together are not retried.
  EXPECT_EQ(a_.RequestCount("/status"), attempts);
  EXPECT_LE(attempts, 30);
  EXPECT_GE(denied, 10);
  const core::politeness::RuleStats stats =
      RuleStatsOnce("down", [&](const auto& s) {
        return s.retries_denied >= static_cast<uint64_t>(denied);
      });
  EXPECT_EQ(stats.retries_denied, static_cast<uint64_t>(denied));
}

TEST_F(PolitenessServiceTest, MaxQueueRefusesOnlyTheOverflow) {
  Configure(R"({"politeness": {"rules": [{"name": "narrow",
      "hosts": ["127.0.0.2"], "max_concurrency": 1, "max_queue": 3}]}})");
  fetchd_.Start();
  BatchRequest batch = Urls(a_, "/delay?ms=100", 10);
  for (int i = 0; i < 5; ++i) AddUrl(&batch, b_.Url("/ok"));
  int refused = 0;
  for (const FetchResult& r : fetchd_.RunByIndex(batch)) {
    if (r.index() >= 10) {
      EXPECT_EQ(r.status(), 200u) << r.error_message();
      continue;
    }
    if (r.error() == fetch::v1::ERROR_KIND_QUEUE_TIMEOUT) {
      ++refused;
      EXPECT_THAT(r.error_message(), HasSubstr("queue full"));
      EXPECT_THAT(r.error_message(), HasSubstr("max_queue 3"));
      EXPECT_EQ(r.attempts(), 0u);
    } else {
      EXPECT_EQ(r.status(), 200u) << r.error_message();
    }
  }
  // Three wait (one may already have started when the rest came).
  EXPECT_GE(refused, 6);
  EXPECT_LE(refused, 7);
  EXPECT_EQ(a_.RequestCount("/delay"), 10 - refused);
}

TEST_F(PolitenessServiceTest, ABatchMayAskForStricterLimitsNeverLooser) {
  Configure(R"({"politeness": {"rules": [
      {"name": "api", "hosts": ["127.0.0.2"], "rate": 10}]}})");
  fetchd_.Start();
  // Looser than the rule: the rule's rate.
  BatchRequest looser = Urls(a_, "/ok", 8);
  looser.mutable_politeness()->set_rate(1000);
  looser.mutable_politeness()->set_max_concurrency(100);
  for (const FetchResult& r : fetchd_.Run(looser)) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
  }
  EXPECT_TRUE(WithinRate(a_.Arrivals("/ok"), 10, 1));
  EXPECT_GE(a_.Arrivals("/ok").back() - a_.Arrivals("/ok").front(),
            absl::Milliseconds(700) - kJitter);

  // Stricter than the default rule (no rate): the batch's own rate.
  BatchRequest slower = Urls(b_, "/ok", 5);
  slower.mutable_politeness()->set_rate(5);
  for (const FetchResult& r : fetchd_.Run(slower)) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
    EXPECT_EQ(r.politeness().rate_limited(), r.index() > 0);
  }
  const std::vector<absl::Time> arrivals = b_.Arrivals("/ok");
  ASSERT_EQ(arrivals.size(), 5u);
  for (size_t i = 1; i < arrivals.size(); ++i) {
    EXPECT_GE(arrivals[i] - arrivals[i - 1], absl::Milliseconds(200) - kJitter);
  }
  BatchRequest narrower = Urls(b_, "/delay?ms=50", 8);
  narrower.mutable_politeness()->set_max_concurrency(2);
  b_.tracker().Reset();
  for (const FetchResult& r : fetchd_.Run(narrower)) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
  }
  EXPECT_EQ(b_.tracker().max(), 2);

  BatchRequest bad = Urls(b_, "/ok", 1);
  bad.mutable_politeness()->set_rate(-1);
  absl::Status status;
  fetchd_.Run(bad, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("politeness.rate"));
}

TEST_F(PolitenessServiceTest, ASmallBatchIsInterleavedUnderARateLimit) {
  Configure(R"({"politeness": {"rules": [
      {"name": "api", "hosts": ["127.0.0.2"], "rate": 20}]}})");
  fetchd_.Start();
  std::thread big([&] {
    for (const FetchResult& r : fetchd_.Run(Urls(a_, "/ok", 40))) {
      EXPECT_EQ(r.status(), 200u) << r.error_message();
    }
  });
  // The small batch comes once the big one has begun.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (a_.RequestCount("/ok") < 3 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  for (const FetchResult& r : fetchd_.Run(Urls(a_, "/bytes?n=1", 4))) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
  }
  big.join();
  const std::vector<absl::Time> large = a_.Arrivals("/ok");
  const std::vector<absl::Time> small = a_.Arrivals("/bytes");
  ASSERT_EQ(large.size(), 40u);
  ASSERT_EQ(small.size(), 4u);
  // Turn by turn, the small batch was done while most of the big one still
  // waited for the rate (not after all forty).
  EXPECT_LT(small.back(), large[20]);
  std::vector<absl::Time> all = large;
  all.insert(all.end(), small.begin(), small.end());
  std::sort(all.begin(), all.end());
  EXPECT_TRUE(WithinRate(all, 20, 1));
}

}  // namespace
}  // namespace fetchd::testing

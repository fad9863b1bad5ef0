// The fault-injection suite: every way a target misbehaves, through the real
// service (in-process fetchd, real gRPC, real libcurl) against servers the
// test controls: a connection reset mid-body, a body shorter than its
// Content-Length, status lines that aren't HTTP, broken chunking, no reply
// (tests/testing/fault_server.h); stalls, drips, 503/429 storms with
// Retry-After, oversized headers, a gzip bomb (test_http_server.h); a TLS
// certificate that doesn't verify (nginx); a name that doesn't resolve.
// For each: exactly one result per URL, the right error kind, the attempts
// the retry policy asks for (counted by the server too), and memory that
// stays bounded. ASan runs this suite in `make test`: that is the leak
// check.
//
// The process moves into a network namespace of its own whose resolver is a
// dnsmasq the test starts (private_resolver.h): "nx.test" is NXDOMAIN and no
// outside DNS server is ever asked. Needs root, as `make test` has on CI.
#include <malloc.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/fault_server.h"
#include "tests/testing/nginx_server.h"
#include "tests/testing/private_resolver.h"
#include "tests/testing/test_http_server.h"
#include "tests/testing/test_pki.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::ErrorKind;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;

constexpr int kAttempts = 3;

// Bytes the process has allocated and not freed: the allocator's own count,
// so that neither ASan's quarantine and shadow memory nor fragmentation
// blur what fetchd holds on to.
#if defined(__SANITIZE_ADDRESS__)
// From the ASan runtime (sanitizer/allocator_interface.h, which g++ 12
// does not install).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

int64_t LiveHeapBytes() {
#if defined(__SANITIZE_ADDRESS__)
  return static_cast<int64_t>(__sanitizer_get_current_allocated_bytes());
#else
  return static_cast<int64_t>(mallinfo2().uordblks);
#endif
}

struct Fault {
  const char* name;
  // A path on the fault server, or a URL template filled by Url().
  std::string url;
  ErrorKind kind;
  // Attempts the default policy makes (PROTOCOL, CONNECT and DNS are
  // retried; timeouts, TLS and size limits are not).
  int attempts;
  // Expected in the error message.
  std::string message;
};

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    ASSERT_TRUE(faults_.Start().ok());
    char dir[] = "/tmp/fetchd_fault_pki.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    pki_dir_ = dir;
    absl::StatusOr<TestPki> pki = TestPki::Create(pki_dir_, {});
    ASSERT_TRUE(pki.ok()) << pki.status();
    NginxOptions options;
    options.cert_file = pki->server_cert;
    options.key_file = pki->server_key;
    nginx_ = std::make_unique<NginxServer>(options);
    ASSERT_TRUE(nginx_->Start().ok());

    fetch::v1::FetchRequest& defaults =
        *fetchd_.config().mutable_request_defaults();
    defaults.mutable_retry()->set_max_attempts(kAttempts);
    *defaults.mutable_retry()->mutable_base_backoff() = Millis(1);
    *defaults.mutable_retry()->mutable_max_backoff() = Millis(5);
    *defaults.mutable_timeouts()->mutable_total() = Millis(3000);
    *defaults.mutable_timeouts()->mutable_read_idle() = Millis(1000);
    defaults.set_max_body_bytes(1 << 20);
    // Retry-After in the storms says 1 s; the server caps the wait.
    *fetchd_.config().mutable_request_bounds()->mutable_max_retry_after() =
        Millis(20);
    fetchd_.config().mutable_request_bounds()->set_max_response_header_bytes(
        32 * 1024);
    // These tests are about how each fault is classified and retried: the
    // host's retry budget and its pause after 429/503 stay out of the way
    // (tests/e2e/politeness_e2e_test covers them).
    fetch::v1::Politeness& politeness = *fetchd_.config().mutable_politeness();
    fetch::v1::RetryBudget& budget =
        *politeness.mutable_default_()->mutable_retry_budget();
    budget.set_ratio(1);
    budget.set_min_retry_concurrency(1000);
    politeness.mutable_pause()->set_consecutive_throttles(0);
    *politeness.mutable_pause()->mutable_max_retry_after() = Millis(1);
  }

  void TearDown() override {
    fetchd_.Stop();
    if (nginx_) nginx_->Stop();
    std::error_code ignored;
    if (!pki_dir_.empty()) std::filesystem::remove_all(pki_dir_, ignored);
  }

  // Every fault, with what fetchd must make of it.
  std::vector<Fault> Faults() const {
    const std::string ok_port = std::to_string(http_.port());
    return {
        {"reset mid-body", faults_.Url("/reset-mid-body"),
         fetch::v1::ERROR_KIND_PROTOCOL, kAttempts, ""},
        {"truncated Content-Length", faults_.Url("/truncated"),
         fetch::v1::ERROR_KIND_PROTOCOL, kAttempts, ""},
        {"malformed status code", faults_.Url("/bad-status"),
         fetch::v1::ERROR_KIND_PROTOCOL, kAttempts, ""},
        {"not HTTP at all", faults_.Url("/not-http"),
         fetch::v1::ERROR_KIND_PROTOCOL, kAttempts, ""},
        {"broken chunked framing", faults_.Url("/bad-chunk"),
         fetch::v1::ERROR_KIND_PROTOCOL, kAttempts, ""},
        {"empty reply", faults_.Url("/no-reply"),
         fetch::v1::ERROR_KIND_PROTOCOL, kAttempts, ""},
        {"stall after headers", http_.Url("/stall?ms=10000"),
         fetch::v1::ERROR_KIND_READ_TIMEOUT, 1, ""},
        {"slow drip", http_.Url("/drip?bytes=1000&interval_ms=100"),
         fetch::v1::ERROR_KIND_TOTAL_TIMEOUT, 1, ""},
        {"oversized headers", http_.Url("/big-headers?kib=64"),
         fetch::v1::ERROR_KIND_PROTOCOL, 1, "response headers"},
        {"gzip bomb", http_.Url("/gzip-bomb?mib=16"),
         fetch::v1::ERROR_KIND_BODY_TOO_LARGE, 1, ""},
        {"certificate that doesn't verify", nginx_->Url("/ok"),
         fetch::v1::ERROR_KIND_TLS, 1, ""},
        {"name that doesn't resolve",
         absl::StrCat("http://nx.test:", ok_port, "/ok"),
         fetch::v1::ERROR_KIND_DNS, kAttempts, ""},
    };
  }

  TestHttpServer http_;
  FaultServer faults_;
  std::string pki_dir_;
  std::unique_ptr<NginxServer> nginx_;
  ServiceHarness fetchd_;
};

// Each fault alone: its kind, its attempts, and the server saw each attempt.
TEST_F(FaultInjectionTest, EachFaultGetsItsKindAndRetries) {
  fetchd_.Start();
  for (const Fault& fault : Faults()) {
    SCOPED_TRACE(fault.name);
    BatchRequest batch;
    AddUrl(&batch, fault.url);
    const std::vector<FetchResult> results = fetchd_.RunByIndex(batch);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].error(), fault.kind) << results[0].error_message();
    EXPECT_EQ(results[0].attempts(), static_cast<uint32_t>(fault.attempts));
    EXPECT_FALSE(results[0].error_message().empty());
    if (!fault.message.empty()) {
      EXPECT_THAT(results[0].error_message(), HasSubstr(fault.message));
    }
  }
  // The raw faults' server counted every attempt.
  for (const char* path : {"/reset-mid-body", "/truncated", "/bad-status",
                           "/not-http", "/bad-chunk", "/no-reply"}) {
    EXPECT_EQ(faults_.Requests(path), kAttempts) << path;
  }
}

// All faults in one batch with good requests between them: each URL gets
// exactly one result, its own; the good ones succeed.
TEST_F(FaultInjectionTest, MixedBatchKeepsEveryResultApart) {
  fetchd_.Start();
  const std::vector<Fault> faults = Faults();
  BatchRequest batch;
  batch.set_max_concurrency(8);
  for (const Fault& fault : faults) {
    AddUrl(&batch, fault.url);
    AddUrl(&batch, http_.Url("/bytes?n=1000"));
  }
  const std::vector<FetchResult> results = fetchd_.RunByIndex(batch);
  ASSERT_EQ(results.size(), 2 * faults.size());
  for (size_t i = 0; i < faults.size(); ++i) {
    SCOPED_TRACE(faults[i].name);
    const FetchResult& bad = results[2 * i];
    const FetchResult& good = results[2 * i + 1];
    EXPECT_EQ(bad.error(), faults[i].kind) << bad.error_message();
    EXPECT_EQ(bad.attempts(), static_cast<uint32_t>(faults[i].attempts));
    EXPECT_EQ(bad.id(), "r" + std::to_string(2 * i));
    EXPECT_EQ(good.error(), fetch::v1::ERROR_KIND_NONE) << good.error_message();
    EXPECT_EQ(good.status(), 200u);
    EXPECT_EQ(good.body().size(), 1000u);
  }
}

// 503 and 429 storms with Retry-After (1 s, capped by the server at 20 ms):
// every request retried as configured, the server saw every attempt, and
// the last status is kept.
TEST_F(FaultInjectionTest, StatusStormsAreRetriedAsConfigured) {
  fetchd_.Start();
  constexpr int kPerCode = 40;
  BatchRequest batch;
  batch.set_max_concurrency(32);
  for (int i = 0; i < kPerCode; ++i) {
    AddUrl(&batch, http_.Url("/status?code=503&retry_after=1"));
    AddUrl(&batch, http_.Url("/status?code=429&retry_after=1"));
  }
  // A recovering host: two 503s, then 200.
  AddUrl(&batch, http_.Url("/sequence?key=storm&codes=503,503,200"
                           "&retry_after=1"));
  const std::vector<FetchResult> results = fetchd_.RunByIndex(batch);
  for (int i = 0; i < 2 * kPerCode; ++i) {
    EXPECT_EQ(results[i].error(), fetch::v1::ERROR_KIND_NONE);
    EXPECT_EQ(results[i].status(), i % 2 == 0 ? 503u : 429u);
    EXPECT_EQ(results[i].attempts(), static_cast<uint32_t>(kAttempts));
  }
  const FetchResult& recovered = results.back();
  EXPECT_EQ(recovered.status(), 200u);
  EXPECT_EQ(recovered.attempts(), 3u);
  EXPECT_EQ(http_.RequestCount("/status"), 2 * kPerCode * kAttempts);
  EXPECT_EQ(http_.RequestCount("/sequence"), 3);
}

// The same faults over and over: what fetchd holds does not grow with them
// (unreachable leaks are LeakSanitizer's to find).
TEST_F(FaultInjectionTest, MemoryStaysBoundedUnderRepeatedFaults) {
  fetchd_.Start();
  BatchRequest batch;
  batch.set_max_concurrency(16);
  for (const Fault& fault : Faults()) {
    // The slow ones would only make this test long.
    if (fault.kind == fetch::v1::ERROR_KIND_READ_TIMEOUT ||
        fault.kind == fetch::v1::ERROR_KIND_TOTAL_TIMEOUT) {
      continue;
    }
    for (int i = 0; i < 4; ++i) AddUrl(&batch, fault.url);
  }
  fetchd_.RunByIndex(batch);  // warm-up: pools, caches, connections
  const int64_t before = LiveHeapBytes();
  ASSERT_GT(before, 0);
  for (int round = 0; round < 10; ++round) {
    for (const FetchResult& r : fetchd_.RunByIndex(batch)) {
      ASSERT_NE(r.error(), fetch::v1::ERROR_KIND_NONE);
    }
  }
  // 10 rounds of gzip bombs (each stopped at 1 MiB), 64 KiB header floods
  // and resets: holding on to one body or header buffer per request would
  // be tens of MB.
  EXPECT_LT(LiveHeapBytes() - before, int64_t{8} << 20);
}

}  // namespace
}  // namespace fetchd::testing

int main(int argc, char** argv) {
  return fetchd::testing::RunTestsInPrivateNetwork(
      argc, argv, {"/ok.test/127.0.0.1", "/nx.test/"}, "ok.test");
}

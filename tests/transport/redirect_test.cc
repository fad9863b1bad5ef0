// Redirects through the engine (worker pool, real libcurl, no gRPC),
// followed hop by hop by fetchd: the history, the method and body rules of
// browsers and aiohttp, credentials dropped across origins, and the hop cap.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_http_server.h"
#include "tests/transport/transport_harness.h"

namespace fetchd::testing {
namespace {

using fetch::v1::FetchResult;
using ::testing::HasSubstr;
using ::testing::Not;

class RedirectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    ASSERT_TRUE(other_.Start().ok());
  }

  // /redirect on the main server to `to`, with `code`.
  std::string Redirect(const std::string& to, int code = 302) const {
    return http_.Url("/redirect?code=" + std::to_string(code) +
                     "&to=" + UrlEncode(to));
  }

  TestHttpServer http_;
  TestHttpServer other_;
  TransportHarness fetchd_;
};

TEST_F(RedirectTest, ResultCarriesEveryHopAndTheFinalUrl) {
  fetchd_.Start();
  // A relative Location, then an absolute one to another host.
  const std::string second = Redirect(other_.Url("/ok"), 301);
  const std::string first = http_.Url(
      "/redirect?to=" + UrlEncode(second.substr(second.find("/redirect"))));
  const FetchResult r = fetchd_.RunOne(TransportHarness::Job(first));
  EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_NONE) << r.error_message();
  EXPECT_EQ(r.status(), 200u);
  EXPECT_EQ(r.body(), "ok");
  EXPECT_EQ(r.final_url(), other_.Url("/ok"));
  EXPECT_EQ(r.attempts(), 1u);  // hops are not attempts
  ASSERT_EQ(r.redirects(), 2u);
  ASSERT_EQ(r.redirect_history_size(), 2);
  EXPECT_EQ(r.redirect_history(0).url(), first);
  EXPECT_EQ(r.redirect_history(0).status(), 302u);
  EXPECT_EQ(r.redirect_history(1).url(), second);
  EXPECT_EQ(r.redirect_history(1).status(), 301u);
  EXPECT_EQ(r.remote_address(), "127.0.0.1:" + std::to_string(other_.port()));
  EXPECT_EQ(other_.RequestCount("/ok"), 1);
}

TEST_F(RedirectTest, MethodAndBodyFollowTheStatus) {
  fetchd_.Start();
  const struct {
    std::string method;
    int code;
    std::string want_method;
    bool keeps_body;
  } kCases[] = {
      {"POST", 301, "GET", false},   {"POST", 302, "GET", false},
      {"POST", 303, "GET", false},   {"POST", 307, "POST", true},
      {"POST", 308, "POST", true},   {"PUT", 302, "PUT", true},
      {"PUT", 303, "GET", false},    {"DELETE", 303, "GET", false},
      {"PATCH", 307, "PATCH", true},
  };
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (const auto& c : kCases) {
    auto job = TransportHarness::Job(Redirect(other_.Url("/echo"), c.code));
    job->method = c.method;
    job->body = "payload";
    job->header_lines.push_back("Content-Type: text/plain");
    jobs.push_back(std::move(job));
  }
  const auto results = fetchd_.Run(std::move(jobs));
  for (size_t i = 0; i < std::size(kCases); ++i) {
    const auto& c = kCases[i];
    const FetchResult& r = results[i];
    SCOPED_TRACE(c.method + " " + std::to_string(c.code));
    EXPECT_EQ(r.status(), 200u) << r.error_message();
    EXPECT_EQ(HeaderValue(r, "X-Echo-Method"), c.want_method);
    EXPECT_EQ(r.body(), c.keeps_body ? "payload" : "");
    EXPECT_EQ(r.redirects(), 1u);
  }
}

TEST_F(RedirectTest, CredentialsAreDroppedWhenTheOriginChanges) {
  fetchd_.Start();
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (const std::string& target :
       {other_.Url("/request-headers"), http_.Url("/request-headers")}) {
    auto job = TransportHarness::Job(Redirect(target));
    job->header_lines = {
        "Authorization: Bearer secret-token", "Cookie: session=s3cr3t",
        "Proxy-Authorization: Basic cHJveHk6cGFzcw==", "X-Trace: kept"};
    jobs.push_back(std::move(job));
  }
  const auto results = fetchd_.Run(std::move(jobs));
  // Another port is another origin.
  const std::string& cross = results[0].body();
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_THAT(cross, Not(HasSubstr("authorization")));
  EXPECT_THAT(cross, Not(HasSubstr("cookie")));
  EXPECT_THAT(cross, Not(HasSubstr("secret")));
  EXPECT_THAT(cross, HasSubstr("x-trace: kept"));
  // The same origin keeps them.
  const std::string& same = results[1].body();
  EXPECT_THAT(same, HasSubstr("authorization: Bearer secret-token"));
  EXPECT_THAT(same, HasSubstr("cookie: session=s3cr3t"));
  EXPECT_THAT(same, HasSubstr("proxy-authorization: Basic"));
}

TEST_F(RedirectTest, HopCapAndLoopsEndWithTooManyRedirects) {
  fetchd_.Start();
  auto capped =
      TransportHarness::Job(Redirect(Redirect(Redirect(other_.Url("/ok")))));
  capped->max_redirects = 2;
  const auto results =
      fetchd_.Run(Jobs(std::move(capped),
                       // A redirect to itself, under the default cap of 10.
                       TransportHarness::Job(http_.Url(
                           "/redirect?to=%2Fredirect%3Fto%3D%252Fok")),
                       TransportHarness::Job(http_.Url("/redirect?loop=1"))));
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_TOO_MANY_REDIRECTS);
  EXPECT_THAT(results[0].error_message(), HasSubstr("more than 2 redirects"));
  EXPECT_EQ(results[0].redirects(), 2u);
  EXPECT_EQ(results[0].status(), 302u);
  EXPECT_EQ(other_.TotalRequests(), 0);
  EXPECT_EQ(results[1].status(), 200u) << results[1].error_message();
  EXPECT_EQ(results[1].redirects(), 2u);
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_TOO_MANY_REDIRECTS);
  EXPECT_EQ(results[2].redirects(), 10u);
}

TEST_F(RedirectTest, NotFollowedWhenTurnedOff) {
  fetchd_.Start();
  auto job = TransportHarness::Job(Redirect(other_.Url("/ok"), 307));
  job->follow_redirects = false;
  const FetchResult result = fetchd_.RunOne(std::move(job));
  EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_NONE);
  EXPECT_EQ(result.status(), 307u);
  EXPECT_EQ(HeaderValue(result, "Location"), other_.Url("/ok"));
  EXPECT_EQ(result.redirects(), 0u);
  EXPECT_EQ(other_.TotalRequests(), 0);
}

}  // namespace
}  // namespace fetchd::testing

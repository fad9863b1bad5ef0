// HTTP request features through the real service (gRPC over loopback, curl
// workers, TestHttpServer): every method, query parameters, repeated
// headers, the body kinds, Basic/Bearer credentials (and their fate on
// redirects), fail_on_http_error with retry_on_status, and the timings and
// connection facts of a result.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchRequest;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class RequestFeaturesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    ASSERT_TRUE(other_.Start().ok());
  }

  // Runs one request; fails the test unless exactly one result comes back.
  FetchResult RunOne(const FetchRequest& request,
                     const FetchRequest& defaults = FetchRequest()) {
    BatchRequest batch;
    *batch.mutable_defaults() = defaults;
    *batch.add_requests() = request;
    std::vector<FetchResult> results = fetchd_.Run(batch);
    EXPECT_EQ(results.size(), 1u);
    return results.empty() ? FetchResult() : results[0];
  }

  FetchRequest Request(const std::string& url, const std::string& method) {
    FetchRequest r;
    r.set_url(url);
    r.set_method(method);
    return r;
  }

  TestHttpServer http_;
  TestHttpServer other_;  // 127.0.0.1 too, another port: another origin
  ServiceHarness fetchd_;
};

TEST_F(RequestFeaturesTest, EveryMethodWorksEndToEnd) {
  fetchd_.Start();
  for (const std::string method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    FetchRequest r = Request(http_.Url("/echo"), method);
    if (method != "GET") r.set_body("payload of " + method);
    const FetchResult result = RunOne(r);
    EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_NONE)
        << method << ": " << result.error_message();
    EXPECT_EQ(result.status(), 200u) << method;
    EXPECT_EQ(HeaderValue(result, "X-Echo-Method"), method);
    EXPECT_EQ(result.body(), method == "GET" ? "" : "payload of " + method);
    EXPECT_EQ(result.bytes_sent(), method == "GET" ? 0u : r.body().size())
        << method;
  }
  // OPTIONS gets its response body (the test server reads no OPTIONS
  // request body).
  const FetchResult options = RunOne(Request(http_.Url("/ok"), "OPTIONS"));
  EXPECT_EQ(options.status(), 200u) << options.error_message();
  EXPECT_EQ(options.body(), "ok");
  EXPECT_EQ(http_.RequestCount("/ok", "OPTIONS"), 1);
  // HEAD: the headers of the GET response, no body.
  const FetchResult head = RunOne(Request(http_.Url("/bytes?n=321"), "HEAD"));
  EXPECT_EQ(head.error(), fetch::v1::ERROR_KIND_NONE) << head.error_message();
  EXPECT_EQ(head.status(), 200u);
  EXPECT_EQ(HeaderValue(head, "Content-Length"), "321");
  EXPECT_EQ(head.body(), "");
  EXPECT_EQ(head.bytes_received(), 0u);
  EXPECT_EQ(http_.RequestCount("/bytes", "HEAD"), 1);
}

TEST_F(RequestFeaturesTest, QueryParamsArePercentEncodedAfterTheUrlsQuery) {
  fetchd_.Start();
  FetchRequest defaults;
  auto* key = defaults.add_query();
  key->set_name("api_key");
  key->set_value("k 1");
  FetchRequest r = Request(http_.Url("/echo?a=1"), "GET");
  auto* q = r.add_query();
  q->set_name("q");
  q->set_value("x&y=z/\xc3\xa9");
  auto* again = r.add_query();
  again->set_name("a");
  again->set_value("2");
  const FetchResult result = RunOne(r, defaults);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_EQ(HeaderValue(result, "X-Echo-Target"),
            "/echo?a=1&api_key=k%201&q=x%26y%3dz%2f%c3%a9&a=2");
  EXPECT_EQ(result.final_url(),
            http_.Url("/echo?a=1&api_key=k%201&q=x%26y%3dz%2f%c3%a9&a=2"));
}

TEST_F(RequestFeaturesTest, RepeatedHeadersAreSentInOrder) {
  fetchd_.Start();
  FetchRequest r = Request(http_.Url("/request-headers"), "GET");
  AddHeader(&r, "X-Multi", "first");
  AddHeader(&r, "X-Other", "o");
  AddHeader(&r, "X-Multi", "second");
  const FetchResult result = RunOne(r);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_THAT(result.body(), HasSubstr("x-multi: first\nx-multi: second\n"));
  EXPECT_THAT(result.body(), HasSubstr("x-other: o\n"));
}

TEST_F(RequestFeaturesTest, JsonAndFormBodiesCarryTheirContentType) {
  fetchd_.Start();
  FetchRequest json = Request(http_.Url("/echo"), "POST");
  json.set_json(R"({"name": "fetchd", "n": [1, 2]})");
  FetchResult result = RunOne(json);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_EQ(result.body(), R"({"name": "fetchd", "n": [1, 2]})");
  EXPECT_EQ(HeaderValue(result, "X-Echo-Content-Type"), "application/json");

  AddHeader(&json, "Content-Type", "application/merge-patch+json");
  json.set_method("PATCH");
  result = RunOne(json);
  EXPECT_EQ(HeaderValue(result, "X-Echo-Content-Type"),
            "application/merge-patch+json");

  FetchRequest form = Request(http_.Url("/echo"), "PUT");
  auto* a = form.mutable_form()->add_fields();
  a->set_name("city");
  a->set_value("São Paulo");
  auto* b = form.mutable_form()->add_fields();
  b->set_name("q&a");
  b->set_value("1+1=2");
  result = RunOne(form);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_EQ(result.body(), "city=S%C3%A3o%20Paulo&q%26a=1%2B1%3D2");
  EXPECT_EQ(HeaderValue(result, "X-Echo-Content-Type"),
            "application/x-www-form-urlencoded");
}

TEST_F(RequestFeaturesTest, MultipartSendsFieldsAndFiles) {
  fetchd_.Start();
  FetchRequest r = Request(http_.Url("/echo"), "POST");
  auto* field = r.mutable_multipart()->add_parts();
  field->set_name("title");
  field->set_data("hello");
  auto* file = r.mutable_multipart()->add_parts();
  file->set_name("upload");
  file->set_filename("data.bin");
  file->set_content_type("application/x-test");
  file->set_data(std::string("\x00\x01\xff", 3));
  const FetchResult result = RunOne(r);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_THAT(HeaderValue(result, "X-Echo-Content-Type"),
              StartsWith("multipart/form-data; boundary="));
  EXPECT_EQ(result.body(),
            "name=\"title\" filename=\"\" type=\"\" data=\"hello\"\n"
            "name=\"upload\" filename=\"data.bin\" type=\"application/x-test\" "
            "data=\"\\x00\\x01\\xff\"\n");
  EXPECT_GT(result.bytes_sent(), 8u);
}

TEST_F(RequestFeaturesTest, MultipartIsResentOn307AndDroppedOn303) {
  fetchd_.Start();
  const std::string echo = http_.Url("/echo");
  FetchRequest r =
      Request(http_.Url("/redirect?code=307&to=" + UrlEncode(echo)), "POST");
  auto* part = r.mutable_multipart()->add_parts();
  part->set_name("f");
  part->set_data("v");
  FetchResult result = RunOne(r);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_EQ(result.redirects(), 1u);
  EXPECT_EQ(HeaderValue(result, "X-Echo-Method"), "POST");
  EXPECT_EQ(result.body(), "name=\"f\" filename=\"\" type=\"\" data=\"v\"\n");

  r.set_url(http_.Url("/redirect?code=303&to=" + UrlEncode(echo)));
  result = RunOne(r);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_EQ(HeaderValue(result, "X-Echo-Method"), "GET");
  EXPECT_EQ(HeaderValue(result, "X-Echo-Content-Type"), "");
  EXPECT_EQ(result.body(), "");
}

TEST_F(RequestFeaturesTest, InvalidBodiesAreResultsNamingTheFields) {
  fetchd_.Start();
  FetchRequest both = Request(http_.Url("/echo"), "POST");
  both.set_body("raw");
  both.set_json("{}");
  FetchResult result = RunOne(both);
  EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(result.error_message(),
              StartsWith("json: set together with body"));

  FetchRequest head = Request(http_.Url("/echo"), "HEAD");
  head.mutable_form()->add_fields()->set_name("x");
  result = RunOne(head);
  EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_EQ(result.error_message(), "form: a HEAD request has no body");
  EXPECT_EQ(http_.RequestCount("/echo"), 0);
}

TEST_F(RequestFeaturesTest, MultipartIsCappedByTheRequestBodyLimit) {
  fetchd_.config().mutable_request_bounds()->set_max_request_body_bytes(1000);
  fetchd_.Start();
  FetchRequest r = Request(http_.Url("/echo"), "POST");
  auto* part = r.mutable_multipart()->add_parts();
  part->set_name("f");
  part->set_data(std::string(1000, 'x'));  // with the name: 1001 bytes
  FetchResult result = RunOne(r);
  EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(result.error_message(),
              StartsWith("multipart: 1001 bytes exceed the limit of 1000"));
  part->set_data(std::string(999, 'x'));
  result = RunOne(r);
  EXPECT_EQ(result.status(), 200u) << result.error_message();
}

TEST_F(RequestFeaturesTest, CredentialsAreSentAndDroppedAcrossOrigins) {
  fetchd_.Start();
  FetchRequest basic = Request(http_.Url("/request-headers"), "GET");
  basic.mutable_basic_auth()->set_username("aladdin");
  basic.mutable_basic_auth()->set_password("open sesame");
  FetchResult result = RunOne(basic);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_THAT(result.body(),
              HasSubstr("authorization: Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ==\n"));

  // As a batch default, on a same-origin redirect: kept.
  FetchRequest defaults;
  defaults.set_bearer_token("t0k3n.value");
  FetchRequest same = Request(
      http_.Url("/redirect?to=" + UrlEncode(http_.Url("/request-headers"))),
      "GET");
  result = RunOne(same, defaults);
  ASSERT_EQ(result.status(), 200u) << result.error_message();
  EXPECT_EQ(result.redirects(), 1u);
  EXPECT_THAT(result.body(), HasSubstr("authorization: Bearer t0k3n.value\n"));

  // To another origin (another port): dropped, for both kinds.
  for (FetchRequest request : {basic, same}) {
    request.set_url(
        http_.Url("/redirect?to=" + UrlEncode(other_.Url("/request-headers"))));
    result = RunOne(request, defaults);
    ASSERT_EQ(result.status(), 200u) << result.error_message();
    EXPECT_EQ(result.redirects(), 1u);
    EXPECT_THAT(result.body(), Not(HasSubstr("authorization")));
  }
}

TEST_F(RequestFeaturesTest, FailOnHttpErrorAsBatchDefaultKeepsTheResponse) {
  fetchd_.Start();
  BatchRequest batch;
  batch.mutable_defaults()->set_fail_on_http_error(true);
  AddUrl(&batch, http_.Url("/status?code=404"));
  AddUrl(&batch, http_.Url("/ok"));
  AddUrl(&batch, http_.Url("/status?code=500"))->set_fail_on_http_error(false);
  const std::vector<FetchResult> results = fetchd_.RunByIndex(batch);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_HTTP_STATUS);
  EXPECT_EQ(results[0].error_message(), "HTTP status 404");
  EXPECT_EQ(results[0].status(), 404u);
  EXPECT_EQ(results[0].body(), "status 404");
  EXPECT_EQ(HeaderValue(results[0], "Content-Length"), "10");
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_NONE);
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_NONE);  // overridden
  EXPECT_EQ(results[2].status(), 500u);
}

TEST_F(RequestFeaturesTest, RetryOnStatusDecidesWhichErrorStatusesRetry) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest& d = *batch.mutable_defaults();
  d.set_fail_on_http_error(true);
  d.mutable_retry()->set_max_attempts(3);
  *d.mutable_retry()->mutable_base_backoff() = Millis(1);
  *d.mutable_retry()->mutable_max_backoff() = Millis(5);
  d.mutable_retry()->add_retry_on_status(500);
  // 500 is retried (listed), then succeeds.
  AddUrl(&batch, http_.Url("/sequence?key=a&codes=500,500,200"));
  // 503 is retried by default but not listed here: one attempt.
  AddUrl(&batch, http_.Url("/sequence?key=b&codes=503,200"));
  // 500 every time: retried to the limit, then the error with its body.
  AddUrl(&batch, http_.Url("/sequence?key=c&codes=500"));
  const std::vector<FetchResult> results = fetchd_.RunByIndex(batch);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_NONE);
  EXPECT_EQ(results[0].status(), 200u);
  EXPECT_EQ(results[0].attempts(), 3u);
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_HTTP_STATUS);
  EXPECT_EQ(results[1].status(), 503u);
  EXPECT_EQ(results[1].attempts(), 1u);
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_HTTP_STATUS);
  EXPECT_EQ(results[2].status(), 500u);
  EXPECT_EQ(results[2].attempts(), 3u);
  EXPECT_EQ(results[2].body(), "status 500");
}

TEST_F(RequestFeaturesTest, TimingsAndConnectionFactsAreFilled) {
  fetchd_.Start();
  BatchRequest batch;
  batch.set_max_concurrency(1);
  batch.set_ordered(true);
  AddUrl(&batch, http_.Url("/ok"));
  AddUrl(&batch, http_.Url("/ok"));
  AddUrl(&batch, http_.Url("/redirect?to=" + UrlEncode(http_.Url("/ok"))));
  const std::vector<FetchResult> results = fetchd_.RunByIndex(batch);
  ASSERT_EQ(results.size(), 3u);
  const std::string address = absl::StrCat("127.0.0.1:", http_.port());
  for (const FetchResult& r : results) {
    ASSERT_EQ(r.status(), 200u) << r.error_message();
    EXPECT_EQ(r.remote_address(), address);
    EXPECT_TRUE(r.timings().has_queue_wait());
    const double total = Seconds(r.timings().total());
    EXPECT_GT(total, 0.0);
    EXPECT_GT(Seconds(r.timings().first_byte()), 0.0);
    EXPECT_LE(Seconds(r.timings().first_byte()), total);
    EXPECT_LE(Seconds(r.timings().dns()) + Seconds(r.timings().connect()),
              total);
    EXPECT_EQ(Seconds(r.timings().tls()), 0.0);  // plain http
  }
  // A fresh connection, then the kept-alive one.
  EXPECT_FALSE(results[0].connection_reused());
  EXPECT_GT(Seconds(results[0].timings().connect()), 0.0);
  EXPECT_TRUE(results[1].connection_reused());
  EXPECT_EQ(Seconds(results[1].timings().connect()), 0.0);
  EXPECT_EQ(Seconds(results[1].timings().redirect()), 0.0);
  // The redirect hop's time is reported apart.
  EXPECT_EQ(results[2].redirects(), 1u);
  EXPECT_GT(Seconds(results[2].timings().redirect()), 0.0);
}

}  // namespace
}  // namespace fetchd::testing

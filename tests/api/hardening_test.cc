// Hostile responses and requests through the real service: what a caller
// or an upstream can send must stay within the server's caps.
#include <string>

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

class HardeningTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(http_.Start().ok()); }

  TestHttpServer http_;
  ServiceHarness fetchd_;
};

// 64 MiB of zeros, about 64 kB on the wire: the body cap counts decoded
// bytes, so the transfer stops at the cap and never holds the rest.
TEST_F(HardeningTest, GzipBombStopsAtTheDecodedBodyCap) {
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* r = AddUrl(&batch, http_.Url("/gzip-bomb?mib=64"));
  r->set_max_body_bytes(1 << 20);
  FetchRequest* small = AddUrl(&batch, http_.Url("/gzip-bomb?mib=1"));
  small->set_max_body_bytes(2 << 20);
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE)
      << results[0].error_message();
  EXPECT_LE(results[0].body().size(), size_t{1} << 20);
  EXPECT_EQ(results[0].attempts(), 1u);
  // Under the cap, the body is decoded in full.
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_NONE)
      << results[1].error_message();
  EXPECT_EQ(results[1].body(), std::string(size_t{1} << 20, '\0'));
}

TEST_F(HardeningTest, OversizedResponseHeadersEndTheRequest) {
  fetchd_.config().mutable_request_bounds()->set_max_response_header_bytes(
      16 << 10);
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/big-headers?kib=64"));
  AddUrl(&batch, http_.Url("/big-headers?kib=8"));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_PROTOCOL);
  EXPECT_THAT(results[0].error_message(),
              HasSubstr("response headers exceed 16384 bytes"));
  EXPECT_EQ(results[1].status(), 200u) << results[1].error_message();
}

// Header injection, smuggling headers and credentials in the URL are the
// item's INVALID_REQUEST result; nothing of them reaches the server.
TEST_F(HardeningTest, InjectionAttemptsAreRejectedPerItem) {
  fetchd_.Start();
  BatchRequest batch;
  const auto add = [&](const std::string& name, const std::string& value) {
    FetchRequest* r = AddUrl(&batch, http_.Url("/request-headers"));
    fetch::v1::Header* h = r->add_headers();
    h->set_name(name);
    h->set_value(value);
  };
  add("X-A", "1\r\nX-Injected: yes");
  add("X-A\r\nX-Injected", "yes");
  add("Transfer-Encoding", "chunked");
  add("Content-Length", "0");
  add("Host", "internal.example");
  AddUrl(&batch, "http://user:pass@127.0.0.1:" + std::to_string(http_.port()) +
                     "/request-headers");
  add("X-Fine", "ok");
  const auto results = fetchd_.RunByIndex(batch);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(results[i].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST)
        << i << ": " << results[i].error_message();
  }
  EXPECT_EQ(results[6].status(), 200u);
  EXPECT_THAT(results[6].body(), HasSubstr("x-fine: ok"));
  EXPECT_EQ(http_.TotalRequests(), 1);
}

}  // namespace
}  // namespace fetchd::testing

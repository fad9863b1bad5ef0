// The API's side of connection options through the real service: the
// cookie jar of a batch (one per batch, off on request, the caller's
// initial cookies checked), and what a caller may ask for (insecure TLS,
// proxy URLs, resolve pins under the policy). The options' effect on the
// connection (TLS, HTTP/2, proxies, pins, address families) is tested on
// the engine without gRPC: tests/transport/connection_options_test.cc.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/nginx_server.h"
#include "tests/testing/test_http_server.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/tls_nginx.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchRequest;
using fetch::v1::FetchResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class ConnectionOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(http_.Start().ok()); }

  // A TLS nginx with a fresh test CA; with `require_client_cert`, only for
  // clients with a certificate from that CA.
  void StartTlsNginx(bool require_client_cert) {
    ASSERT_TRUE(tls_.Start(require_client_cert).ok());
    pki_ = tls_.pki();
    nginx_ = &tls_.nginx();
  }

  TestHttpServer http_;
  ServiceHarness fetchd_;
  TlsNginx tls_;
  TestPki pki_;
  NginxServer* nginx_ = nullptr;
};

// ---- Cookies: one jar per batch, like an aiohttp ClientSession.

TEST_F(ConnectionOptionsTest, ResponseCookiesGoToLaterRequestsOfTheBatch) {
  fetchd_.Start();
  BatchRequest batch;
  batch.set_max_concurrency(1);  // in order: the second starts after
  AddUrl(&batch, http_.Url("/set-cookie?name=session&value=abc"));
  AddUrl(&batch, http_.Url("/request-headers"));
  fetch::v1::Cookie* given = batch.add_cookies();
  given->set_name("lang");
  given->set_value("en");
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_THAT(results[0].set_cookies(), ElementsAre("session=abc; Path=/"));
  EXPECT_THAT(results[1].body(), HasSubstr("session=abc"));
  EXPECT_THAT(results[1].body(), HasSubstr("lang=en"));

  // Another batch has a jar of its own.
  BatchRequest other;
  AddUrl(&other, http_.Url("/request-headers"));
  const FetchResult fresh = fetchd_.Run(other).at(0);
  EXPECT_THAT(fresh.body(), Not(HasSubstr("session=abc")));
  EXPECT_THAT(fresh.body(), Not(HasSubstr("cookie:")));
}

TEST_F(ConnectionOptionsTest, NoJarWhenTurnedOff) {
  fetchd_.Start();
  BatchRequest batch;
  batch.set_max_concurrency(1);
  batch.set_cookie_jar(false);
  AddUrl(&batch, http_.Url("/set-cookie?name=session&value=abc"));
  AddUrl(&batch, http_.Url("/request-headers"));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_THAT(results[0].set_cookies(), ElementsAre("session=abc; Path=/"));
  EXPECT_THAT(results[1].body(), Not(HasSubstr("session")));
}

TEST_F(ConnectionOptionsTest, BadInitialCookieFailsTheBatch) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  fetch::v1::Cookie* bad = batch.add_cookies();
  bad->set_name("a");
  bad->set_value("b;c");
  absl::Status status;
  fetchd_.Run(batch, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("cookies[0].value"));
}

// ---- What a caller may ask of a connection. (The connection options
// themselves are tested on the engine: tests/transport/
// connection_options_test.cc.)

TEST_F(ConnectionOptionsTest, VerificationIsOffOnlyWhenAllowed) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, "https://127.0.0.1:1/insecure")
      ->mutable_tls()
      ->set_verify(false);
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[0].error_message(),
              HasSubstr("request_bounds.allow_insecure_tls"));
}

TEST_F(ConnectionOptionsTest, InsecureWhenTheServerAllowsIt) {
  ASSERT_NO_FATAL_FAILURE(StartTlsNginx(/*require_client_cert=*/false));
  NginxServer& nginx = *nginx_;
  fetchd_.config().mutable_request_bounds()->set_allow_insecure_tls(true);
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, nginx.Url("/insecure"))->mutable_tls()->set_verify(false);
  EXPECT_EQ(fetchd_.Run(batch).at(0).status(), 200u);
}

TEST_F(ConnectionOptionsTest, ProxyUrlMustNameAProxyScheme) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"))
      ->mutable_proxy()
      ->set_url("ftp://127.0.0.1:1");
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[0].error_message(), HasSubstr("proxy.url"));
}

// A pin's address passes the policy before the request is accepted.
TEST_F(ConnectionOptionsTest, ResolvePinToAForbiddenAddressIsDenied) {
  fetchd_.Start();
  const uint32_t port = static_cast<uint32_t>(http_.port());
  BatchRequest batch;
  FetchRequest* metadata =
      AddUrl(&batch, "http://pinned.test:" + std::to_string(port) + "/ok");
  fetch::v1::ResolveOverride* pin = metadata->add_resolve();
  pin->set_host("pinned.test");
  pin->set_address("169.254.169.254");
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_DENIED);
  EXPECT_THAT(results[0].error_message(), HasSubstr("link-local"));
}

// A pin's resolve entry reaches the engine, which connects to its address.
TEST_F(ConnectionOptionsTest, ResolvePinConnectsToItsAddress) {
  fetchd_.Start();
  const uint32_t port = static_cast<uint32_t>(http_.port());
  BatchRequest batch;
  FetchRequest* pinned =
      AddUrl(&batch, "http://pinned.test:" + std::to_string(port) + "/ok");
  fetch::v1::ResolveOverride* pin = pinned->add_resolve();
  pin->set_host("pinned.test");
  pin->set_port(port);
  pin->set_address("127.0.0.1");
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_EQ(results[0].remote_address(), "127.0.0.1:" + std::to_string(port));
}

}  // namespace
}  // namespace fetchd::testing

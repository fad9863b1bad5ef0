// Cookies, TLS, HTTP/2, proxies, resolve pins and connection settings
// through the real service, against the project's test server and a
// private nginx (TLS + HTTP/2, client certificates, forward proxy).
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/nginx_server.h"
#include "tests/testing/socks5_server.h"
#include "tests/testing/test_http_server.h"
#include "tests/testing/test_pki.h"

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

  // A CA and a server certificate for 127.0.0.1, made for this test.
  void MakePki() {
    std::string dir =
        (std::filesystem::temp_directory_path() / "fetchd_conn_pki.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    pki_dir_ = dir;
    absl::StatusOr<TestPki> pki = TestPki::Create(dir, {"client"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
  }
  // An nginx serving TLS (and HTTP/2) with a certificate of a fresh test
  // CA; with `require_client_cert`, only to clients with one from that CA.
  void StartTlsNginx(bool require_client_cert) {
    ASSERT_NO_FATAL_FAILURE(MakePki());
    NginxOptions options;
    options.cert_file = pki_.server_cert;
    options.key_file = pki_.server_key;
    if (require_client_cert) options.client_ca_file = pki_.ca_cert;
    nginx_ = std::make_unique<NginxServer>(options);
    ASSERT_TRUE(nginx_->Start().ok());
  }

  void TearDown() override {
    nginx_.reset();  // before its certificates go
    if (!pki_dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(pki_dir_, ignored);
    }
  }

  TestHttpServer http_;
  ServiceHarness fetchd_;
  TestPki pki_;
  std::string pki_dir_;
  std::unique_ptr<NginxServer> nginx_;
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

TEST_F(ConnectionOptionsTest, CookiesSetOnARedirectHopAreSentOnTheNext) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/set-cookie?name=hop&value=1&to=" +
                           UrlEncode("/request-headers")));
  const FetchResult r = fetchd_.Run(batch).at(0);
  EXPECT_EQ(r.status(), 200u) << r.error_message();
  EXPECT_THAT(r.body(), HasSubstr("cookie: hop=1"));
  EXPECT_THAT(r.set_cookies(), ElementsAre("hop=1; Path=/"));
  EXPECT_EQ(r.redirects(), 1u);
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

// ---- TLS and HTTP/2 against nginx.

TEST_F(ConnectionOptionsTest, CustomCaAndHttp2MultiplexedOverOneConnection) {
  ASSERT_NO_FATAL_FAILURE(StartTlsNginx(/*require_client_cert=*/false));
  NginxServer& nginx = *nginx_;
  fetchd_.Start();

  BatchRequest batch;
  batch.mutable_defaults()->mutable_tls()->set_ca_pem(
      ReadTextFile(pki_.ca_cert));
  constexpr int kRequests = 20;
  for (int i = 0; i < kRequests; ++i) {
    AddUrl(&batch, nginx.Url("/r" + std::to_string(i)));
  }
  for (const FetchResult& r : fetchd_.Run(batch)) {
    EXPECT_EQ(r.status(), 200u) << r.error_message();
    EXPECT_EQ(r.http_version(), "2");
    EXPECT_EQ(r.body(), "ok");
  }
  std::set<std::string> connections;
  for (const std::string& line : nginx.AccessLog()) {
    const std::vector<std::string> fields = absl::StrSplit(line, ' ');
    ASSERT_GE(fields.size(), 2u) << line;
    EXPECT_EQ(fields[1], "HTTP/2.0") << line;
    connections.insert(fields[0]);
  }
  EXPECT_EQ(nginx.AccessLog().size(), static_cast<size_t>(kRequests));
  EXPECT_EQ(connections.size(), 1u);

  // HTTP/1.1 when asked for.
  BatchRequest old;
  FetchRequest* r = AddUrl(&old, nginx.Url("/h1"));
  r->mutable_tls()->set_ca_pem(ReadTextFile(pki_.ca_cert));
  r->set_http_version(fetch::v1::HTTP_VERSION_1_1);
  EXPECT_EQ(fetchd_.Run(old).at(0).http_version(), "1.1");
}

TEST_F(ConnectionOptionsTest, VerificationIsOnAndOffOnlyWhenAllowed) {
  ASSERT_NO_FATAL_FAILURE(StartTlsNginx(/*require_client_cert=*/false));
  NginxServer& nginx = *nginx_;
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, nginx.Url("/system-store"));
  AddUrl(&batch, nginx.Url("/insecure"))->mutable_tls()->set_verify(false);
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_TLS)
      << results[0].error_message();
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[1].error_message(),
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

TEST_F(ConnectionOptionsTest, ClientCertificateForMutualTlsToTheTarget) {
  ASSERT_NO_FATAL_FAILURE(StartTlsNginx(/*require_client_cert=*/true));
  NginxServer& nginx = *nginx_;
  fetchd_.Start();
  BatchRequest batch;
  batch.mutable_defaults()->mutable_tls()->set_ca_pem(
      ReadTextFile(pki_.ca_cert));
  FetchRequest* with = AddUrl(&batch, nginx.Url("/with-cert"));
  with->mutable_tls()->set_client_cert_pem(
      ReadTextFile(pki_.ClientCert("client")));
  with->mutable_tls()->set_client_key_pem(
      ReadTextFile(pki_.ClientKey("client")));
  AddUrl(&batch, nginx.Url("/without-cert"));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  // nginx refuses a request without a certificate with 400.
  EXPECT_EQ(results[1].status(), 400u) << results[1].error_message();
}

// ---- Proxies.

TEST_F(ConnectionOptionsTest, RequestProxyWithCredentials) {
  NginxOptions options;
  options.proxy_to_port = http_.port();
  options.proxy_credentials = "user:s3cret";
  NginxServer proxy(options);
  ASSERT_TRUE(proxy.Start().ok());
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* good = AddUrl(&batch, http_.Url("/request-headers"));
  good->mutable_proxy()->set_url(proxy.Url(""));
  good->mutable_proxy()->set_username("user");
  good->mutable_proxy()->set_password("s3cret");
  FetchRequest* anonymous = AddUrl(&batch, http_.Url("/request-headers"));
  anonymous->mutable_proxy()->set_url(proxy.Url(""));
  FetchRequest* bad = AddUrl(&batch, http_.Url("/ok"));
  bad->mutable_proxy()->set_url("ftp://127.0.0.1:1");
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_THAT(results[0].body(), HasSubstr("x-via: nginx-proxy"));
  EXPECT_EQ(results[1].status(), 407u);
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT(results[2].error_message(), HasSubstr("proxy.url"));
}

TEST_F(ConnectionOptionsTest, Socks5ProxyWithCredentials) {
  Socks5Server socks("user", "s3cret");
  ASSERT_TRUE(socks.Start().ok());
  fetchd_.Start();
  const std::string proxy =
      "socks5://127.0.0.1:" + std::to_string(socks.port());
  BatchRequest batch;
  batch.set_max_concurrency(1);
  FetchRequest* good = AddUrl(&batch, http_.Url("/ok"));
  good->mutable_proxy()->set_url(proxy);
  good->mutable_proxy()->set_username("user");
  good->mutable_proxy()->set_password("s3cret");
  FetchRequest* hostname = AddUrl(&batch, http_.Url("/bytes?n=3"));
  hostname->mutable_proxy()->CopyFrom(good->proxy());
  // socks5h: the proxy gets the host as given.
  hostname->mutable_proxy()->set_url("socks5h://127.0.0.1:" +
                                     std::to_string(socks.port()));
  FetchRequest* wrong = AddUrl(&batch, http_.Url("/ok"));
  wrong->mutable_proxy()->CopyFrom(good->proxy());
  wrong->mutable_proxy()->set_password("wrong");
  wrong->mutable_retry()->set_max_attempts(1);
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_EQ(results[0].body(), "ok");
  EXPECT_EQ(results[1].status(), 200u) << results[1].error_message();
  EXPECT_EQ(results[2].status(), 0u);
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_CONNECT)
      << results[2].error_message();
  EXPECT_EQ(socks.auth_failures(), 1);
  const std::string target = "127.0.0.1:" + std::to_string(http_.port());
  EXPECT_THAT(socks.targets(), ElementsAre(target, target));
}

TEST_F(ConnectionOptionsTest, ServerProxyAndTheEnvironment) {
  NginxOptions options;
  options.proxy_to_port = http_.port();
  NginxServer proxy(options);
  ASSERT_TRUE(proxy.Start().ok());
  fetchd_.config().mutable_transport()->mutable_proxy()->set_url(proxy.Url(""));
  fetchd_.Start();
  // The environment names a proxy that doesn't exist: it must be ignored.
  // (Set after the gRPC client connected: gRPC reads it too.)
  const std::string dead =
      "http://127.0.0.1:" + std::to_string(UnusedLoopbackPort());
  setenv("http_proxy", dead.c_str(), 1);
  setenv("HTTP_PROXY", dead.c_str(), 1);
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/request-headers"));
  const FetchResult r = fetchd_.Run(batch).at(0);
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  EXPECT_EQ(r.status(), 200u) << r.error_message();
  EXPECT_THAT(r.body(), HasSubstr("x-via: nginx-proxy"));
}

TEST_F(ConnectionOptionsTest, EnvironmentProxyIgnoredUnlessOptedIn) {
  fetchd_.Start();
  const std::string dead =
      "http://127.0.0.1:" + std::to_string(UnusedLoopbackPort());
  setenv("http_proxy", dead.c_str(), 1);
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  const FetchResult r = fetchd_.Run(batch).at(0);
  unsetenv("http_proxy");
  EXPECT_EQ(r.status(), 200u) << r.error_message();
}

TEST_F(ConnectionOptionsTest, EnvironmentProxyWhenOptedIn) {
  NginxOptions options;
  options.proxy_to_port = http_.port();
  NginxServer proxy(options);
  ASSERT_TRUE(proxy.Start().ok());
  fetchd_.config().mutable_transport()->set_use_env_proxy(true);
  fetchd_.Start();
  setenv("http_proxy", proxy.Url("").c_str(), 1);
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/request-headers"));
  const FetchResult r = fetchd_.Run(batch).at(0);
  unsetenv("http_proxy");
  EXPECT_THAT(r.body(), HasSubstr("x-via: nginx-proxy"));
}

// ---- Resolve pins and address families.

TEST_F(ConnectionOptionsTest, ResolvePinConnectsToItsAddressUnderThePolicy) {
  fetchd_.Start();
  const uint32_t port = static_cast<uint32_t>(http_.port());
  BatchRequest batch;
  FetchRequest* pinned =
      AddUrl(&batch, "http://pinned.test:" + std::to_string(port) + "/ok");
  fetch::v1::ResolveOverride* pin = pinned->add_resolve();
  pin->set_host("pinned.test");
  pin->set_port(port);
  pin->set_address("127.0.0.1");
  FetchRequest* metadata =
      AddUrl(&batch, "http://pinned.test:" + std::to_string(port) + "/ok");
  pin = metadata->add_resolve();
  pin->set_host("pinned.test");
  pin->set_address("169.254.169.254");
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_EQ(results[0].remote_address(), "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED);
  EXPECT_THAT(results[1].error_message(), HasSubstr("link-local"));
}

class IpVersionTest : public ConnectionOptionsTest,
                      public ::testing::WithParamInterface<std::string> {};

// The test server listens on 127.0.0.1 only; "localhost" has both
// families, so ipv6 can't reach it and ipv4 does.
TEST_P(IpVersionTest, ConnectsOnlyOverTheConfiguredFamily) {
  fetchd_.config().mutable_transport()->set_ip_version(GetParam());
  fetchd_.config().mutable_policy()->add_allow_hosts("localhost");
  fetchd_.Start();
  BatchRequest batch;
  FetchRequest* r = AddUrl(
      &batch, "http://localhost:" + std::to_string(http_.port()) + "/ok");
  r->mutable_retry()->set_max_attempts(1);
  const FetchResult result = fetchd_.Run(batch).at(0);
  if (GetParam() == "ipv4") {
    EXPECT_EQ(result.status(), 200u) << result.error_message();
    EXPECT_EQ(result.remote_address(),
              "127.0.0.1:" + std::to_string(http_.port()));
  } else {
    EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_CONNECT)
        << result.error_message();
  }
}

INSTANTIATE_TEST_SUITE_P(Families, IpVersionTest,
                         ::testing::Values("ipv4", "ipv6"));

}  // namespace
}  // namespace fetchd::testing

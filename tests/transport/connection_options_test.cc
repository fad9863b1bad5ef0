// TLS, HTTP/2, proxies, resolve pins, address families and a call's cookie
// jar through the engine (worker pool, real libcurl, no gRPC), against the
// project's test server and a private nginx (TLS + HTTP/2, client
// certificates, forward proxy). The API's rules for these options (what a
// caller may ask for, the jar per batch) stay in
// tests/api/connection_options_test.cc.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/nginx_server.h"
#include "tests/testing/socks5_server.h"
#include "tests/testing/test_http_server.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/tls_nginx.h"
#include "tests/transport/transport_harness.h"

namespace fetchd::testing {
namespace {

using fetch::v1::FetchResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

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

  void TearDown() override { fetchd_.Stop(); }

  // The engine's proxy and address-family settings from a config
  // `transport` section, mapped as the server maps it; the timings keep the
  // engine's defaults (those of the default config).
  void SetTransport(const fetch::v1::Transport& transport) {
    const transport::TransferSettings mapped =
        transport::WorkerPool::SettingsFromConfig(transport);
    transport::TransferSettings& settings = fetchd_.options().settings;
    settings.ip_resolve = mapped.ip_resolve;
    settings.proxy_url = mapped.proxy_url;
    settings.proxy_username = mapped.proxy_username;
    settings.proxy_password = mapped.proxy_password;
    settings.use_env_proxy = mapped.use_env_proxy;
  }

  TestHttpServer http_;
  TransportHarness fetchd_;
  TlsNginx tls_;
  TestPki pki_;
  NginxServer* nginx_ = nullptr;
};

// ---- Cookies: the call's jar.

TEST_F(ConnectionOptionsTest, CookiesSetOnARedirectHopAreSentOnTheNext) {
  fetchd_.Start();
  auto jar = fetchd_.pool().NewCookieStore({}, "cookies");
  ASSERT_TRUE(jar.ok()) << jar.status();
  auto job = TransportHarness::Job(http_.Url(
      "/set-cookie?name=hop&value=1&to=" + UrlEncode("/request-headers")));
  job->cookie_jar = *jar;
  const FetchResult r = fetchd_.RunOne(std::move(job));
  EXPECT_EQ(r.status(), 200u) << r.error_message();
  EXPECT_THAT(r.body(), HasSubstr("cookie: hop=1"));
  EXPECT_THAT(r.set_cookies(), ElementsAre("hop=1; Path=/"));
  EXPECT_EQ(r.redirects(), 1u);
}

// ---- TLS and HTTP/2 against nginx.

TEST_F(ConnectionOptionsTest, CustomCaAndHttp2MultiplexedOverOneConnection) {
  ASSERT_NO_FATAL_FAILURE(StartTlsNginx(/*require_client_cert=*/false));
  NginxServer& nginx = *nginx_;
  fetchd_.Start();

  const std::string ca = ReadTextFile(pki_.ca_cert);
  constexpr int kRequests = 20;
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (int i = 0; i < kRequests; ++i) {
    auto job = TransportHarness::Job(nginx.Url("/r" + std::to_string(i)));
    job->tls_ca_pem = ca;
    jobs.push_back(std::move(job));
  }
  for (const FetchResult& r : fetchd_.Run(std::move(jobs))) {
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
  auto old = TransportHarness::Job(nginx.Url("/h1"));
  old->tls_ca_pem = ca;
  old->http_version = fetch::v1::HTTP_VERSION_1_1;
  EXPECT_EQ(fetchd_.RunOne(std::move(old)).http_version(), "1.1");
}

TEST_F(ConnectionOptionsTest, VerificationAgainstTheSystemStoreAndOff) {
  ASSERT_NO_FATAL_FAILURE(StartTlsNginx(/*require_client_cert=*/false));
  NginxServer& nginx = *nginx_;
  fetchd_.Start();
  auto insecure = TransportHarness::Job(nginx.Url("/insecure"));
  insecure->tls_verify = false;
  const auto results = fetchd_.Run(Jobs(
      TransportHarness::Job(nginx.Url("/system-store")), std::move(insecure)));
  // The test CA is in no system store.
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_TLS)
      << results[0].error_message();
  EXPECT_EQ(results[1].status(), 200u) << results[1].error_message();
}

TEST_F(ConnectionOptionsTest, ClientCertificateForMutualTlsToTheTarget) {
  ASSERT_NO_FATAL_FAILURE(StartTlsNginx(/*require_client_cert=*/true));
  NginxServer& nginx = *nginx_;
  fetchd_.Start();
  const std::string ca = ReadTextFile(pki_.ca_cert);
  auto with = TransportHarness::Job(nginx.Url("/with-cert"));
  with->tls_ca_pem = ca;
  with->tls_client_cert_pem = ReadTextFile(pki_.ClientCert("client"));
  with->tls_client_key_pem = ReadTextFile(pki_.ClientKey("client"));
  auto without = TransportHarness::Job(nginx.Url("/without-cert"));
  without->tls_ca_pem = ca;
  const auto results = fetchd_.Run(Jobs(std::move(with), std::move(without)));
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
  auto good = TransportHarness::Job(http_.Url("/request-headers"));
  good->proxy_url = proxy.Url("");
  good->proxy_username = "user";
  good->proxy_password = "s3cret";
  auto anonymous = TransportHarness::Job(http_.Url("/request-headers"));
  anonymous->proxy_url = proxy.Url("");
  const auto results = fetchd_.Run(Jobs(std::move(good), std::move(anonymous)));
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_THAT(results[0].body(), HasSubstr("x-via: nginx-proxy"));
  EXPECT_EQ(results[1].status(), 407u);
}

TEST_F(ConnectionOptionsTest, Socks5ProxyWithCredentials) {
  Socks5Server socks("user", "s3cret");
  ASSERT_TRUE(socks.Start().ok());
  fetchd_.Start();
  const std::string proxy =
      "socks5://127.0.0.1:" + std::to_string(socks.port());
  auto good = TransportHarness::Job(http_.Url("/ok"));
  good->proxy_url = proxy;
  good->proxy_username = "user";
  good->proxy_password = "s3cret";
  auto hostname = TransportHarness::Job(http_.Url("/bytes?n=3"));
  // socks5h: the proxy gets the host as given.
  hostname->proxy_url = "socks5h://127.0.0.1:" + std::to_string(socks.port());
  hostname->proxy_username = "user";
  hostname->proxy_password = "s3cret";
  auto wrong = TransportHarness::Job(http_.Url("/ok"));
  wrong->proxy_url = proxy;
  wrong->proxy_username = "user";
  wrong->proxy_password = "wrong";
  wrong->retry.max_attempts = 1;
  core::Batch::Options one_at_a_time;
  one_at_a_time.max_concurrency = 1;
  const auto results =
      fetchd_.Run(Jobs(std::move(good), std::move(hostname), std::move(wrong)),
                  one_at_a_time);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_EQ(results[0].body(), "ok");
  EXPECT_EQ(results[1].status(), 200u) << results[1].error_message();
  EXPECT_EQ(results[2].status(), 0u);
  EXPECT_EQ(results[2].error(), fetch::v1::ERROR_KIND_CONNECT)
      << results[2].error_message();
  EXPECT_EQ(socks.auth_failures(), 1) << results[2].error_message();
  const std::string target = "127.0.0.1:" + std::to_string(http_.port());
  EXPECT_THAT(socks.targets(), ElementsAre(target, target));
}

TEST_F(ConnectionOptionsTest, ServerProxyAndTheEnvironment) {
  NginxOptions options;
  options.proxy_to_port = http_.port();
  NginxServer proxy(options);
  ASSERT_TRUE(proxy.Start().ok());
  fetch::v1::Transport transport;
  transport.mutable_proxy()->set_url(proxy.Url(""));
  SetTransport(transport);
  fetchd_.Start();
  // The environment names a proxy that doesn't exist: it must be ignored.
  const std::string dead =
      "http://127.0.0.1:" + std::to_string(UnusedLoopbackPort());
  setenv("http_proxy", dead.c_str(), 1);
  setenv("HTTP_PROXY", dead.c_str(), 1);
  const FetchResult r =
      fetchd_.RunOne(TransportHarness::Job(http_.Url("/request-headers")));
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
  const FetchResult r = fetchd_.RunOne(TransportHarness::Job(http_.Url("/ok")));
  unsetenv("http_proxy");
  EXPECT_EQ(r.status(), 200u) << r.error_message();
}

TEST_F(ConnectionOptionsTest, EnvironmentProxyWhenOptedIn) {
  NginxOptions options;
  options.proxy_to_port = http_.port();
  NginxServer proxy(options);
  ASSERT_TRUE(proxy.Start().ok());
  fetch::v1::Transport transport;
  transport.set_use_env_proxy(true);
  SetTransport(transport);
  fetchd_.Start();
  setenv("http_proxy", proxy.Url("").c_str(), 1);
  const FetchResult r =
      fetchd_.RunOne(TransportHarness::Job(http_.Url("/request-headers")));
  unsetenv("http_proxy");
  EXPECT_THAT(r.body(), HasSubstr("x-via: nginx-proxy"));
}

// ---- Resolve pins and address families.

// A pin (FetchJob::connect_to, from FetchRequest.resolve) connects to its
// address; the address still passes the policy when the connection is made.
TEST_F(ConnectionOptionsTest, ResolvePinConnectsToItsAddressUnderThePolicy) {
  fetchd_.Start();
  const std::string port = std::to_string(http_.port());
  auto pinned = TransportHarness::Job("http://pinned.test:" + port + "/ok");
  pinned->connect_to.push_back("pinned.test:" + port + ":127.0.0.1:");
  auto metadata = TransportHarness::Job("http://pinned.test:" + port + "/ok");
  metadata->connect_to.push_back("pinned.test::169.254.169.254:");
  metadata->retry.max_attempts = 1;
  const auto results =
      fetchd_.Run(Jobs(std::move(pinned), std::move(metadata)));
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_EQ(results[0].remote_address(), "127.0.0.1:" + port);
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED)
      << results[1].error_message();
  EXPECT_THAT(results[1].error_message(), HasSubstr("link-local"));
}

class IpVersionTest : public ConnectionOptionsTest,
                      public ::testing::WithParamInterface<std::string> {};

// The test server listens on 127.0.0.1 only; "localhost" has both
// families, so ipv6 can't reach it and ipv4 does.
TEST_P(IpVersionTest, ConnectsOnlyOverTheConfiguredFamily) {
  fetch::v1::Transport transport;
  transport.set_ip_version(GetParam());
  SetTransport(transport);
  fetchd_.policy().add_allow_hosts("localhost");
  fetchd_.Start();
  auto job = TransportHarness::Job(
      "http://localhost:" + std::to_string(http_.port()) + "/ok");
  job->retry.max_attempts = 1;
  const FetchResult result = fetchd_.RunOne(std::move(job));
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

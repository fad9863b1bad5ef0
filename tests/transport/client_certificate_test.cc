// A target that refuses fetchd's client certificate inside the TLS
// handshake: no certificate, or one from a CA it doesn't trust. Under TLS
// 1.2 curl fails the handshake; under TLS 1.3 the client's handshake is
// done before the server checks, and the alert arrives as a read error.
// Both are ERROR_KIND_TLS, and not retried (TLS is not in retry_on).
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/tls_server.h"
#include "tests/transport/transport_harness.h"

namespace fetchd::testing {
namespace {

using ::testing::HasSubstr;

class ClientCertificateTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string dir =
        (std::filesystem::temp_directory_path() / "fetchd_mtls.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    absl::StatusOr<TestPki> pki = TestPki::Create(dir, {"client"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    TlsServerOptions options;
    options.cert_file = pki_.server_cert;
    options.key_file = pki_.server_key;
    options.client_ca_file = pki_.ca_cert;
    options.tls_version = GetParam();
    server_ = std::make_unique<TlsServer>(options);
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_NO_FATAL_FAILURE(fetchd_.Start());
  }
  void TearDown() override {
    fetchd_.Stop();
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::unique_ptr<core::FetchJob> Job(const std::string& cert,
                                      const std::string& key) {
    auto job = TransportHarness::Job(server_->Url("/"));
    job->tls_ca_pem = ReadTextFile(pki_.ca_cert);
    if (!cert.empty()) {
      job->tls_client_cert_pem = ReadTextFile(cert);
      job->tls_client_key_pem = ReadTextFile(key);
    }
    job->retry.max_attempts = 3;
    job->retry.base_backoff = absl::Milliseconds(1);
    return job;
  }

  std::string dir_;
  TestPki pki_;
  std::unique_ptr<TlsServer> server_;
  TransportHarness fetchd_;
};

TEST_P(ClientCertificateTest, RefusedCertificateIsTlsAndNotRetried) {
  const auto results = fetchd_.Run(Jobs(
      Job("", ""), Job(pki_.untrusted_client_cert, pki_.untrusted_client_key),
      Job(pki_.ClientCert("client"), pki_.ClientKey("client"))));
  for (int i : {0, 1}) {
    SCOPED_TRACE(i == 0 ? "no certificate" : "certificate of another CA");
    EXPECT_EQ(results[i].error(), fetch::v1::ERROR_KIND_TLS)
        << results[i].error_message();
    EXPECT_THAT(results[i].error_message(), HasSubstr("alert"));
    EXPECT_EQ(results[i].attempts(), 1u);
  }
  EXPECT_EQ(results[2].status(), 200u) << results[2].error_message();
  EXPECT_EQ(results[2].body(), "ok");
}

INSTANTIATE_TEST_SUITE_P(
    TlsVersions, ClientCertificateTest, ::testing::Values("1.2", "1.3"),
    [](const ::testing::TestParamInfo<std::string>& param) {
      return param.param == "1.2" ? "Tls12" : "Tls13";
    });

}  // namespace
}  // namespace fetchd::testing

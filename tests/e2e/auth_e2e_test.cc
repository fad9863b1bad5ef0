// End to end: the real fetchd serving mTLS with bearer tokens, per-caller
// rules from its config file, and the real fetchctl calling it with and
// without a client certificate and a token.
#include <csignal>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"
#include "tests/testing/test_pki.h"

namespace fetchd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-token-0123456789";

class AuthE2eTest : public FetchdE2eTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(FetchdE2eTest::SetUp());
    auto pki = TestPki::Create(dir_.string(), {"alice"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    tokens_ = WriteFile("tokens", absl::StrCat("alice ", kAliceToken, "\n"));
    token_file_ = WriteFile("alice.token", absl::StrCat(kAliceToken, "\n"));
  }

  // mTLS with tokens; alice may only fetch 127.0.0.1.
  void StartSecuredFetchd() {
    const std::string config =
        WriteFile("config.json",
                  R"({"auth": {"callers": [{"name": "alice", "maxPending": 100,
                                  "allowedHosts": ["127.0.0.1"]}]}})");
    ASSERT_NO_FATAL_FAILURE(
        StartFetchd({"--workers=2", "--config", config,
                     "--tls_cert_file=" + pki_.server_cert,
                     "--tls_key_file=" + pki_.server_key,
                     "--client_ca_file=" + pki_.ca_cert,
                     "--require_client_cert", "--token_file=" + tokens_}));
  }

  // fetchctl with `args` and the environment entries `env`.
  ExitInfo Fetchctl(std::vector<std::string> args,
                    std::vector<std::string> env = {}) {
    absl::StatusOr<ExitInfo> info = RunSubprocess(
        FetchctlArgv(std::move(args)), kProcessTimeout, std::move(env));
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *std::move(info) : ExitInfo{};
  }

  std::vector<std::string> WithCert(std::vector<std::string> args) const {
    std::vector<std::string> out = {"--server-cacert", pki_.ca_cert,
                                    "--server-cert",   pki_.ClientCert("alice"),
                                    "--server-key",    pki_.ClientKey("alice")};
    out.insert(out.end(), args.begin(), args.end());
    return out;
  }

  TestPki pki_;
  std::string tokens_;
  std::string token_file_;
};

TEST_F(AuthE2eTest, MtlsServerRejectsFetchctlWithoutACertificate) {
  ASSERT_NO_FATAL_FAILURE(StartSecuredFetchd());
  // fetchctl waits its 5 s connect timeout for a channel that can't get
  // ready; plaintext and untrusted certificates are covered by
  // tests/api/caller_auth_service_test.cc.
  const ExitInfo no_cert =
      Fetchctl({"--server-cacert", pki_.ca_cert, "--token-file", token_file_,
                "get", http_.Url("/ok")});
  EXPECT_EQ(no_cert.exit_code, 3) << Describe(no_cert);
  EXPECT_THAT(no_cert.stderr_text, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(http_.RequestCount("/ok"), 0);
}

TEST_F(AuthE2eTest, CertificateIdentifiesTheCallerAndBadTokenIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartSecuredFetchd());

  // A token that is sent must be right, certificate or not.
  const ExitInfo wrong_token = Fetchctl(WithCert({"get", http_.Url("/ok")}),
                                        {"FETCHD_TOKEN=not-alice-0123456789"});
  EXPECT_EQ(wrong_token.exit_code, 3) << Describe(wrong_token);
  EXPECT_THAT(wrong_token.stderr_text,
              HasSubstr("UNAUTHENTICATED: unknown bearer token"));
  EXPECT_EQ(http_.RequestCount("/ok"), 0);

  // The certificate (SAN alice) authenticates: alice's rules apply, so
  // 127.0.0.2, off her list, is a DENIED result, and the other URL runs.
  const std::string denied_url =
      absl::StrCat("http://127.0.0.2:", http_.port(), "/ok");
  const ExitInfo denied =
      Fetchctl(WithCert({"get", http_.Url("/ok"), denied_url}));
  EXPECT_EQ(denied.exit_code, 1) << Describe(denied);
  EXPECT_THAT(denied.stdout_text, HasSubstr("ERROR_KIND_DENIED"));
  EXPECT_THAT(denied.stdout_text,
              HasSubstr("caller \\\"alice\\\" may not fetch host "
                        "\\\"127.0.0.2\\\""));
  EXPECT_EQ(http_.RequestCount("/ok"), 1);
  // With her token (from a file) too.
  const ExitInfo with_token = Fetchctl(
      WithCert({"--token-file", token_file_, "get", http_.Url("/ok")}));
  EXPECT_EQ(with_token.exit_code, 0) << Describe(with_token);
  EXPECT_THAT(with_token.stdout_text, HasSubstr("\"status\":200"));

  // Health needs the certificate (the transport) but no token.
  const ExitInfo health = Fetchctl(WithCert({"health"}));
  EXPECT_EQ(health.exit_code, 0) << Describe(health);
  EXPECT_THAT(health.stdout_text, HasSubstr("SERVING"));

  // fetchd never logs the token.
  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  const ExitInfo server = fetchd_->Wait(kProcessTimeout);
  EXPECT_EQ(server.exit_code, 0) << Describe(server);
  EXPECT_THAT(server.stdout_text + server.stderr_text,
              Not(HasSubstr(kAliceToken)));
}

TEST_F(AuthE2eTest, TlsServerWithTokensRefusesCallsWithoutOne) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd(
      {"--workers=2", "--tls_cert_file=" + pki_.server_cert,
       "--tls_key_file=" + pki_.server_key, "--token_file=" + tokens_}));
  const ExitInfo no_token =
      Fetchctl({"--server-cacert", pki_.ca_cert, "get", http_.Url("/ok")});
  EXPECT_EQ(no_token.exit_code, 3) << Describe(no_token);
  EXPECT_THAT(no_token.stderr_text, HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(http_.RequestCount("/ok"), 0);

  const ExitInfo ok =
      Fetchctl({"--server-cacert", pki_.ca_cert, "get", http_.Url("/ok")},
               {absl::StrCat("FETCHD_TOKEN=", kAliceToken)});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_THAT(ok.stdout_text, HasSubstr("\"status\":200"));
}

TEST_F(AuthE2eTest, BadAuthConfigStopsFetchdWithTheField) {
  const ExitInfo info =
      RunFetchd({"--check_config", "--tls_cert_file=" + pki_.server_cert,
                 "--tls_key_file=" + pki_.ClientKey("alice")});
  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text,
              HasSubstr("auth.tls_key_file: \"" + pki_.ClientKey("alice") +
                        "\" is not the key of the first certificate"));
}

}  // namespace
}  // namespace fetchd::testing

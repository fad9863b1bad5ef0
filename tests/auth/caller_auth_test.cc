#include "service/auth/caller_auth.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_pki.h"

namespace fetchd::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-token-0123456789";
constexpr char kBobToken[] = "bob-token-0123456789";

class CallerAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir =
        (std::filesystem::temp_directory_path() / "caller_auth.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    auto pki = testing::TestPki::Create(dir_, {"alice", "bob"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    tokens_ = Write("tokens", std::string("alice ") + kAliceToken + "\nbob " +
                                  kBobToken + "\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  fetch::v1::Auth Tls() const {
    fetch::v1::Auth auth;
    auth.set_tls_cert_file(pki_.server_cert);
    auth.set_tls_key_file(pki_.server_key);
    return auth;
  }

  std::unique_ptr<CallerAuth> MustLoad(const fetch::v1::Auth& config) {
    absl::StatusOr<std::unique_ptr<CallerAuth>> auth = CallerAuth::Load(config);
    EXPECT_TRUE(auth.ok()) << auth.status();
    return auth.ok() ? *std::move(auth) : nullptr;
  }

  // The message of a Load() that must fail with `code`: InvalidArgument for
  // a bad config, FailedPrecondition for a file that can't be read.
  std::string LoadError(
      const fetch::v1::Auth& config,
      absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
    absl::StatusOr<std::unique_ptr<CallerAuth>> auth = CallerAuth::Load(config);
    EXPECT_FALSE(auth.ok());
    if (auth.ok()) return "";
    EXPECT_EQ(auth.status().code(), code) << auth.status();
    return std::string(auth.status().message());
  }

  std::string dir_;
  testing::TestPki pki_;
  std::string tokens_;
};

TEST_F(CallerAuthTest, DefaultConfigIsPlaintextAndAnonymous) {
  std::unique_ptr<CallerAuth> auth = MustLoad({});
  ASSERT_NE(auth, nullptr);
  EXPECT_FALSE(auth->tls());
  EXPECT_FALSE(auth->auth_required());
  EXPECT_NE(auth->ServerCredentials(), nullptr);
  absl::StatusOr<Caller> caller = auth->Identify({}, std::nullopt);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "");
  EXPECT_EQ(caller->DisplayName(), "anonymous");
  EXPECT_EQ(caller->rules->field, "auth.default_caller");
  EXPECT_FALSE(caller->configured);
  // Without a token file an authorization entry means nothing.
  EXPECT_TRUE(auth->Identify({}, "Bearer whatever").ok());
}

TEST_F(CallerAuthTest, TlsAndMtlsConfigsLoad) {
  fetch::v1::Auth config = Tls();
  std::unique_ptr<CallerAuth> tls = MustLoad(config);
  ASSERT_NE(tls, nullptr);
  EXPECT_TRUE(tls->tls());
  EXPECT_FALSE(tls->auth_required());
  EXPECT_NE(tls->ServerCredentials(), nullptr);

  config.set_client_ca_file(pki_.ca_cert);
  config.set_require_client_cert(true);
  std::unique_ptr<CallerAuth> mtls = MustLoad(config);
  ASSERT_NE(mtls, nullptr);
  EXPECT_TRUE(mtls->auth_required());
  // A verified certificate identifies its caller.
  absl::StatusOr<Caller> caller = mtls->Identify({"alice"}, std::nullopt);
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->name, "alice");
  absl::StatusOr<Caller> none = mtls->Identify({}, std::nullopt);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(CallerAuthTest, TokensIdentifyCallersAndWrongOnesAreRefused) {
  fetch::v1::Auth config;
  config.set_token_file(tokens_);
  auto* alice = config.add_callers();
  alice->set_name("alice");
  alice->set_max_pending(5);
  std::unique_ptr<CallerAuth> auth = MustLoad(config);
  ASSERT_NE(auth, nullptr);
  EXPECT_TRUE(auth->auth_required());

  absl::StatusOr<Caller> a =
      auth->Identify({}, std::string("Bearer ") + kAliceToken);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name, "alice");
  EXPECT_TRUE(a->configured);
  EXPECT_EQ(a->rules->field, "auth.callers[0]");
  EXPECT_EQ(a->rules->max_pending, 5u);

  // Not in auth.callers: the default rules, but its own name.
  absl::StatusOr<Caller> b =
      auth->Identify({}, std::string("bearer  ") + kBobToken);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->name, "bob");
  EXPECT_FALSE(b->configured);
  EXPECT_EQ(b->rules->field, "auth.default_caller");

  for (const std::string& wrong :
       {std::string("Bearer ") + kAliceToken + "x", std::string("Bearer "),
        std::string("Basic ") + kAliceToken, std::string(kAliceToken)}) {
    absl::StatusOr<Caller> refused = auth->Identify({}, wrong);
    ASSERT_FALSE(refused.ok()) << wrong;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(refused.status().message(), Not(HasSubstr("0123456789")));
  }
  absl::StatusOr<Caller> missing = auth->Identify({}, std::nullopt);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("authorization: Bearer TOKEN"));
}

TEST_F(CallerAuthTest, TokenWinsOverCertificateAndBadTokenIsNotExcused) {
  fetch::v1::Auth config = Tls();
  config.set_client_ca_file(pki_.ca_cert);
  config.set_token_file(tokens_);
  std::unique_ptr<CallerAuth> auth = MustLoad(config);
  ASSERT_NE(auth, nullptr);
  absl::StatusOr<Caller> by_token =
      auth->Identify({"alice"}, std::string("Bearer ") + kBobToken);
  ASSERT_TRUE(by_token.ok());
  EXPECT_EQ(by_token->name, "bob");
  EXPECT_EQ(auth->Identify({"alice"}, "Bearer not-a-token-at-all-0000")
                .status()
                .code(),
            absl::StatusCode::kUnauthenticated);
  // An optional certificate authenticates without a token.
  absl::StatusOr<Caller> by_cert = auth->Identify({"alice"}, std::nullopt);
  ASSERT_TRUE(by_cert.ok());
  EXPECT_EQ(by_cert->name, "alice");
}

TEST_F(CallerAuthTest, CertificateIdentityPrefersAConfiguredName) {
  fetch::v1::Auth config = Tls();
  config.set_client_ca_file(pki_.ca_cert);
  config.add_callers()->set_name("svc-b");
  std::unique_ptr<CallerAuth> auth = MustLoad(config);
  ASSERT_NE(auth, nullptr);
  absl::StatusOr<Caller> caller =
      auth->Identify({"svc-a.internal", "svc-b"}, std::nullopt);
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->name, "svc-b");
  EXPECT_TRUE(caller->configured);
  caller = auth->Identify({"svc-a.internal", "other"}, std::nullopt);
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->name, "svc-a.internal");
}

TEST_F(CallerAuthTest, BadConfigsNameTheFieldAndRule) {
  fetch::v1::Auth only_cert;
  only_cert.set_tls_cert_file(pki_.server_cert);
  EXPECT_THAT(LoadError(only_cert), HasSubstr("auth.tls_key_file: "));

  fetch::v1::Auth ca_without_tls;
  ca_without_tls.set_client_ca_file(pki_.ca_cert);
  EXPECT_THAT(LoadError(ca_without_tls),
              HasSubstr("auth.client_ca_file: needs TLS"));

  fetch::v1::Auth require_without_ca = Tls();
  require_without_ca.set_require_client_cert(true);
  EXPECT_THAT(LoadError(require_without_ca),
              HasSubstr("auth.require_client_cert: needs auth.client_ca_file"));

  fetch::v1::Auth missing = Tls();
  missing.set_tls_cert_file(dir_ + "/nope.pem");
  EXPECT_THAT(
      LoadError(missing, absl::StatusCode::kFailedPrecondition),
      HasSubstr("auth.tls_cert_file: cannot read \"" + dir_ + "/nope.pem\""));

  // CheckConfig() finds the same config errors without reading a file.
  EXPECT_TRUE(CallerAuth::CheckConfig(missing).ok());
  EXPECT_THAT(CallerAuth::CheckConfig(require_without_ca).message(),
              HasSubstr("auth.require_client_cert: needs auth.client_ca_file"));
  EXPECT_THAT(CallerAuth::CheckConfig(ca_without_tls).message(),
              HasSubstr("auth.client_ca_file: needs TLS"));

  fetch::v1::Auth not_pem = Tls();
  not_pem.set_tls_cert_file(Write("junk.pem", "hello\n"));
  EXPECT_THAT(LoadError(not_pem),
              HasSubstr("auth.tls_cert_file: \"" + dir_ +
                        "/junk.pem\" holds no PEM certificate"));

  fetch::v1::Auth wrong_key = Tls();
  wrong_key.set_tls_key_file(pki_.ClientKey("alice"));
  EXPECT_THAT(LoadError(wrong_key),
              HasSubstr("is not the key of the first certificate"));

  fetch::v1::Auth key_is_cert = Tls();
  key_is_cert.set_tls_key_file(pki_.server_cert);
  EXPECT_THAT(LoadError(key_is_cert),
              HasSubstr("auth.tls_key_file: \"" + pki_.server_cert +
                        "\" holds no unencrypted PEM private key"));

  fetch::v1::Auth bad_ca = Tls();
  bad_ca.set_client_ca_file(pki_.server_key);
  EXPECT_THAT(LoadError(bad_ca), HasSubstr("auth.client_ca_file: "));

  fetch::v1::Auth bad_tokens;
  bad_tokens.set_token_file(Write("bad_tokens", "alice short\n"));
  EXPECT_THAT(LoadError(bad_tokens),
              HasSubstr("auth.token_file: \"" + dir_ +
                        "/bad_tokens\": token file line 1: token of "
                        "\"alice\" must be 16 to 4096 characters"));

  fetch::v1::Auth no_tokens;
  no_tokens.set_token_file(Write("empty_tokens", "# none\n"));
  EXPECT_THAT(LoadError(no_tokens), HasSubstr("holds no \"NAME TOKEN\" line"));

  fetch::v1::Auth twice;
  twice.add_callers()->set_name("alice");
  twice.add_callers()->set_name("alice");
  EXPECT_THAT(LoadError(twice),
              HasSubstr("auth.callers[1].name: \"alice\" is the name of an "
                        "earlier caller"));

  EXPECT_THAT(CallerAuth::CheckConfig(twice).message(),
              HasSubstr("auth.callers[1].name: \"alice\" is the name of an "
                        "earlier caller"));

  fetch::v1::Auth unnamed;
  unnamed.add_callers();
  EXPECT_THAT(LoadError(unnamed), HasSubstr("auth.callers[0].name: must be"));

  fetch::v1::Auth bad_host;
  auto* caller = bad_host.add_callers();
  caller->set_name("alice");
  caller->add_allowed_hosts("example.org");
  caller->add_allowed_hosts("http://evil.test/");
  EXPECT_THAT(LoadError(bad_host),
              HasSubstr("auth.callers[0].allowed_hosts[1]: "));

  fetch::v1::Auth named_default;
  named_default.mutable_default_caller()->set_name("x");
  EXPECT_THAT(LoadError(named_default),
              HasSubstr("auth.default_caller.name: must be empty"));

  fetch::v1::Auth huge;
  huge.mutable_default_caller()->set_max_pending(4000000000u);
  EXPECT_THAT(LoadError(huge),
              HasSubstr("auth.default_caller.max_pending: must be between"));
}

}  // namespace
}  // namespace fetchd::auth

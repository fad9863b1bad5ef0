// Callers through the real service: TLS and mTLS credentials, bearer
// tokens, per-caller quotas and destination allow-lists (config.auth),
// with a real gRPC server, real clients over TCP and real libcurl.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/test_http_server.h"
#include "tests/testing/test_pki.h"

namespace fetchd::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-token-0123456789";
constexpr char kBobToken[] = "bob-token-0123456789";

class CallerAuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    std::string dir =
        (std::filesystem::temp_directory_path() / "caller_auth_api.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    auto pki = TestPki::Create(dir_, {"alice", "bob"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    tokens_ = dir_ + "/tokens";
    std::ofstream(tokens_) << "alice " << kAliceToken << "\nbob " << kBobToken
                           << "\n";
  }
  void TearDown() override {
    harness_.Stop();
    std::filesystem::remove_all(dir_);
  }

  // The server side of mTLS: our CA, client certificates required.
  void RequireClientCerts() {
    fetch::v1::Auth& auth = *harness_.config().mutable_auth();
    auth.set_tls_cert_file(pki_.server_cert);
    auth.set_tls_key_file(pki_.server_key);
    auth.set_client_ca_file(pki_.ca_cert);
    auth.set_require_client_cert(true);
  }

  // TLS client options trusting our CA, with `name`'s certificate unless
  // `name` is empty.
  client::ClientOptions TlsClient(const std::string& name) const {
    client::ClientOptions options;
    options.ca_cert_pem = ReadTextFile(pki_.ca_cert);
    if (!name.empty()) {
      options.client_cert_pem = ReadTextFile(pki_.ClientCert(name));
      options.client_key_pem = ReadTextFile(pki_.ClientKey(name));
    }
    options.connect_timeout = absl::Seconds(3);
    return options;
  }

  // Connects with `options` and runs a one-request batch: the status of
  // whichever fails first (with TLS 1.3 a rejected client certificate may
  // only show on the first call).
  // Meant for connections that fail: waits 1 s for the channel.
  absl::Status ConnectAndRun(client::ClientOptions options) {
    options.connect_timeout = absl::Seconds(1);
    auto client = harness_.Connect(options);
    if (!client.ok()) return client.status();
    fetch::v1::BatchRequest batch;
    AddUrl(&batch, http_.Url("/ok"));
    return (*client)->FetchBatch(
        batch, [](const fetch::v1::FetchEvent&) {},
        absl::Now() + absl::Seconds(10));
  }

  std::string dir_;
  TestPki pki_;
  std::string tokens_;
  TestHttpServer http_;
  ServiceHarness harness_;
};

TEST_F(CallerAuthServiceTest, MtlsServerRefusesClientsWithoutATrustedCert) {
  RequireClientCerts();
  harness_.client_options() = TlsClient("alice");
  ASSERT_NO_FATAL_FAILURE(harness_.Start());

  // No certificate: the handshake fails, no call reaches fetchd.
  const absl::Status no_cert = ConnectAndRun(TlsClient(""));
  EXPECT_EQ(no_cert.code(), absl::StatusCode::kUnavailable) << no_cert;
  // A certificate from another CA: the same.
  client::ClientOptions intruder = TlsClient("");
  intruder.client_cert_pem = ReadTextFile(pki_.untrusted_client_cert);
  intruder.client_key_pem = ReadTextFile(pki_.untrusted_client_key);
  const absl::Status untrusted = ConnectAndRun(intruder);
  EXPECT_EQ(untrusted.code(), absl::StatusCode::kUnavailable) << untrusted;
  // Plaintext to a TLS port: no.
  client::ClientOptions plaintext;
  plaintext.connect_timeout = absl::Seconds(3);
  const absl::Status plain = ConnectAndRun(plaintext);
  EXPECT_EQ(plain.code(), absl::StatusCode::kUnavailable) << plain;
  EXPECT_EQ(harness_.gate().pending(), 0);

  // With a certificate from our CA it works.
  fetch::v1::BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  const auto results = harness_.Run(batch);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 200);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_NONE);
  EXPECT_EQ(ConnectAndRun(TlsClient("bob")), absl::OkStatus());
}

TEST_F(CallerAuthServiceTest, CertificateSanIsTheCallerForAllowedHosts) {
  RequireClientCerts();
  fetch::v1::CallerPolicy& alice =
      *harness_.config().mutable_auth()->add_callers();
  alice.set_name("alice");
  alice.add_allowed_hosts("127.0.0.1");
  harness_.client_options() = TlsClient("alice");
  ASSERT_NO_FATAL_FAILURE(harness_.Start());

  // 127.0.0.2 is not on alice's list; 127.0.0.1 is. The batch runs on.
  TestHttpServerOptions other_options;
  other_options.host = "127.0.0.2";
  TestHttpServer other(other_options);
  ASSERT_TRUE(other.Start().ok());
  const std::string denied_url = other.Url("/ok");
  fetch::v1::BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  AddUrl(&batch, denied_url);
  AddUrl(&batch, http_.Url("/bytes?n=10"));
  const auto results = harness_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200);
  EXPECT_EQ(results[2].status(), 200);
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED);
  EXPECT_EQ(results[1].id(), "r1");
  EXPECT_EQ(results[1].error_message(),
            "caller \"alice\" may not fetch host \"127.0.0.2\": not in "
            "auth.callers[0].allowed_hosts");
  EXPECT_EQ(http_.RequestCount("/ok"), 1);

  // Unary Fetch: the same rule, as a result.
  fetch::v1::FetchRequest request;
  request.set_url(denied_url);
  absl::StatusOr<fetch::v1::FetchResult> result =
      harness_.client().Fetch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->error(), fetch::v1::ERROR_KIND_DENIED);

  // bob is not listed: the default rules allow every host.
  auto bob = harness_.Connect(TlsClient("bob"));
  ASSERT_TRUE(bob.ok()) << bob.status();
  result = (*bob)->Fetch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status(), 200);
}

TEST_F(CallerAuthServiceTest, TokensAreRequiredWhenATokenFileIsSet) {
  harness_.config().mutable_auth()->set_token_file(tokens_);
  harness_.client_options().bearer_token = kAliceToken;
  ASSERT_NO_FATAL_FAILURE(harness_.Start());

  fetch::v1::BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  EXPECT_EQ(harness_.Run(batch).size(), 1u);

  client::ClientOptions none;
  auto anonymous = harness_.Connect(none);
  ASSERT_TRUE(anonymous.ok()) << anonymous.status();
  absl::Status status =
      (*anonymous)->FetchBatch(batch, [](const fetch::v1::FetchEvent&) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), HasSubstr("authorization: Bearer TOKEN"));
  fetch::v1::FetchRequest request;
  request.set_url(http_.Url("/ok"));
  EXPECT_EQ((*anonymous)->Fetch(request).status().code(),
            absl::StatusCode::kUnauthenticated);

  client::ClientOptions wrong;
  wrong.bearer_token = std::string(kAliceToken) + "-but-wrong";
  auto intruder = harness_.Connect(wrong);
  ASSERT_TRUE(intruder.ok()) << intruder.status();
  status = (*intruder)->FetchBatch(batch, [](const fetch::v1::FetchEvent&) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
  EXPECT_THAT(status.message(), Not(HasSubstr("0123456789")));
  EXPECT_EQ((*intruder)->Fetch(request).status().code(),
            absl::StatusCode::kUnauthenticated);
  // Only the authenticated batch reached the target.
  EXPECT_EQ(http_.RequestCount("/ok"), 1);
  // An invalid batch from an unknown caller learns nothing but that.
  fetch::v1::BatchRequest empty;
  status = (*intruder)->FetchBatch(empty, [](const fetch::v1::FetchEvent&) {});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << status;
}

TEST_F(CallerAuthServiceTest, CallerOverItsQuotaIsRefusedWhileAnotherGetsIn) {
  fetch::v1::Auth& auth = *harness_.config().mutable_auth();
  auth.set_token_file(tokens_);
  fetch::v1::CallerPolicy& alice = *auth.add_callers();
  alice.set_name("alice");
  alice.set_max_pending(2);
  harness_.client_options().bearer_token = kAliceToken;
  ASSERT_NO_FATAL_FAILURE(harness_.Start());

  // alice's two requests hang at the target, holding her whole quota.
  grpc::ClientContext hanging;
  hanging.AddMetadata("authorization", std::string("Bearer ") + kAliceToken);
  fetch::v1::BatchRequest held;
  AddUrl(&held, http_.Url("/stall?ms=30000"));
  AddUrl(&held, http_.Url("/stall?ms=30000"));
  grpc::Status held_status;
  std::thread holder([&] {
    auto reader = harness_.stub().FetchBatch(&hanging, held);
    fetch::v1::FetchEvent event;
    while (reader->Read(&event)) {
    }
    held_status = reader->Finish();
  });
  ASSERT_TRUE(http_.tracker().AwaitCurrent(2, absl::Seconds(10)));
  EXPECT_EQ(harness_.gate().caller_quotas().pending("alice"), 2);

  // One more request from alice: refused, with the retry hint.
  fetch::v1::BatchRequest one;
  AddUrl(&one, http_.Url("/ok"));
  absl::Status refused;
  harness_.Run(one, &refused);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(refused.message(),
              AllOf(HasSubstr("caller \"alice\" has 2 requests pending; 1 "
                              "more would exceed auth.callers[0].max_pending "
                              "(2)"),
                    HasSubstr("(retry-after-ms: 1000)")));
  fetch::v1::FetchRequest request;
  request.set_url(http_.Url("/ok"));
  EXPECT_EQ(harness_.client().Fetch(request).status().code(),
            absl::StatusCode::kResourceExhausted);

  // bob is not held back by alice.
  client::ClientOptions bob_options;
  bob_options.bearer_token = kBobToken;
  auto bob = harness_.Connect(bob_options);
  ASSERT_TRUE(bob.ok()) << bob.status();
  absl::StatusOr<fetch::v1::FetchResult> result = (*bob)->Fetch(request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status(), 200);

  // alice's quota comes back when her requests end.
  hanging.TryCancel();
  holder.join();
  EXPECT_EQ(held_status.error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(http_.tracker().AwaitCurrent(0, absl::Seconds(10)));
  absl::Status status;
  for (int i = 0; i < 200; ++i) {  // the call's end races with the client's
    if (harness_.gate().caller_quotas().pending("alice") == 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(harness_.Run(one, &status).size(), 1u);
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(CallerAuthServiceTest, TlsWithoutClientCertsServesAnyTlsClient) {
  fetch::v1::Auth& auth = *harness_.config().mutable_auth();
  auth.set_tls_cert_file(pki_.server_cert);
  auth.set_tls_key_file(pki_.server_key);
  harness_.client_options() = TlsClient("");
  ASSERT_NO_FATAL_FAILURE(harness_.Start());
  fetch::v1::BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  EXPECT_EQ(harness_.Run(batch).size(), 1u);
  // A client that doesn't trust our CA can't connect.
  client::ClientOptions system_roots;
  system_roots.tls = true;
  system_roots.connect_timeout = absl::Seconds(3);
  EXPECT_EQ(ConnectAndRun(system_roots).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace fetchd::testing

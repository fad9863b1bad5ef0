// The destination policy through the real service: real gRPC, real curl
// workers, real HTTP servers on loopback. Loopback is denied by the default
// policy, so each test states exactly what its config allows; nothing here
// sends a packet beyond loopback (denied addresses are refused before
// connect).
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/denial_recorder.h"
#include "tests/api/service_harness.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;

class DestinationPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    ASSERT_TRUE(other_.Start().ok());
    // Only what each test allows: drop the harness's loopback allowance.
    fetchd_.config().mutable_policy()->clear_allow();
    fetchd_.set_observer(&denials_);
  }

  // Allows the main test server's address and port, nothing else.
  void AllowHttpServer() {
    fetch::v1::AddressRule* rule =
        fetchd_.config().mutable_policy()->add_allow();
    rule->set_cidr("127.0.0.1");
    rule->add_ports(static_cast<uint32_t>(http_.port()));
  }

  static void ExpectDenied(const FetchResult& r, const std::string& rule) {
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_DENIED)
        << r.id() << ": " << r.error_message();
    EXPECT_THAT(r.error_message(), HasSubstr(rule)) << r.id();
  }

  TestHttpServer http_;
  TestHttpServer other_;
  DenialRecorder denials_;
  ServiceHarness fetchd_;
};

TEST_F(DestinationPolicyTest, DefaultConfigDeniesLoopbackInEverySpelling) {
  fetchd_.Start();
  const std::string port = std::to_string(http_.port());
  BatchRequest batch;
  for (const std::string& url :
       {http_.Url("/ok"), "http://2130706433:" + port + "/ok",
        "http://0x7f.1:" + port + "/ok", "http://127.1:" + port + "/ok",
        "http://[::1]:" + port + "/ok",
        "http://[::ffff:127.0.0.1]:" + port + "/ok",
        "http://localhost:" + port + "/ok"}) {
    AddUrl(&batch, url);
  }
  const auto results = fetchd_.RunByIndex(batch);
  for (int i = 0; i < 6; ++i) ExpectDenied(results[i], "loopback");
  ExpectDenied(results[6], "host localhost");
  EXPECT_EQ(http_.TotalRequests(), 0);
  const std::map<std::string, int> expected = {{"loopback", 6}, {"host", 1}};
  EXPECT_EQ(denials_.denials(), expected);
}

TEST_F(DestinationPolicyTest, SchemesOtherThanHttpAreDenied) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, "file:///etc/passwd");
  AddUrl(&batch, "gopher://127.0.0.1:70/");
  AddUrl(&batch, "dict://127.0.0.1:11211/stat");
  for (const FetchResult& r : fetchd_.Run(batch)) {
    ExpectDenied(r, "only http and https");
    EXPECT_TRUE(r.body().empty());
  }
  EXPECT_EQ(denials_.denials().at("scheme"), 3);
}

TEST_F(DestinationPolicyTest, ExplicitAllowRuleLetsOnlyItsPortThrough) {
  AllowHttpServer();
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  AddUrl(&batch, other_.Url("/ok"));  // same address, another port
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  ExpectDenied(results[1], "loopback 127.0.0.0/8");
  EXPECT_EQ(other_.TotalRequests(), 0);
}

// A redirect from an allowed server must not reach what the caller could
// not have asked for directly: every hop is checked before it is requested.
TEST_F(DestinationPolicyTest, RedirectsToDeniedDestinationsAreRefused) {
  AllowHttpServer();
  fetchd_.Start();
  BatchRequest batch;
  for (const std::string& to :
       {other_.Url("/ok"), std::string("http://169.254.169.254/latest/"),
        std::string("http://[::ffff:169.254.169.254]/"),
        std::string("file:///etc/passwd"), std::string("http://localhost/")}) {
    AddUrl(&batch, http_.Url("/redirect?to=" + UrlEncode(to)));
  }
  const auto results = fetchd_.RunByIndex(batch);
  ExpectDenied(results[0], "loopback 127.0.0.0/8");
  ExpectDenied(results[1], "link-local 169.254.0.0/16");
  ExpectDenied(results[2], "link-local 169.254.0.0/16");
  ExpectDenied(results[3], "only http and https");
  ExpectDenied(results[4], "host localhost");
  for (const FetchResult& r : results) {
    // The refused hop is reported with the redirect response it came from.
    EXPECT_EQ(r.status(), 302u) << r.id();
    EXPECT_THAT(r.error_message(), HasSubstr("redirect 1 (302)")) << r.id();
  }
  EXPECT_EQ(other_.TotalRequests(), 0);
  EXPECT_EQ(http_.RequestCount("/redirect"), 5);
}

// A name the policy doesn't know may resolve to a denied address: the
// address is checked when curl opens the connection. "localhost" stands in
// for such a name here (its built-in denial is lifted); resolver_policy_test
// does the same with a name from a resolver of its own.
TEST_F(DestinationPolicyTest, ResolvedAddressIsCheckedOnConnect) {
  AllowHttpServer();
  fetchd_.config().mutable_policy()->add_allow_hosts("localhost");
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, "http://localhost:" + std::to_string(other_.port()) + "/ok");
  AddUrl(&batch, "http://localhost:" + std::to_string(http_.port()) + "/ok");
  const auto results = fetchd_.RunByIndex(batch);
  ExpectDenied(results[0], "denied by policy (rule: loopback");
  EXPECT_THAT(results[0].error_message(),
              HasSubstr(":" + std::to_string(other_.port())));
  EXPECT_EQ(results[0].attempts(), 1u);  // DENIED is not retried
  EXPECT_EQ(other_.TotalRequests(), 0);
  // The allowed port of the same name connects (to 127.0.0.1; ::1 is
  // denied and skipped if tried first).
  EXPECT_EQ(results[1].status(), 200u) << results[1].error_message();
}

TEST_F(DestinationPolicyTest, DenyListWinsOverAllowList) {
  AllowHttpServer();
  fetch::v1::AddressRule* deny = fetchd_.config().mutable_policy()->add_deny();
  deny->set_cidr("127.0.0.0/8");
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, http_.Url("/ok"));
  ExpectDenied(fetchd_.Run(batch).at(0), "deny 127.0.0.0/8");
  EXPECT_EQ(denials_.denials().at("deny"), 1);
}

}  // namespace
}  // namespace fetchd::testing

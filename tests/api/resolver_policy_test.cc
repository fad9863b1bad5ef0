// The destination policy against names that resolve to denied addresses,
// through a resolver the test controls. The test process moves itself into
// a network namespace of its own (only `lo`, up) and a private mount
// namespace whose /etc/resolv.conf points at a dnsmasq on 127.0.0.1, so no
// packet leaves the namespace and no outside DNS server is ever asked.
// Needs root (CAP_SYS_ADMIN), as `make test` has on CI; fails otherwise.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/private_resolver.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;

class ResolverPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    ASSERT_TRUE(other_.Start().ok());
    fetchd_.config().mutable_policy()->clear_allow();
  }

  std::string At(const std::string& host, const TestHttpServer& server,
                 const std::string& path) const {
    return absl::StrCat("http://", host, ":", server.port(), path);
  }

  TestHttpServer http_;
  TestHttpServer other_;
  ServiceHarness fetchd_;
};

TEST_F(ResolverPolicyTest, NameResolvingToLoopbackIsDeniedOnConnect) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, At("rebind.test", http_, "/ok"));
  AddUrl(&batch, At("metadata.test", http_, "/latest/meta-data/"));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_DENIED)
      << results[0].error_message();
  EXPECT_THAT(results[0].error_message(),
              HasSubstr(absl::StrCat("destination 127.0.0.1:", http_.port(),
                                     " denied by policy (rule: loopback")));
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED)
      << results[1].error_message();
  EXPECT_THAT(results[1].error_message(),
              HasSubstr("169.254.169.254:" + std::to_string(http_.port()) +
                        " denied by policy (rule: link-local"));
  EXPECT_EQ(http_.TotalRequests(), 0);
}

// The same name works once the config allows its address: the denial above
// is the policy's, not a failure to resolve.
TEST_F(ResolverPolicyTest, AllowedOnlyByExplicitConfig) {
  fetch::v1::AddressRule* rule = fetchd_.config().mutable_policy()->add_allow();
  rule->set_cidr("127.0.0.1");
  rule->add_ports(static_cast<uint32_t>(http_.port()));
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, At("rebind.test", http_, "/ok"));
  // A redirect from the allowed server to the same name on another port.
  AddUrl(&batch,
         At("rebind.test", http_,
            "/redirect?to=" + UrlEncode(At("rebind.test", other_, "/ok"))));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_EQ(results[0].remote_address(),
            "127.0.0.1:" + std::to_string(http_.port()));
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED)
      << results[1].error_message();
  EXPECT_EQ(results[1].redirects(), 1u);
  EXPECT_EQ(other_.TotalRequests(), 0);
}

TEST_F(ResolverPolicyTest, UnknownNameIsADnsError) {
  fetchd_.Start();
  BatchRequest batch;
  fetch::v1::FetchRequest* r = AddUrl(&batch, "http://nowhere.test/");
  r->mutable_retry()->set_max_attempts(1);
  const FetchResult result = fetchd_.Run(batch).at(0);
  EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_DNS)
      << result.error_message();
}

}  // namespace
}  // namespace fetchd::testing

int main(int argc, char** argv) {
  return fetchd::testing::RunTestsInPrivateNetwork(
      argc, argv, {"/rebind.test/127.0.0.1", "/metadata.test/169.254.169.254"},
      "rebind.test");
}

// The label tables of the metric contract and the mapping onto them.
#include "service/metrics/labels.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace fetchd::metrics {
namespace {

TEST(LabelsTest, MethodsMapOntoTheContract) {
  EXPECT_EQ(kMethodLabels[MethodLabel("GET")], "GET");
  EXPECT_EQ(kMethodLabels[MethodLabel("OPTIONS")], "OPTIONS");
  EXPECT_EQ(kMethodLabels[MethodLabel("patch")], "PATCH");
  EXPECT_EQ(kMethodLabels[MethodLabel("TRACE")], "other");
  EXPECT_EQ(kMethodLabels[MethodLabel("")], "other");
}

TEST(LabelsTest, StatusClasses) {
  const std::vector<std::pair<uint32_t, std::string>> cases = {
      {0, "none"},  {99, "none"},  {100, "1xx"}, {200, "2xx"},
      {204, "2xx"}, {302, "3xx"},  {404, "4xx"}, {503, "5xx"},
      {599, "5xx"}, {600, "none"}, {999, "none"}};
  for (const auto& [status, want] : cases) {
    EXPECT_EQ(kStatusClassLabels[StatusClassLabel(status)], want) << status;
  }
}

TEST(LabelsTest, OutcomesAreTheContractNames) {
  // The exact list of the metric contract (README.md, "Metrics").
  const std::vector<std::string> want = {"ok",
                                         "invalid_request",
                                         "dns",
                                         "connect",
                                         "tls",
                                         "connect_timeout",
                                         "total_timeout",
                                         "read_timeout",
                                         "queue_timeout",
                                         "too_many_redirects",
                                         "body_too_large",
                                         "http_status",
                                         "denied",
                                         "cancelled",
                                         "protocol",
                                         "internal",
                                         "deadline_exceeded",
                                         "circuit_open"};
  ASSERT_EQ(kOutcomes, want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(OutcomeName(OutcomeLabel(static_cast<fetch::v1::ErrorKind>(i))),
              want[i]);
  }
  EXPECT_EQ(OutcomeName(OutcomeLabel(static_cast<fetch::v1::ErrorKind>(99))),
            "internal");
}

TEST(LabelsTest, HostsOutsideTheAllowListAreOther) {
  const HostLabels hosts(
      {"api.example.com", "Cdn.Example.com", "api.example.com"});
  ASSERT_EQ(hosts.size(), 3u);  // duplicates ignored, "other" last
  EXPECT_EQ(hosts.Name(hosts.Index("https://api.example.com:443")),
            "api.example.com");
  EXPECT_EQ(hosts.Name(hosts.Index("http://cdn.example.com:80")),
            "cdn.example.com");
  EXPECT_EQ(hosts.Name(hosts.Index("https://evil.example.com:443")), "other");
  EXPECT_EQ(hosts.Name(hosts.Index("")), "other");
  EXPECT_EQ(hosts.Name(hosts.Index("garbage")), "other");
  EXPECT_EQ(hosts.Name(hosts.Index("http://:80")), "other");
}

TEST(LabelsTest, EmptyAllowListMakesEveryHostOther) {
  const HostLabels hosts({});
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts.Name(hosts.Index("https://api.example.com:443")), "other");
}

}  // namespace
}  // namespace fetchd::metrics

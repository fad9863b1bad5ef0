// The metrics part of the server config: defaults, the JSON file, and the
// validation rules (each error names the field).
#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/server_config.h"

namespace fetchd::config {
namespace {

using ::testing::HasSubstr;

TEST(MetricsConfigTest, Defaults) {
  const fetch::v1::ServerConfig config = DefaultServerConfig();
  EXPECT_EQ(config.metrics().listen(), "127.0.0.1:9464");
  EXPECT_EQ(config.metrics().host_labels_size(), 0);
  EXPECT_EQ(config.metrics().access_log_sample_rate(), 0);
  EXPECT_TRUE(ValidateServerConfig(config).ok());
}

TEST(MetricsConfigTest, FromJson) {
  const auto config = MergeJsonConfig(DefaultServerConfig(),
                                      R"({"metrics": {"listen": "0.0.0.0:0",
                      "hostLabels": ["api.example.com"],
                      "accessLogSampleRate": 0.25}})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->metrics().listen(), "0.0.0.0:0");
  ASSERT_EQ(config->metrics().host_labels_size(), 1);
  EXPECT_EQ(config->metrics().host_labels(0), "api.example.com");
  EXPECT_EQ(config->metrics().access_log_sample_rate(), 0.25);
  EXPECT_TRUE(ValidateServerConfig(*config).ok());
}

TEST(MetricsConfigTest, ListenMustBeHostAndPort) {
  for (const std::string listen :
       {"", "9464", ":9464", "localhost", "localhost:", "localhost:http",
        "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:1,127.0.0.1:2",
        "127.0.0.1: 80"}) {
    fetch::v1::ServerConfig config = DefaultServerConfig();
    config.mutable_metrics()->set_listen(listen);
    const absl::Status status = ValidateServerConfig(config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << listen;
    EXPECT_THAT(status.message(), HasSubstr("metrics.listen")) << listen;
  }
  for (const std::string listen :
       {"127.0.0.1:0", "0.0.0.0:9464", "localhost:65535"}) {
    fetch::v1::ServerConfig config = DefaultServerConfig();
    config.mutable_metrics()->set_listen(listen);
    EXPECT_TRUE(ValidateServerConfig(config).ok()) << listen;
  }
}

TEST(MetricsConfigTest, SampleRateIsAProbability) {
  for (const double rate :
       {-0.01, 1.01, 100.0, std::numeric_limits<double>::quiet_NaN(),
        std::numeric_limits<double>::infinity()}) {
    fetch::v1::ServerConfig config = DefaultServerConfig();
    config.mutable_metrics()->set_access_log_sample_rate(rate);
    const absl::Status status = ValidateServerConfig(config);
    EXPECT_THAT(status.message(),
                HasSubstr("metrics.access_log_sample_rate: must be between 0 "
                          "and 1"))
        << rate;
  }
  for (const double rate : {0.0, 0.001, 1.0}) {
    fetch::v1::ServerConfig config = DefaultServerConfig();
    config.mutable_metrics()->set_access_log_sample_rate(rate);
    EXPECT_TRUE(ValidateServerConfig(config).ok()) << rate;
  }
}

TEST(MetricsConfigTest, HostLabelsArePlainNamesAndFew) {
  for (const std::string name :
       {"", "other", "a/b", "a b", "user@host", "h?q"}) {
    fetch::v1::ServerConfig config = DefaultServerConfig();
    config.mutable_metrics()->add_host_labels(name);
    EXPECT_THAT(ValidateServerConfig(config).message(),
                HasSubstr("metrics.host_labels"))
        << name;
  }
  fetch::v1::ServerConfig config = DefaultServerConfig();
  for (int i = 0; i < 100; ++i) {
    config.mutable_metrics()->add_host_labels("h" + std::to_string(i));
  }
  EXPECT_TRUE(ValidateServerConfig(config).ok());
  config.mutable_metrics()->add_host_labels("one-too-many");
  EXPECT_THAT(ValidateServerConfig(config).message(),
              HasSubstr("metrics.host_labels: at most 100 names, got 101"));
}

}  // namespace
}  // namespace fetchd::config

// ServerConfig.limiter: the issue's JSON, defaults, and the errors of bad
// values (each naming the field and the rule).
#include "service/config/limiter_config.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/server_config.h"

namespace fetchd::config {
namespace {

using ::fetch::v1::ServerConfig;
using ::testing::HasSubstr;

ServerConfig WithJson(const std::string& json) {
  absl::StatusOr<ServerConfig> config =
      MergeJsonConfig(DefaultServerConfig(), json);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ServerConfig();
}

std::string ErrorOf(const std::string& json) {
  const absl::Status status = ValidateServerConfig(WithJson(json));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

TEST(LimiterConfigTest, LocalIsTheDefault) {
  absl::StatusOr<std::optional<cluster::LimiterOptions>> limiter =
      LimiterFromConfig(DefaultServerConfig());
  ASSERT_TRUE(limiter.ok());
  EXPECT_FALSE(limiter->has_value());
  limiter = LimiterFromConfig(WithJson(R"({"limiter": {"mode": "LOCAL"}})"));
  ASSERT_TRUE(limiter.ok());
  EXPECT_FALSE(limiter->has_value());
}

TEST(LimiterConfigTest, TheIssuesExampleParsesWithDefaults) {
  setenv("POD_NAME", "fetchd-7d9f-abcde", 1);
  const ServerConfig config = WithJson(
      R"({"limiter": {"mode": "REDIS", "redis": {"address": "127.0.0.1:6379"},
          "expected_replicas": 3}})");
  ASSERT_TRUE(ValidateServerConfig(config).ok());
  absl::StatusOr<std::optional<cluster::LimiterOptions>> limiter =
      LimiterFromConfig(config);
  unsetenv("POD_NAME");
  ASSERT_TRUE(limiter.ok()) << limiter.status();
  ASSERT_TRUE(limiter->has_value());
  const cluster::LimiterOptions& o = **limiter;
  EXPECT_EQ(o.redis.host, "127.0.0.1");
  EXPECT_EQ(o.redis.port, 6379);
  EXPECT_EQ(o.expected_replicas, 3);
  EXPECT_EQ(o.replica_id, "fetchd-7d9f-abcde");
  EXPECT_EQ(o.key_prefix, "fetchd:");
  EXPECT_EQ(o.lease_ttl, absl::Seconds(10));
  EXPECT_EQ(o.command_timeout, absl::Milliseconds(50));
  EXPECT_EQ(o.on_failure, cluster::FailurePolicy::kDegraded);
}

TEST(LimiterConfigTest, EveryFieldIsRead) {
  const ServerConfig config = WithJson(R"({"limiter": {
      "mode": "REDIS",
      "redis": {"address": "unix:/run/redis/redis.sock",
                "connect_timeout": "0.2s", "command_timeout": "0.02s",
                "key_prefix": "crawl:"},
      "replica_id": "r1", "expected_replicas": 5, "lease_ttl": "6s",
      "sync_interval": "0.1s", "rate_horizon": "1s", "idle_release": "0.5s",
      "on_redis_failure": "FAIL_CLOSED"}})");
  absl::StatusOr<std::optional<cluster::LimiterOptions>> limiter =
      LimiterFromConfig(config);
  ASSERT_TRUE(limiter.ok()) << limiter.status();
  const cluster::LimiterOptions& o = **limiter;
  EXPECT_EQ(o.redis.unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(o.connect_timeout, absl::Milliseconds(200));
  EXPECT_EQ(o.command_timeout, absl::Milliseconds(20));
  EXPECT_EQ(o.key_prefix, "crawl:");
  EXPECT_EQ(o.replica_id, "r1");
  EXPECT_EQ(o.expected_replicas, 5);
  EXPECT_EQ(o.lease_ttl, absl::Seconds(6));
  EXPECT_EQ(o.sync_interval, absl::Milliseconds(100));
  EXPECT_EQ(o.rate_horizon, absl::Seconds(1));
  EXPECT_EQ(o.idle_release, absl::Milliseconds(500));
  EXPECT_EQ(o.on_failure, cluster::FailurePolicy::kFailClosed);
}

TEST(LimiterConfigTest, BadValuesNameTheFieldAndTheRule) {
  EXPECT_THAT(ErrorOf(R"({"limiter": {"mode": "REDIS"}})"),
              HasSubstr("limiter.redis.address: is required with mode REDIS"));
  EXPECT_THAT(
      ErrorOf(R"({"limiter": {"mode": "REDIS", "redis": {"address": "x"}}})"),
      HasSubstr("limiter.redis.address: must be host:port or unix:PATH"));
  EXPECT_THAT(ErrorOf(R"({"limiter": {"mode": "REDIS",
      "redis": {"address": "h:1", "command_timeout": "10s"}}})"),
              HasSubstr("limiter.redis.command_timeout: must be between 1ms "
                        "and 5s, got 10s"));
  EXPECT_THAT(ErrorOf(R"({"limiter": {"mode": "REDIS",
      "redis": {"address": "h:1"}, "lease_ttl": "0.5s"}})"),
              HasSubstr("limiter.lease_ttl: must be between 1s and 10m"));
  EXPECT_THAT(ErrorOf(R"({"limiter": {"mode": "REDIS",
      "redis": {"address": "h:1"}, "lease_ttl": "3s",
      "sync_interval": "2s"}})"),
              HasSubstr("limiter.sync_interval: must be between 10ms and 1s"));
  EXPECT_THAT(ErrorOf(R"({"limiter": {"mode": "REDIS",
      "redis": {"address": "h:1", "key_prefix": "a{b}"}}})"),
              HasSubstr("limiter.redis.key_prefix: must not contain { or }"));
  EXPECT_THAT(ErrorOf(R"({"limiter": {"mode": "REDIS",
      "redis": {"address": "h:1"}, "replica_id": "a:b"}})"),
              HasSubstr("limiter.replica_id: must not contain ':'"));
}

TEST(LimiterConfigTest, ThePasswordFileIsReadWithoutItsNewline) {
  const std::string path = ::testing::TempDir() + "/redis_password";
  std::ofstream(path) << "s3cret\n";
  ServerConfig config = WithJson(R"({"limiter": {"mode": "REDIS",
      "redis": {"address": "h:1"}}})");
  config.mutable_limiter()->mutable_redis()->set_password_file(path);
  absl::StatusOr<std::string> password = ReadRedisPassword(config);
  ASSERT_TRUE(password.ok());
  EXPECT_EQ(*password, "s3cret");
  config.mutable_limiter()->mutable_redis()->set_password_file(path + ".none");
  EXPECT_THAT(ReadRedisPassword(config).status().message(),
              HasSubstr("limiter.redis.password_file: cannot read"));
}

}  // namespace
}  // namespace fetchd::config

// ServerConfig.politeness to the engine's RuleSet and pause: the JSON of the
// issue parses to the rule it describes, unset fields inherit the default
// rule's (whose concurrency is limits.max_per_host), and every bad value is
// a start-up error naming the rule and the field.
#include "service/config/politeness_config.h"

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

using fetch::v1::ServerConfig;
using ::testing::HasSubstr;

ServerConfig WithJson(const std::string& json) {
  absl::StatusOr<ServerConfig> merged =
      MergeJsonConfig(DefaultServerConfig(), json);
  EXPECT_TRUE(merged.ok()) << merged.status();
  return merged.ok() ? *merged : DefaultServerConfig();
}

// The message of the start-up validation of `json`; empty when valid.
std::string Error(const std::string& json) {
  const absl::Status status = ValidateServerConfig(WithJson(json));
  return std::string(status.message());
}

TEST(PolitenessConfigTest, TheIssuesExampleParsesToItsRule) {
  const ServerConfig config = WithJson(R"({"politeness": {"rules": [
      {"name": "api", "hosts": ["api.example.com"], "rate": 10, "burst": 1,
       "min_delay": "0.2s",
       "breaker": {"consecutive_failures": 3, "base_open_time": "5s"}}]}})");
  ASSERT_TRUE(ValidateServerConfig(config).ok());
  absl::StatusOr<std::shared_ptr<const core::politeness::RuleSet>> rules =
      PolitenessRules(config);
  ASSERT_TRUE(rules.ok()) << rules.status();
  const core::politeness::HostRule& api =
      (*rules)->Match("https", "api.example.com", 443);
  EXPECT_EQ(api.name, "api");
  EXPECT_EQ(api.rate, 10);
  EXPECT_EQ(api.burst, 1);
  EXPECT_EQ(api.min_delay, absl::Milliseconds(200));
  EXPECT_EQ(api.breaker.consecutive_failures, 3);
  EXPECT_EQ(api.breaker.base_open_time, absl::Seconds(5));
  // Unset: the default rule's.
  EXPECT_EQ(api.max_concurrency, 16);
  EXPECT_EQ(api.max_queue, 100000);  // limits.max_pending
  EXPECT_EQ(api.breaker.max_open_time, absl::Minutes(5));
  EXPECT_DOUBLE_EQ(api.retry_budget.ratio, 0.2);
  EXPECT_EQ(api.retry_budget.min_retry_concurrency, 10);
  EXPECT_FALSE(api.adaptive);
  // Another host gets the default rule: max_per_host, no rate, no breaker.
  const core::politeness::HostRule& other =
      (*rules)->Match("https", "www.example.com", 443);
  EXPECT_EQ(other.name, "default");
  EXPECT_EQ(other.rate, 0);
  EXPECT_EQ(other.breaker.consecutive_failures, 0);
}

TEST(PolitenessConfigTest, RulesInheritTheDefaultRulesValues) {
  ServerConfig config = WithJson(R"({"politeness": {
      "default": {"rate": 5, "burst": 2, "max_queue": 7,
                  "retry_budget": {"ratio": 0.5}},
      "rules": [{"name": "slow", "hosts": ["*.slow.test"], "rate": 0.5}]}})");
  config.mutable_limits()->set_max_per_host(3);  // --max_per_host=3
  absl::StatusOr<std::shared_ptr<const core::politeness::RuleSet>> rules =
      PolitenessRules(config);
  ASSERT_TRUE(rules.ok()) << rules.status();
  const core::politeness::HostRule& slow =
      (*rules)->Match("http", "a.slow.test", 80);
  EXPECT_EQ(slow.name, "slow");
  EXPECT_EQ(slow.rate, 0.5);
  EXPECT_EQ(slow.burst, 2);
  EXPECT_EQ(slow.max_queue, 7);
  EXPECT_EQ(slow.max_concurrency, 3);
  EXPECT_DOUBLE_EQ(slow.retry_budget.ratio, 0.5);
  // The bare suffix is not a subdomain.
  EXPECT_EQ((*rules)->Match("http", "slow.test", 80).name, "default");
  EXPECT_EQ((*rules)->Match("http", "slow.test", 80).max_concurrency, 3);
}

TEST(PolitenessConfigTest, AnExplicitZeroIsKeptNotDefaulted) {
  const ServerConfig config = WithJson(R"({"politeness": {"rules": [
      {"name": "nowait", "hosts": ["a.test"], "max_queue": 0,
       "retry_budget": {"min_retry_concurrency": 0, "ratio": 0}}]}})");
  absl::StatusOr<std::shared_ptr<const core::politeness::RuleSet>> rules =
      PolitenessRules(config);
  ASSERT_TRUE(rules.ok()) << rules.status();
  const core::politeness::HostRule& rule =
      (*rules)->Match("http", "a.test", 80);
  EXPECT_EQ(rule.max_queue, 0);
  EXPECT_EQ(rule.retry_budget.min_retry_concurrency, 0);
  EXPECT_EQ(rule.retry_budget.ratio, 0);
}

TEST(PolitenessConfigTest, BadRulesAreStartUpErrorsNamingTheRuleAndField) {
  EXPECT_EQ(Error(R"({"politeness": {"rules": [{"name": "neg",
      "hosts": ["a.test"], "rate": -1}]}})"),
            "politeness.rules[0] \"neg\": rate: must be a number >= 0 "
            "(0: unlimited)");
  EXPECT_THAT(Error(R"({"politeness": {"rules": [{"name": "zero",
      "hosts": ["a.test"], "rate": 3, "burst": 0}]}})"),
              HasSubstr("politeness.rules[0] \"zero\": burst:"));
  // Overlap: the second rule's pattern is covered by the first's.
  EXPECT_THAT(Error(R"({"politeness": {"rules": [
      {"name": "all", "hosts": ["*.example.com"]},
      {"name": "api", "hosts": ["api.example.com"]}]}})"),
              HasSubstr("politeness.rules[1] \"api\": hosts[0]"));
  EXPECT_THAT(Error(R"({"politeness": {"rules": [
      {"name": "bad", "hosts": ["exa mple.com"]}]}})"),
              HasSubstr("politeness.rules[0] \"bad\": hosts[0]"));
  EXPECT_THAT(Error(R"({"politeness": {"rules": [
      {"name": "", "hosts": ["a.test"]}]}})"),
              HasSubstr("politeness.rules[0]"));
  EXPECT_THAT(Error(R"({"politeness": {"default": {"max_concurrency": 0}}})"),
              HasSubstr("politeness.default: max_concurrency:"));
  EXPECT_THAT(Error(R"({"politeness": {"default":
      {"breaker": {"base_open_time": "10s", "max_open_time": "1s"}}}})"),
              HasSubstr("politeness.default: breaker.max_open_time:"));
  EXPECT_THAT(Error(R"({"politeness": {"rules": [{"name": "d",
      "hosts": ["a.test"], "min_delay": "-1s"}]}})"),
              HasSubstr("politeness.rules[0] \"d\": min_delay:"));
  EXPECT_EQ(Error(R"({"politeness": {"pause": {"base_pause": "0s"}}})"),
            "politeness.pause.base_pause: must be > 0");
  EXPECT_EQ(
      Error(R"({"politeness": {"pause": {"consecutive_throttles": -2}}})"),
      "politeness.pause.consecutive_throttles: must be >= 0");
}

TEST(PolitenessConfigTest, ThePauseDefaultsAndItsSettings) {
  absl::StatusOr<core::politeness::HostBackoffConfig> pause =
      PolitenessPause(DefaultServerConfig());
  ASSERT_TRUE(pause.ok());
  EXPECT_EQ(pause->max_retry_after, absl::Seconds(60));
  EXPECT_EQ(pause->consecutive_throttles, 3);
  pause = PolitenessPause(WithJson(R"({"politeness": {"pause": {
      "max_retry_after": "10s", "consecutive_throttles": 0,
      "base_pause": "2s", "max_pause": "8s"}}})"));
  ASSERT_TRUE(pause.ok()) << pause.status();
  EXPECT_EQ(pause->max_retry_after, absl::Seconds(10));
  EXPECT_EQ(pause->consecutive_throttles, 0);
  EXPECT_EQ(pause->base_pause, absl::Seconds(2));
  EXPECT_EQ(pause->max_pause, absl::Seconds(8));
}

}  // namespace
}  // namespace fetchd::config

#include "service/core/politeness/rule_set.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/core/politeness/host_pattern.h"
#include "service/core/politeness/rule.h"

namespace fetchd::core::politeness {
namespace {

using ::testing::HasSubstr;

HostRule Rule(std::string name, std::vector<std::string> hosts) {
  HostRule rule;
  rule.name = std::move(name);
  rule.hosts = std::move(hosts);
  return rule;
}

bool PatternMatches(const std::string& pattern, const std::string& scheme,
                    const std::string& host, int port) {
  absl::StatusOr<HostPattern> parsed = HostPattern::Parse(pattern);
  EXPECT_TRUE(parsed.ok()) << pattern << ": " << parsed.status();
  return parsed.ok() && parsed->Matches(scheme, host, port);
}

TEST(HostPatternTest, ExactHostMatchesAnySchemeAndPortOnlyThatHost) {
  EXPECT_TRUE(
      PatternMatches("api.example.com", "https", "api.example.com", 443));
  EXPECT_TRUE(
      PatternMatches("api.example.com", "http", "api.example.com", 8080));
  EXPECT_FALSE(
      PatternMatches("api.example.com", "https", "x.api.example.com", 443));
  EXPECT_FALSE(PatternMatches("api.example.com", "https", "example.com", 443));
  // Patterns are case-insensitive; hosts arrive lower-case.
  EXPECT_TRUE(
      PatternMatches("API.Example.COM", "https", "api.example.com", 443));
}

TEST(HostPatternTest, WildcardMatchesSubdomainsButNotTheBareSuffix) {
  EXPECT_TRUE(PatternMatches("*.example.com", "https", "a.example.com", 443));
  EXPECT_TRUE(PatternMatches("*.example.com", "https", "a.b.example.com", 443));
  EXPECT_FALSE(PatternMatches("*.example.com", "https", "example.com", 443));
  EXPECT_FALSE(PatternMatches("*.example.com", "https", "badexample.com", 443));
  EXPECT_FALSE(
      PatternMatches("*.example.com", "https", "example.com.evil", 443));
}

TEST(HostPatternTest, SchemeHostPortMatchesOnlyThatOrigin) {
  EXPECT_TRUE(PatternMatches("https://api.example.com:8443", "https",
                             "api.example.com", 8443));
  EXPECT_FALSE(PatternMatches("https://api.example.com:8443", "https",
                              "api.example.com", 443));
  EXPECT_FALSE(PatternMatches("https://api.example.com:8443", "http",
                              "api.example.com", 8443));
  // Without a port: the scheme's default.
  EXPECT_TRUE(PatternMatches("https://api.example.com", "https",
                             "api.example.com", 443));
  EXPECT_FALSE(PatternMatches("https://api.example.com", "https",
                              "api.example.com", 8443));
  EXPECT_TRUE(
      PatternMatches("http://*.example.com", "http", "a.example.com", 80));
  EXPECT_FALSE(
      PatternMatches("http://*.example.com", "https", "a.example.com", 443));
  EXPECT_TRUE(PatternMatches("http://[::1]:8080", "http", "[::1]", 8080));
  EXPECT_TRUE(PatternMatches("[2001:db8::1]", "https", "[2001:db8::1]", 443));
}

TEST(HostPatternTest, InvalidPatternsSayWhy) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty pattern"},
      {"*", "'*' may only be a whole first label"},
      {"a.*.com", "'*' may only be a whole first label"},
      {"*example.com", "'*' may only be a whole first label"},
      {"a..com", "empty label"},
      {"example.com.", "empty label"},
      {".example.com", "empty label"},
      {"*.", "empty host"},
      {"exa mple.com", "is not allowed in a host name"},
      {"example.com:8080", "a port needs a scheme"},
      {"https://example.com/path", "not a URL"},
      {"ftp://example.com", "scheme must be http or https"},
      {"https://example.com:0", "port must be 1..65535"},
      {"https://example.com:65536", "port must be 1..65535"},
      {"https://example.com:", "port must be 1..65535"},
      {"[::1", "unclosed '['"},
      {"[zz]", "brackets hold an IPv6 address"},
  };
  for (const auto& [text, why] : cases) {
    absl::StatusOr<HostPattern> parsed = HostPattern::Parse(text);
    ASSERT_FALSE(parsed.ok()) << "\"" << text << "\" parsed";
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr(why)) << text;
  }
}

TEST(HostKeyTest, SplitsSchemeHostAndPort) {
  std::optional<HostKeyParts> parts = SplitHostKey("https://a.test:8443");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->scheme, "https");
  EXPECT_EQ(parts->host, "a.test");
  EXPECT_EQ(parts->port, 8443);
  parts = SplitHostKey("http://[::1]:80");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->host, "[::1]");
  EXPECT_EQ(parts->port, 80);
  EXPECT_FALSE(SplitHostKey("a.test:80").has_value());
  EXPECT_FALSE(SplitHostKey("http://a.test").has_value());
  EXPECT_FALSE(SplitHostKey("http://a.test:x").has_value());
  EXPECT_FALSE(SplitHostKey("http://:80").has_value());
}

TEST(RuleSetTest, FirstMatchWinsAndUnmatchedHostsGetTheDefault) {
  HostRule fallback;
  fallback.max_concurrency = 4;
  absl::StatusOr<RuleSet> rules = RuleSet::Create(
      fallback,
      {Rule("api-tls", {"https://api.example.com:8443"}),
       Rule("api", {"api.example.com"}),
       Rule("example", {"*.example.com", "example.com"}),
       Rule("deep", {"*.b.other.org"}), Rule("other", {"*.other.org"})});
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ(rules->MatchKey("https://api.example.com:8443").name, "api-tls");
  EXPECT_EQ(rules->MatchKey("https://api.example.com:443").name, "api");
  EXPECT_EQ(rules->MatchKey("http://api.example.com:8443").name, "api");
  EXPECT_EQ(rules->MatchKey("https://www.example.com:443").name, "example");
  EXPECT_EQ(rules->MatchKey("https://example.com:443").name, "example");
  EXPECT_EQ(rules->MatchKey("https://a.b.other.org:443").name, "deep");
  EXPECT_EQ(rules->MatchKey("https://b.other.org:443").name, "other");
  EXPECT_EQ(rules->MatchKey("https://a.c.other.org:443").name, "other");
  EXPECT_EQ(rules->Match("https", "unknown.test", 443).name, "default");
  EXPECT_EQ(rules->Match("https", "unknown.test", 443).max_concurrency, 4);
  EXPECT_EQ(rules->MatchKey("not a key").name, "default");
  EXPECT_EQ(rules->size(), 6u);
  EXPECT_EQ(rules->MatchKeyIndex("https://nowhere.test:1"),
            rules->default_index());
  EXPECT_EQ(rules->MatchKeyIndex("https://x.other.org:443"), 4u);
}

TEST(RuleSetTest, LaterRuleWinsWhereTheEarlierDoesNotMatch) {
  // The wildcard comes after an exact rule for its sub-host: both match
  // api.example.com, the earlier one wins; the wildcard keeps the rest.
  absl::StatusOr<RuleSet> rules = RuleSet::Create(
      HostRule{},
      {Rule("exact", {"api.example.com"}), Rule("wild", {"*.example.com"})});
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ(rules->MatchKey("https://api.example.com:443").name, "exact");
  EXPECT_EQ(rules->MatchKey("https://www.example.com:443").name, "wild");
}

TEST(RuleSetTest, DefaultOnlySet) {
  RuleSet rules;
  EXPECT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules.MatchKey("https://a.test:443").name, "default");
  EXPECT_EQ(rules.MatchKey("https://a.test:443").max_concurrency, 16);
}

// One bad setting per case; each must fail with a message that names the
// rule and the field.
struct BadConfig {
  std::string what;
  std::function<void(HostRule& fallback, std::vector<HostRule>& rules)> edit;
  std::string message;
};

TEST(RuleSetTest, ValidationNamesTheRuleAndTheField) {
  const std::vector<BadConfig> cases = {
      {"negative rate",
       [](HostRule&, std::vector<HostRule>& r) { r[1].rate = -1; },
       "politeness.rules[1] \"web\": rate: must be a number >= 0"},
      {"NaN rate",
       [](HostRule&, std::vector<HostRule>& r) { r[0].rate = std::nan(""); },
       "politeness.rules[0] \"api\": rate: must be a number >= 0"},
      {"burst 0 with a rate",
       [](HostRule&, std::vector<HostRule>& r) {
         r[0].rate = 10;
         r[0].burst = 0;
       },
       "politeness.rules[0] \"api\": burst: must be >= 1 when rate > 0"},
      {"negative burst",
       [](HostRule&, std::vector<HostRule>& r) { r[0].burst = -1; },
       "politeness.rules[0] \"api\": burst: must be >= 0"},
      {"zero concurrency",
       [](HostRule&, std::vector<HostRule>& r) { r[1].max_concurrency = 0; },
       "politeness.rules[1] \"web\": max_concurrency: must be >= 1"},
      {"negative min_delay",
       [](HostRule&, std::vector<HostRule>& r) {
         r[1].min_delay = absl::Milliseconds(-1);
       },
       "politeness.rules[1] \"web\": min_delay: must be >= 0"},
      {"negative max_queue",
       [](HostRule&, std::vector<HostRule>& r) { r[1].max_queue = -1; },
       "politeness.rules[1] \"web\": max_queue: must be >= 0"},
      {"negative breaker threshold",
       [](HostRule&, std::vector<HostRule>& r) {
         r[0].breaker.consecutive_failures = -1;
       },
       "politeness.rules[0] \"api\": breaker.consecutive_failures: must be "
       ">= 0"},
      {"negative open time",
       [](HostRule&, std::vector<HostRule>& r) {
         r[0].breaker.base_open_time = absl::Seconds(-5);
       },
       "politeness.rules[0] \"api\": breaker.base_open_time: must be > 0"},
      {"max open time below base",
       [](HostRule&, std::vector<HostRule>& r) {
         r[0].breaker.base_open_time = absl::Seconds(10);
         r[0].breaker.max_open_time = absl::Seconds(5);
       },
       "politeness.rules[0] \"api\": breaker.max_open_time: must be >= "
       "breaker.base_open_time (10s)"},
      {"no probes",
       [](HostRule&, std::vector<HostRule>& r) {
         r[0].breaker.half_open_probes = 0;
       },
       "politeness.rules[0] \"api\": breaker.half_open_probes: must be >= 1"},
      {"ratio over 1",
       [](HostRule&, std::vector<HostRule>& r) {
         r[1].retry_budget.ratio = 1.5;
       },
       "politeness.rules[1] \"web\": retry_budget.ratio: must be in [0, 1]"},
      {"negative ratio",
       [](HostRule&, std::vector<HostRule>& r) {
         r[1].retry_budget.ratio = -0.1;
       },
       "politeness.rules[1] \"web\": retry_budget.ratio: must be in [0, 1]"},
      {"negative budget floor",
       [](HostRule&, std::vector<HostRule>& r) {
         r[1].retry_budget.min_retry_concurrency = -1;
       },
       "politeness.rules[1] \"web\": retry_budget.min_retry_concurrency: "
       "must be >= 0"},
      {"bad default", [](HostRule& d, std::vector<HostRule>&) { d.rate = -2; },
       "politeness.default: rate: must be a number >= 0"},
      {"default with patterns",
       [](HostRule& d, std::vector<HostRule>&) { d.hosts = {"a.test"}; },
       "politeness.default: hosts: the default rule is for hosts no rule "
       "matches"},
      {"empty name",
       [](HostRule&, std::vector<HostRule>& r) { r[1].name = ""; },
       "politeness.rules[1] \"\": name: must not be empty"},
      {"duplicate name",
       [](HostRule&, std::vector<HostRule>& r) { r[1].name = "api"; },
       "politeness.rules[1] \"api\": name: is also the name of "
       "politeness.rules[0] \"api\""},
      {"the default's name",
       [](HostRule&, std::vector<HostRule>& r) { r[1].name = "default"; },
       "politeness.rules[1] \"default\": name: is the default rule's name"},
      {"no patterns",
       [](HostRule&, std::vector<HostRule>& r) { r[1].hosts.clear(); },
       "politeness.rules[1] \"web\": hosts: must list at least one pattern"},
      {"invalid pattern",
       [](HostRule&, std::vector<HostRule>& r) {
         r[1].hosts.push_back("a..b");
       },
       "politeness.rules[1] \"web\": hosts[1] \"a..b\": empty label"},
      {"empty pattern",
       [](HostRule&, std::vector<HostRule>& r) { r[0].hosts[0] = ""; },
       "politeness.rules[0] \"api\": hosts[0] \"\": empty pattern"},
      {"pattern twice in a rule",
       [](HostRule&, std::vector<HostRule>& r) {
         r[1].hosts.push_back("WWW.example.org");
       },
       "politeness.rules[1] \"web\": hosts[1] \"WWW.example.org\": listed "
       "twice (hosts[0])"},
      {"same pattern in two rules",
       [](HostRule&, std::vector<HostRule>& r) {
         r[1].hosts.push_back("api.example.com");
       },
       "politeness.rules[1] \"web\": hosts[1] \"api.example.com\": never "
       "matches: politeness.rules[0] \"api\" hosts[0] \"api.example.com\" "
       "covers it"},
      {"shadowed by an earlier wildcard",
       [](HostRule&, std::vector<HostRule>& r) {
         r[0].hosts.push_back("*.example.org");
       },
       "politeness.rules[1] \"web\": hosts[0] \"www.example.org\": never "
       "matches: politeness.rules[0] \"api\" hosts[1] \"*.example.org\" "
       "covers it"},
      {"wildcard shadowed by a wider one",
       [](HostRule&, std::vector<HostRule>& r) {
         r[0].hosts.push_back("*.org");
         r[1].hosts[0] = "https://*.example.org:8443";
       },
       "politeness.rules[1] \"web\": hosts[0] "
       "\"https://*.example.org:8443\": never matches"},
  };
  for (const BadConfig& c : cases) {
    HostRule fallback;
    std::vector<HostRule> rules = {Rule("api", {"api.example.com"}),
                                   Rule("web", {"www.example.org"})};
    // The unedited config is valid, so the edit is what fails.
    ASSERT_TRUE(RuleSet::Create(fallback, rules).ok());
    c.edit(fallback, rules);
    absl::StatusOr<RuleSet> set = RuleSet::Create(fallback, rules);
    ASSERT_FALSE(set.ok()) << c.what;
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument)
        << c.what;
    EXPECT_THAT(set.status().message(), HasSubstr(c.message)) << c.what;
  }
}

TEST(RuleSetTest, OverlapThatCanStillMatchIsAllowed) {
  // Specific first, general later: each pattern still matches something.
  EXPECT_TRUE(RuleSet::Create(HostRule{},
                              {Rule("tls", {"https://api.example.com:8443"}),
                               Rule("api", {"api.example.com"}),
                               Rule("sub", {"*.api.example.com"}),
                               Rule("all", {"*.example.com"})})
                  .ok());
  // A scheme-specific pattern does not cover the scheme-less one.
  EXPECT_TRUE(
      RuleSet::Create(HostRule{}, {Rule("tls", {"https://*.example.com"}),
                                   Rule("all", {"*.example.com"})})
          .ok());
}

TEST(StricterTest, NeverLooserThanTheServer) {
  HostRule server;
  server.max_concurrency = 8;
  server.rate = 10;
  server.burst = 3;

  HostRule lower = Stricter(server, BatchAsk{2, 2.5});
  EXPECT_EQ(lower.max_concurrency, 2);
  EXPECT_EQ(lower.rate, 2.5);
  EXPECT_EQ(lower.burst, 3);

  HostRule higher = Stricter(server, BatchAsk{100, 50});
  EXPECT_EQ(higher.max_concurrency, 8);
  EXPECT_EQ(higher.rate, 10);

  HostRule none = Stricter(server, BatchAsk{});
  EXPECT_EQ(none.max_concurrency, 8);
  EXPECT_EQ(none.rate, 10);

  // The server has no rate limit: any rate asked for is stricter.
  HostRule unlimited;
  unlimited.rate = 0;
  unlimited.burst = 0;
  HostRule asked = Stricter(unlimited, BatchAsk{0, 5});
  EXPECT_EQ(asked.rate, 5);
  EXPECT_EQ(asked.burst, 1);
  EXPECT_EQ(asked.max_concurrency, unlimited.max_concurrency);
}

}  // namespace
}  // namespace fetchd::core::politeness

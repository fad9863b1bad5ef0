// DestinationGate: one check for URLs, redirect hops, connections and
// WebSockets; typed denials whose messages name the rule and, for the
// built-in rules, the way out. Pure: no DNS, no network.
#include "service/policy/destination_gate.h"

#include <memory>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/policy/address_policy.h"

namespace fetchd::policy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

DestinationGate DefaultGate() {
  absl::StatusOr<AddressPolicy> policy =
      AddressPolicy::Create(AddressPolicy::Options());
  EXPECT_TRUE(policy.ok()) << policy.status();
  return DestinationGate(
      std::make_shared<const AddressPolicy>(*std::move(policy)));
}

TEST(DestinationGateTest, TargetsPassOrAreDeniedWithTheirCategory) {
  const DestinationGate gate = DefaultGate();
  const struct {
    std::string scheme, host;
    uint16_t port;
    std::optional<std::string> category;
  } cases[] = {
      {"https", "example.org", 443, std::nullopt},
      {"wss", "example.org", 443, std::nullopt},
      {"ftp", "example.org", 21, "scheme"},
      {"http", "127.0.0.1", 80, "loopback"},
      {"http", "[::1]", 80, "loopback"},
      {"http", "::1", 80, "loopback"},
      {"http", "169.254.169.254", 80, "link-local"},
      {"http", "localhost", 80, "host"},
      {"http", "10.1.2.3", 80, "private"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.scheme + "://" + c.host);
    const std::optional<Denial> denial =
        gate.CheckTarget("url", c.scheme, c.host, c.port, nullptr);
    ASSERT_EQ(denial.has_value(), c.category.has_value());
    if (denial.has_value()) {
      EXPECT_EQ(denial->category, *c.category);
    }
  }
}

TEST(DestinationGateTest, BuiltinDenialsNameTheWayOut) {
  const DestinationGate gate = DefaultGate();
  const std::optional<Denial> loopback =
      gate.CheckTarget("url", "http", "127.0.0.1", 8080, nullptr);
  ASSERT_TRUE(loopback.has_value());
  EXPECT_THAT(loopback->message,
              HasSubstr("url: destination 127.0.0.1:8080 denied by policy "
                        "(rule: loopback"));
  EXPECT_THAT(loopback->message, HasSubstr("--policy_allow=CIDR"));
  EXPECT_THAT(loopback->message, HasSubstr("policy.allow"));

  const std::optional<Denial> name =
      gate.CheckTarget("url", "http", "localhost", 80, nullptr);
  ASSERT_TRUE(name.has_value());
  EXPECT_THAT(name->message, HasSubstr("policy.allow_hosts"));

  const std::optional<Denial> address =
      gate.CheckAddress(*IpAddress::Parse("::1"), 443);
  ASSERT_TRUE(address.has_value());
  EXPECT_THAT(address->message, HasSubstr("destination [::1]:443 denied"));
  EXPECT_THAT(address->message, HasSubstr("--policy_allow=CIDR"));
  EXPECT_FALSE(
      gate.CheckAddress(*IpAddress::Parse("93.184.216.34"), 443).has_value());
}

TEST(DestinationGateTest, OperatorDenyRulesGiveNoWayOut) {
  AddressPolicy::Options options;
  options.deny.push_back({"93.184.216.0/24", {}});
  auto policy = AddressPolicy::Create(options);
  ASSERT_TRUE(policy.ok()) << policy.status();
  const DestinationGate gate(
      std::make_shared<const AddressPolicy>(*std::move(policy)));
  const std::optional<Denial> denial =
      gate.CheckAddress(*IpAddress::Parse("93.184.216.34"), 80);
  ASSERT_TRUE(denial.has_value());
  EXPECT_EQ(denial->category, "deny");
  EXPECT_THAT(denial->message, Not(HasSubstr("policy_allow")));
}

TEST(DestinationGateTest, CallerRuleSeesTheHostWithoutBrackets) {
  const DestinationGate gate = DefaultGate();
  std::string seen;
  const HostRule caller =
      [&seen](absl::string_view host) -> std::optional<std::string> {
    seen = std::string(host);
    if (host == "allowed.test") return std::nullopt;
    return "caller \"alice\" may not fetch host \"" + std::string(host) + "\"";
  };
  EXPECT_FALSE(gate.CheckTarget("url", "https", "allowed.test", 443, &caller)
                   .has_value());
  const std::optional<Denial> denial =
      gate.CheckTarget("url", "https", "[2001:db8::1]", 443, &caller);
  // The policy (documentation range) decides first.
  ASSERT_TRUE(denial.has_value());
  EXPECT_EQ(denial->category, "documentation");
  const std::optional<Denial> other =
      gate.CheckTarget("url", "https", "other.test", 443, &caller);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->category, "caller");
  EXPECT_EQ(other->message,
            "caller \"alice\" may not fetch host \"other.test\"");
  EXPECT_EQ(seen, "other.test");
}

TEST(DestinationGateTest, NoPolicyLetsEverythingThrough) {
  const DestinationGate gate(nullptr);
  EXPECT_FALSE(
      gate.CheckTarget("url", "http", "127.0.0.1", 80, nullptr).has_value());
  EXPECT_FALSE(
      gate.CheckAddress(*IpAddress::Parse("127.0.0.1"), 80).has_value());
  // The scheme rule holds regardless.
  EXPECT_TRUE(gate.CheckTarget("url", "file", "", 0, nullptr).has_value());
}

}  // namespace
}  // namespace fetchd::policy

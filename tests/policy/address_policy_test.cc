#include "service/policy/address_policy.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::policy {
namespace {

using ::testing::HasSubstr;

IpAddress Ip(absl::string_view text) {
  std::optional<IpAddress> addr = IpAddress::Parse(text);
  EXPECT_TRUE(addr.has_value()) << text;
  return addr.value_or(IpAddress{});
}

AddressPolicy MakePolicy(const AddressPolicy::Options& options) {
  absl::StatusOr<AddressPolicy> policy = AddressPolicy::Create(options);
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

// Options without designated initializers (GCC warns on omitted members).
AddressPolicy::Options Opts(std::vector<std::string> allow,
                            std::vector<std::string> deny = {},
                            std::vector<std::string> host_patterns = {},
                            std::vector<uint16_t> ports = {},
                            bool deny_by_default_ranges = true) {
  AddressPolicy::Options options;
  for (std::string& cidr : allow)
    options.allow.push_back({std::move(cidr), {}});
  for (std::string& cidr : deny) options.deny.push_back({std::move(cidr), {}});
  options.deny_host_patterns = std::move(host_patterns);
  options.allowed_ports = std::move(ports);
  options.deny_by_default_ranges = deny_by_default_ranges;
  return options;
}

AddressPolicy DefaultPolicy() { return MakePolicy(AddressPolicy::Options()); }

TEST(IpAddressTest, ParsesAndPrintsBothFamilies) {
  const struct {
    absl::string_view text;
    IpAddress::Family family;
    absl::string_view printed;
  } kCases[] = {
      {"127.0.0.1", IpAddress::Family::kV4, "127.0.0.1"},
      {"255.255.255.255", IpAddress::Family::kV4, "255.255.255.255"},
      {"::1", IpAddress::Family::kV6, "::1"},
      {"0:0:0:0:0:0:0:1", IpAddress::Family::kV6, "::1"},
      {"::ffff:169.254.169.254", IpAddress::Family::kV6,
       "::ffff:169.254.169.254"},
      {"2606:4700::1", IpAddress::Family::kV6, "2606:4700::1"},
      {"FE80::1", IpAddress::Family::kV6, "fe80::1"},
  };
  for (const auto& c : kCases) {
    std::optional<IpAddress> addr = IpAddress::Parse(c.text);
    ASSERT_TRUE(addr.has_value()) << c.text;
    EXPECT_EQ(addr->family, c.family) << c.text;
    EXPECT_EQ(addr->ToString(), c.printed);
  }
  EXPECT_EQ(Ip("10.1.2.3"), IpAddress::V4(10, 1, 2, 3));
}

TEST(IpAddressTest, RejectsNonCanonicalText) {
  for (absl::string_view text :
       {"", "localhost", "127.1", "0x7f000001", "2130706433", "1.2.3.4.5",
        "256.0.0.1", "[::1]", "fe80::1%eth0", " 1.2.3.4", "1.2.3.4 ",
        ":::", "1.2.3.4/8"}) {
    EXPECT_FALSE(IpAddress::Parse(text).has_value()) << text;
  }
}

// A literal's text with its embedded NULs (not its terminating one).
template <size_t N>
absl::string_view WithNul(const char (&text)[N]) {
  return absl::string_view(text, N - 1);
}

// Found by fuzz/address_fuzzer: inet_pton stopped at the NUL.
TEST(IpAddressTest, RejectsEmbeddedNul) {
  for (absl::string_view text :
       {WithNul("1::\0\0\0\0:"), WithNul("127.0.0.1\0"),
        WithNul("10.0.0.1\0.evil.example")}) {
    EXPECT_FALSE(IpAddress::Parse(text).has_value()) << absl::CHexEscape(text);
  }
  EXPECT_FALSE(Cidr::Parse(WithNul("10.0.0.0\0/8")).ok());
  EXPECT_FALSE(Cidr::Parse(WithNul("10.0.0.0/8\0")).ok());
}

TEST(CidrTest, ParsesBlocksAndBareAddresses) {
  const struct {
    absl::string_view text;
    absl::string_view printed;
    int prefix;
  } kCases[] = {
      {"10.0.0.0/8", "10.0.0.0/8", 8},
      {"0.0.0.0/0", "0.0.0.0/0", 0},
      {"127.0.0.1", "127.0.0.1/32", 32},
      {"172.16.0.0/12", "172.16.0.0/12", 12},
      {"fe80::/10", "fe80::/10", 10},
      {"::1", "::1/128", 128},
      {"::/0", "::/0", 0},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(c.text);
    ASSERT_TRUE(cidr.ok()) << c.text << ": " << cidr.status();
    EXPECT_EQ(cidr->prefix, c.prefix) << c.text;
    EXPECT_EQ(cidr->ToString(), c.printed);
  }
}

TEST(CidrTest, ErrorsNameTheTextAndTheProblem) {
  const struct {
    absl::string_view text;
    absl::string_view why;
  } kCases[] = {
      {"10.0.0.0/33", "0..32 for IPv4"},
      {"::/129", "0..128 for IPv6"},
      {"nonsense", "not an IP address"},
      {"", "not an IP address"},
      {"10.0.0.0/", "prefix length"},
      {"10.0.0.0/+8", "prefix length"},
      {"10.0.0.0/08x", "prefix length"},
      {"10.0.0.0/8/8", "prefix length"},
      {"10.0.0.1/8", "host bits set below /8"},
      {"fe80::1/10", "host bits set below /10"},
      {"10.0.0/8", "not an IP address"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(c.text);
    ASSERT_FALSE(cidr.ok()) << c.text;
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(cidr.status().message(),
                HasSubstr("\"" + std::string(c.text) + "\""));
    EXPECT_THAT(cidr.status().message(), HasSubstr(std::string(c.why)))
        << c.text;
  }
}

TEST(CidrTest, ContainsRespectsPrefixAndFamily) {
  const Cidr cidr = *Cidr::Parse("100.64.0.0/10");
  EXPECT_TRUE(cidr.Contains(Ip("100.64.0.0")));
  EXPECT_TRUE(cidr.Contains(Ip("100.127.255.255")));
  EXPECT_FALSE(cidr.Contains(Ip("100.128.0.0")));
  EXPECT_FALSE(cidr.Contains(Ip("100.63.255.255")));
  EXPECT_FALSE(cidr.Contains(Ip("::ffff:100.64.0.1")));
  EXPECT_TRUE(Cidr::Parse("0.0.0.0/0")->Contains(Ip("8.8.8.8")));
  EXPECT_FALSE(Cidr::Parse("0.0.0.0/0")->Contains(Ip("::1")));
  EXPECT_TRUE(Cidr::Parse("::/0")->Contains(Ip("2606:4700::1")));
}

// Every built-in range with its first and last address (denied) and the
// addresses just outside it (allowed, unless inside another range).
TEST(AddressPolicyTest, BuiltinRangesDenyInsideAndAllowOutside) {
  const struct {
    absl::string_view addr;
    absl::string_view rule;  // empty: allowed
  } kCases[] = {
      {"0.0.0.0", "this-network 0.0.0.0/8"},
      {"0.255.255.255", "this-network 0.0.0.0/8"},
      {"1.0.0.0", ""},
      {"9.255.255.255", ""},
      {"10.0.0.0", "private 10.0.0.0/8"},
      {"10.255.255.255", "private 10.0.0.0/8"},
      {"11.0.0.0", ""},
      {"100.63.255.255", ""},
      {"100.64.0.0", "cgnat 100.64.0.0/10"},
      {"100.127.255.255", "cgnat 100.64.0.0/10"},
      {"100.128.0.0", ""},
      {"126.255.255.255", ""},
      {"127.0.0.1", "loopback 127.0.0.0/8"},
      {"127.255.255.255", "loopback 127.0.0.0/8"},
      {"128.0.0.0", ""},
      {"169.253.255.255", ""},
      {"169.254.0.0", "link-local 169.254.0.0/16"},
      {"169.254.169.254", "link-local 169.254.0.0/16"},
      {"169.255.0.0", ""},
      {"172.15.255.255", ""},
      {"172.16.0.0", "private 172.16.0.0/12"},
      {"172.31.255.255", "private 172.16.0.0/12"},
      {"172.32.0.0", ""},
      {"191.255.255.255", ""},
      {"192.0.0.0", "ietf-protocol 192.0.0.0/24"},
      {"192.0.0.255", "ietf-protocol 192.0.0.0/24"},
      {"192.0.1.0", ""},
      {"192.0.2.0", "documentation 192.0.2.0/24"},
      {"192.0.2.255", "documentation 192.0.2.0/24"},
      {"192.0.3.0", ""},
      {"192.167.255.255", ""},
      {"192.168.0.0", "private 192.168.0.0/16"},
      {"192.168.255.255", "private 192.168.0.0/16"},
      {"192.169.0.0", ""},
      {"198.17.255.255", ""},
      {"198.18.0.0", "benchmarking 198.18.0.0/15"},
      {"198.19.255.255", "benchmarking 198.18.0.0/15"},
      {"198.20.0.0", ""},
      {"198.51.99.255", ""},
      {"198.51.100.0", "documentation 198.51.100.0/24"},
      {"198.51.100.255", "documentation 198.51.100.0/24"},
      {"198.51.101.0", ""},
      {"203.0.112.255", ""},
      {"203.0.113.0", "documentation 203.0.113.0/24"},
      {"203.0.113.255", "documentation 203.0.113.0/24"},
      {"203.0.114.0", ""},
      {"223.255.255.255", ""},
      {"224.0.0.0", "multicast 224.0.0.0/4"},
      {"239.255.255.255", "multicast 224.0.0.0/4"},
      {"240.0.0.0", "reserved 240.0.0.0/4"},
      {"255.255.255.255", "reserved 240.0.0.0/4"},
      {"8.8.8.8", ""},
      {"1.1.1.1", ""},

      {"::", "unspecified ::/128"},
      {"::1", "loopback ::1/128"},
      {"::2", "ipv4-compatible ::2 -> this-network 0.0.0.0/8"},
      {"::7f00:1", "ipv4-compatible ::127.0.0.1 -> loopback 127.0.0.0/8"},
      {"::808:808", "ipv4-compatible ::/96"},
      {"::1:0:0:0", ""},
      {"::ffff:8.8.8.8", "ipv4-mapped ::ffff:0.0.0.0/96"},
      {"::fffe:ffff:ffff", ""},
      {"::1:0:0:0:0", ""},
      {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
      {"fc00::", "unique-local fc00::/7"},
      {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique-local fc00::/7"},
      {"fe00::", ""},
      {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
      {"fe80::", "link-local fe80::/10"},
      {"fe80::1", "link-local fe80::/10"},
      {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local fe80::/10"},
      {"fec0::1", "site-local fec0::/10"},
      {"ff00::", "multicast ff00::/8"},
      {"ff02::1", "multicast ff00::/8"},
      {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", ""},
      {"2001:db8::", "documentation 2001:db8::/32"},
      {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation 2001:db8::/32"},
      {"2001:db9::", ""},
      {"2001::", "teredo 2001::/32"},
      {"2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "teredo 2001::/32"},
      {"2001:1::", ""},
      {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
      {"2002::", "6to4 2002:: -> this-network 0.0.0.0/8"},
      {"2002:808:808::", "6to4 2002::/16"},
      {"2003::", ""},
      {"64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", ""},
      {"64:ff9b::808:808", "nat64 64:ff9b::/96"},
      {"64:ff9b::1:0:0", ""},
      {"64:ff9b:1::", "nat64 64:ff9b:1::/48"},
      {"64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "nat64 64:ff9b:1::/48"},
      {"64:ff9b:2::", ""},
      {"2606:4700::1", ""},
      {"2001:4860:4860::8888", ""},
  };
  const AddressPolicy policy = DefaultPolicy();
  for (const auto& c : kCases) {
    const Decision decision = policy.Check(Ip(c.addr), 443);
    EXPECT_EQ(decision.allowed, c.rule.empty()) << c.addr;
    EXPECT_EQ(decision.rule, c.rule.empty() ? "default" : c.rule) << c.addr;
  }
}

TEST(AddressPolicyTest, EmbeddedIpv4IsClassifiedAndReported) {
  const struct {
    absl::string_view addr;
    absl::string_view rule;
  } kCases[] = {
      {"::ffff:127.0.0.1",
       "ipv4-mapped ::ffff:127.0.0.1 -> loopback 127.0.0.0/8"},
      {"::ffff:169.254.169.254",
       "ipv4-mapped ::ffff:169.254.169.254 -> link-local 169.254.0.0/16"},
      {"::ffff:10.1.2.3", "ipv4-mapped ::ffff:10.1.2.3 -> private 10.0.0.0/8"},
      {"64:ff9b::7f00:1", "nat64 64:ff9b::7f00:1 -> loopback 127.0.0.0/8"},
      {"64:ff9b::a9fe:a9fe",
       "nat64 64:ff9b::a9fe:a9fe -> link-local 169.254.0.0/16"},
      {"2002:7f00:1::", "6to4 2002:7f00:1:: -> loopback 127.0.0.0/8"},
      {"2002:c0a8:101::1", "6to4 2002:c0a8:101::1 -> private 192.168.0.0/16"},
  };
  const AddressPolicy policy = DefaultPolicy();
  for (const auto& c : kCases) {
    const Decision decision = policy.Check(Ip(c.addr), 80);
    EXPECT_FALSE(decision.allowed) << c.addr;
    EXPECT_EQ(decision.rule, c.rule);
  }
}

TEST(AddressPolicyTest, AllowListOverridesBuiltinRanges) {
  const AddressPolicy policy =
      MakePolicy(Opts({"127.0.0.1", "10.0.0.0/8", "fd00::/8"}));
  EXPECT_EQ(policy.Check(Ip("127.0.0.1"), 8080).rule, "allow 127.0.0.1/32");
  EXPECT_TRUE(policy.Check(Ip("127.0.0.1"), 8080).allowed);
  EXPECT_FALSE(policy.Check(Ip("127.0.0.2"), 8080).allowed);
  EXPECT_TRUE(policy.Check(Ip("10.9.9.9"), 80).allowed);
  EXPECT_TRUE(policy.Check(Ip("fd12::1"), 80).allowed);
  EXPECT_FALSE(policy.Check(Ip("fc12::1"), 80).allowed);
  EXPECT_FALSE(policy.Check(Ip("::1"), 80).allowed);

  // An IPv4-mapped address is the same destination as its IPv4 address.
  const Decision mapped = policy.Check(Ip("::ffff:127.0.0.1"), 8080);
  EXPECT_TRUE(mapped.allowed);
  EXPECT_EQ(mapped.rule, "ipv4-mapped ::ffff:127.0.0.1 -> allow 127.0.0.1/32");
  // NAT64 and 6to4 addresses are not, so allowing the IPv4 doesn't allow them.
  EXPECT_FALSE(policy.Check(Ip("64:ff9b::7f00:1"), 8080).allowed);
  EXPECT_FALSE(policy.Check(Ip("2002:7f00:1::"), 8080).allowed);
}

TEST(AddressPolicyTest, DenyListOverridesAllowList) {
  const AddressPolicy policy =
      MakePolicy(Opts({"10.0.0.0/8"}, {"10.1.0.0/16", "8.8.8.8"}));
  EXPECT_TRUE(policy.Check(Ip("10.2.0.1"), 80).allowed);
  const Decision denied = policy.Check(Ip("10.1.0.1"), 80);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.rule, "deny 10.1.0.0/16");
  EXPECT_EQ(policy.Check(Ip("8.8.8.8"), 53).rule, "deny 8.8.8.8/32");
  EXPECT_TRUE(policy.Check(Ip("8.8.4.4"), 53).allowed);
}

TEST(AddressPolicyTest, DenyListMatchesEmbeddedIpv4WithoutBuiltins) {
  const AddressPolicy policy =
      MakePolicy(Opts({}, {"8.8.8.0/24"}, {}, {}, false));
  EXPECT_TRUE(policy.Check(Ip("127.0.0.1"), 80).allowed);
  EXPECT_TRUE(policy.Check(Ip("::ffff:1.1.1.1"), 80).allowed);
  const struct {
    absl::string_view addr;
    absl::string_view rule;
  } kCases[] = {
      {"8.8.8.8", "deny 8.8.8.0/24"},
      {"::ffff:8.8.8.8", "ipv4-mapped ::ffff:8.8.8.8 -> deny 8.8.8.0/24"},
      {"64:ff9b::808:808", "nat64 64:ff9b::808:808 -> deny 8.8.8.0/24"},
      {"2002:808:808::1", "6to4 2002:808:808::1 -> deny 8.8.8.0/24"},
  };
  for (const auto& c : kCases) {
    const Decision decision = policy.Check(Ip(c.addr), 80);
    EXPECT_FALSE(decision.allowed) << c.addr;
    EXPECT_EQ(decision.rule, c.rule);
  }
}

TEST(AddressPolicyTest, Ports) {
  const AddressPolicy any_port = DefaultPolicy();
  EXPECT_TRUE(any_port.Check(Ip("8.8.8.8"), 65535).allowed);
  EXPECT_EQ(any_port.Check(Ip("8.8.8.8"), 0).rule, "port 0");
  // A denied address reports the address rule, not the port.
  EXPECT_EQ(any_port.Check(Ip("127.0.0.1"), 0).rule, "loopback 127.0.0.0/8");

  const AddressPolicy web_only = MakePolicy(Opts({}, {}, {}, {80, 443}));
  EXPECT_TRUE(web_only.Check(Ip("8.8.8.8"), 443).allowed);
  const Decision ssh = web_only.Check(Ip("8.8.8.8"), 22);
  EXPECT_FALSE(ssh.allowed);
  EXPECT_EQ(ssh.rule, "port 22 not allowed");
}

TEST(AddressPolicyTest, CreateRejectsBadOptionsNamingTheEntry) {
  const struct {
    AddressPolicy::Options options;
    absl::string_view message;
  } kCases[] = {
      {Opts({"127.0.0.1", "10.0.0.0/33"}),
       "allow[1]: invalid CIDR \"10.0.0.0/33\""},
      {Opts({}, {"nonsense"}),
       "deny[0]: invalid CIDR \"nonsense\": not an IP address"},
      {Opts({}, {}, {"ok.example", ""}),
       "deny_host_patterns[1]: invalid host pattern \"\""},
      {Opts({}, {}, {"*"}), "invalid host pattern \"*\""},
      {Opts({}, {}, {"*."}), "invalid host pattern \"*.\""},
      {Opts({}, {}, {"a*.example"}), "invalid host pattern \"a*.example\""},
      {Opts({}, {}, {"*.*.example"}), "invalid host pattern \"*.*.example\""},
      // Found by fuzz/host_fuzzer: patterns CheckHostName never reads as a
      // name, so they could never match.
      {Opts({}, {}, {"["}), "invalid host pattern \"[\""},
      {Opts({}, {}, {"*.a:b"}), "invalid host pattern \"*.a:b\""},
      {Opts({}, {}, {"10.0.0.1"}),
       "invalid host pattern \"10.0.0.1\": want an exact host name (not an "
       "IP address)"},
      {Opts({}, {}, {"127.1."}), "invalid host pattern \"127.1.\""},
      {Opts({}, {}, {"0x7F000001"}), "invalid host pattern \"0x7F000001\""},
      {Opts({}, {}, {"*.a%2eb"}), "invalid host pattern \"*.a%2eb\""},
      {Opts({}, {}, {"a..b"}), "invalid host pattern \"a..b\""},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<AddressPolicy> policy = AddressPolicy::Create(c.options);
    ASSERT_FALSE(policy.ok()) << c.message;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(policy.status().message(), HasSubstr(std::string(c.message)));
  }
}

TEST(AddressPolicyTest, HostNames) {
  const AddressPolicy policy =
      MakePolicy(Opts({}, {}, {"*.Corp.Example.", "db.internal"}));
  const struct {
    absl::string_view host;
    absl::string_view rule;  // empty: allowed
  } kCases[] = {
      {"example.com", ""},
      {"localhost", "host localhost"},
      {"LOCALHOST.", "host localhost"},
      {"localhost..", "host localhost"},
      {"app.localhost", "host *.localhost"},
      {"a.b.LocalHost", "host *.localhost"},
      {"notlocalhost", ""},
      {"localhost.example.com", ""},
      {"metadata", "host metadata"},
      {"metadata.google.internal", "host metadata.google.internal"},
      {"Metadata.Google.Internal.", "host metadata.google.internal"},
      {"metadata.example.com", ""},
      {"x.corp.example", "deny host *.corp.example"},
      {"a.b.CORP.example.", "deny host *.corp.example"},
      {"corp.example", ""},
      {"xcorp.example", ""},
      {"db.internal", "deny host db.internal"},
      {"db.internal.", "deny host db.internal"},
      {"x.db.internal", ""},
      // IP literals are classified as addresses.
      {"8.8.8.8", ""},
      {"127.0.0.1", "loopback 127.0.0.0/8"},
      {"169.254.169.254", "link-local 169.254.0.0/16"},
      {"[::1]", "loopback ::1/128"},
      {"::1", "loopback ::1/128"},
      {"[2606:4700::1]", ""},
      {"[fe80::1%eth0]", "link-local fe80::/10"},
      {"[fe80::1%25eth0]", "link-local fe80::/10"},
      {"[::ffff:169.254.169.254]",
       "ipv4-mapped ::ffff:169.254.169.254 -> link-local 169.254.0.0/16"},
      // Shorthand IPv4 that resolvers accept.
      {"127.1", "ipv4 127.1 -> loopback 127.0.0.0/8"},
      {"0x7f000001", "ipv4 0x7f000001 -> loopback 127.0.0.0/8"},
      {"2130706433", "ipv4 2130706433 -> loopback 127.0.0.0/8"},
      {"0177.0.0.1", "ipv4 0177.0.0.1 -> loopback 127.0.0.0/8"},
      {"0xA9.254.169.254",
       "ipv4 0xa9.254.169.254 -> link-local 169.254.0.0/16"},
      {"134744072", ""},  // 8.8.8.8
      {"cafe.be", ""},
      {"deadbeef", ""},
      // Malformed.
      {"", "invalid host"},
      {".", "invalid host"},
      {"[]", "invalid host"},
      {"[::1", "invalid host"},
      {"[127.0.0.1]", "invalid host"},
      {"[nonsense]", "invalid host"},
      {"a:b", "invalid host"},
      // Found by fuzz/host_fuzzer: curl decodes these to 127.0.0.1 and
      // example.com; only the decoded host is classified.
      {"%31%32%37.0.0.1", "invalid host"},
      {"ex%41mple.com", "invalid host"},
      {".localhost.", "invalid host"},
      {"a..example.com", "invalid host"},
  };
  for (const auto& c : kCases) {
    const Decision decision = policy.CheckHostName(c.host, 80);
    EXPECT_EQ(decision.allowed, c.rule.empty()) << c.host;
    EXPECT_EQ(decision.rule, c.rule.empty() ? "default" : c.rule) << c.host;
  }
}

TEST(AddressPolicyTest, HostNamesWithoutBuiltins) {
  const AddressPolicy policy =
      MakePolicy(Opts({"127.0.0.1"}, {}, {}, {}, false));
  EXPECT_TRUE(policy.CheckHostName("localhost", 80).allowed);
  EXPECT_TRUE(policy.CheckHostName("metadata", 80).allowed);
  EXPECT_EQ(policy.CheckHostName("127.0.0.1", 80).rule, "allow 127.0.0.1/32");
  EXPECT_FALSE(policy.CheckHostName("", 80).allowed);
}

TEST(AddressPolicyTest, RulesLimitedToPorts) {
  AddressPolicy::Options options;
  options.allow.push_back({"127.0.0.1", {8080, 8443}});
  options.deny.push_back({"203.0.113.0/24", {25}});
  options.allowed_ports = {80, 443};
  const AddressPolicy policy = MakePolicy(options);

  // The allow rule lifts the loopback denial on its own ports only, and
  // its ports are not subject to allowed_ports.
  const Decision on_port = policy.Check(Ip("127.0.0.1"), 8080);
  EXPECT_TRUE(on_port.allowed);
  EXPECT_EQ(on_port.rule, "allow 127.0.0.1/32 port 8080,8443");
  EXPECT_EQ(on_port.category, "allow");
  const Decision other_port = policy.Check(Ip("127.0.0.1"), 80);
  EXPECT_FALSE(other_port.allowed);
  EXPECT_EQ(other_port.rule, "loopback 127.0.0.0/8");
  EXPECT_EQ(other_port.category, "loopback");
  // The deny rule matches port 25 only; the documentation range still
  // denies the rest.
  const Decision smtp = policy.Check(Ip("203.0.113.7"), 25);
  EXPECT_EQ(smtp.rule, "deny 203.0.113.0/24 port 25");
  EXPECT_EQ(smtp.category, "deny");
  // allowed_ports applies to addresses allowed by default.
  EXPECT_TRUE(policy.Check(Ip("8.8.8.8"), 443).allowed);
  const Decision ssh = policy.Check(Ip("8.8.8.8"), 22);
  EXPECT_FALSE(ssh.allowed);
  EXPECT_EQ(ssh.category, "port");
  // Host literals are checked with the port too.
  EXPECT_TRUE(policy.CheckHostName("127.0.0.1", 8443).allowed);
  EXPECT_FALSE(policy.CheckHostName("127.0.0.1", 9000).allowed);
  EXPECT_FALSE(policy.CheckHostName("example.com", 0).allowed);
}

TEST(AddressPolicyTest, RejectsPortZeroInRules) {
  AddressPolicy::Options options;
  options.allow.push_back({"10.0.0.0/8", {80, 0}});
  absl::StatusOr<AddressPolicy> policy = AddressPolicy::Create(options);
  ASSERT_FALSE(policy.ok());
  EXPECT_THAT(policy.status().message(),
              HasSubstr("allow[0]: port 0 is not a port"));
}

TEST(AddressPolicyTest, AllowHostPatternsLiftOnlyBuiltinNames) {
  AddressPolicy::Options options;
  options.allow_host_patterns = {"localhost", "*.internal.example"};
  options.deny_host_patterns = {"db.internal.example"};
  const AddressPolicy policy = MakePolicy(options);
  EXPECT_TRUE(policy.CheckHostName("localhost", 80).allowed);
  // Still denied: other built-in names, and configured denials.
  EXPECT_FALSE(policy.CheckHostName("app.localhost", 80).allowed);
  const Decision db = policy.CheckHostName("db.internal.example", 80);
  EXPECT_FALSE(db.allowed);
  EXPECT_EQ(db.rule, "deny host db.internal.example");
  EXPECT_EQ(db.category, "host");
  // The addresses a lifted name resolves to are still checked.
  EXPECT_FALSE(policy.Check(Ip("127.0.0.1"), 80).allowed);
  // Malformed allow patterns are rejected like deny patterns.
  AddressPolicy::Options bad;
  bad.allow_host_patterns = {"a*"};
  absl::StatusOr<AddressPolicy> rejected = AddressPolicy::Create(bad);
  ASSERT_FALSE(rejected.ok());
  EXPECT_THAT(rejected.status().message(),
              HasSubstr("allow_host_patterns[0]: invalid host pattern"));
}

TEST(AddressPolicyTest, CategoriesAreBoundedNames) {
  const AddressPolicy policy = DefaultPolicy();
  EXPECT_EQ(policy.Check(Ip("169.254.169.254"), 80).category, "link-local");
  EXPECT_EQ(policy.Check(Ip("::ffff:127.0.0.1"), 80).category, "loopback");
  EXPECT_EQ(policy.Check(Ip("10.1.2.3"), 80).category, "private");
  EXPECT_EQ(policy.Check(Ip("8.8.8.8"), 80).category, "default");
  EXPECT_EQ(policy.CheckHostName("[nonsense]", 80).category, "invalid-host");
  EXPECT_EQ(policy.CheckHostName("localhost", 80).category, "host");
}

}  // namespace
}  // namespace fetchd::policy

#include "service/policy/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "service/common/status_macros.h"

namespace fetchd::policy {
namespace {

// Special-purpose ranges that a fetch on behalf of a caller must not reach
// (IANA IPv4/IPv6 Special-Purpose Address Registries, RFC 6890 and
// successors). Names are "<kind>"; the rule adds the CIDR.
struct BuiltinRange {
  const char* kind;
  const char* cidr;
};
constexpr BuiltinRange kBuiltinRanges[] = {
    {"this-network", "0.0.0.0/8"},
    {"private", "10.0.0.0/8"},
    {"cgnat", "100.64.0.0/10"},
    {"loopback", "127.0.0.0/8"},
    {"link-local", "169.254.0.0/16"},  // incl. 169.254.169.254 metadata
    {"private", "172.16.0.0/12"},
    {"ietf-protocol", "192.0.0.0/24"},
    {"documentation", "192.0.2.0/24"},
    {"private", "192.168.0.0/16"},
    {"benchmarking", "198.18.0.0/15"},
    {"documentation", "198.51.100.0/24"},
    {"documentation", "203.0.113.0/24"},
    {"multicast", "224.0.0.0/4"},
    {"reserved", "240.0.0.0/4"},  // incl. 255.255.255.255 broadcast
    {"unspecified", "::/128"},
    {"loopback", "::1/128"},
    // Deprecated IPv4-compatible addresses (RFC 4291 2.5.5.1): no legitimate
    // destination, and they embed an IPv4 address.
    {"ipv4-compatible", "::/96"},
    {"ipv4-mapped", "::ffff:0:0/96"},
    {"nat64", "64:ff9b::/96"},
    {"nat64", "64:ff9b:1::/48"},
    {"teredo", "2001::/32"},
    {"documentation", "2001:db8::/32"},
    {"6to4", "2002::/16"},
    {"unique-local", "fc00::/7"},
    {"link-local", "fe80::/10"},
    {"site-local", "fec0::/10"},  // deprecated (RFC 3879), still routable
    {"multicast", "ff00::/8"},
};

// Names never resolved on a caller's behalf.
constexpr const char* kBuiltinHostPatterns[] = {
    "localhost",
    "*.localhost",
    "metadata.google.internal",
    "metadata",
};

// An IPv4 address carried inside an IPv6 address, and the form carrying it.
struct EmbeddedV4 {
  const char* kind;
  IpAddress v4;
};

IpAddress V4FromBytes(const uint8_t* b) {
  return IpAddress::V4(b[0], b[1], b[2], b[3]);
}

bool AllZero(const uint8_t* b, int n) {
  return std::all_of(b, b + n, [](uint8_t x) { return x == 0; });
}

// The IPv4 address an IPv6 address embeds, for the forms whose embedding is
// fixed: IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d (not :: and
// ::1), NAT64 well-known prefix 64:ff9b::a.b.c.d (RFC 6052) and 6to4
// 2002:aabb:ccdd::/48 (RFC 3056).
std::optional<EmbeddedV4> Embedded(const IpAddress& addr) {
  if (addr.is_v4()) return std::nullopt;
  const uint8_t* b = addr.bytes.data();
  if (AllZero(b, 10) && b[10] == 0xff && b[11] == 0xff) {
    return EmbeddedV4{"ipv4-mapped", V4FromBytes(b + 12)};
  }
  if (AllZero(b, 12) && !(AllZero(b + 12, 3) && b[15] <= 1)) {
    return EmbeddedV4{"ipv4-compatible", V4FromBytes(b + 12)};
  }
  static constexpr uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (std::memcmp(b, kNat64, sizeof(kNat64)) == 0) {
    return EmbeddedV4{"nat64", V4FromBytes(b + 12)};
  }
  if (b[0] == 0x20 && b[1] == 0x02) {
    return EmbeddedV4{"6to4", V4FromBytes(b + 2)};
  }
  return std::nullopt;
}

// "ipv4-mapped ::ffff:127.0.0.1 -> loopback 127.0.0.0/8".
std::string EmbeddedRule(const IpAddress& addr, const EmbeddedV4& embedded,
                         const std::string& v4_rule) {
  return absl::StrCat(embedded.kind, " ", addr.ToString(), " -> ", v4_rule);
}

// A decimal prefix length: 1 to 3 digits, nothing else.
std::optional<int> ParsePrefix(absl::string_view text) {
  if (text.empty() || text.size() > 3) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

absl::Status CidrError(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid CIDR \"", std::string(text), "\": ", std::string(why)));
}

// Lower case, trailing dots removed.
std::string NormalizeHost(absl::string_view host) {
  while (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return absl::AsciiStrToLower(std::string(host));
}

// An IPv6 literal, possibly with a zone id ("fe80::1%eth0", "%25" encoded).
std::optional<IpAddress> ParseV6Literal(absl::string_view text) {
  text = text.substr(0, text.find('%'));
  std::optional<IpAddress> addr = IpAddress::Parse(text);
  if (!addr.has_value() || addr->is_v4()) return std::nullopt;
  return addr;
}

// The shorthand IPv4 forms that inet_aton (and so getaddrinfo and curl)
// accept but inet_pton does not: "127.1", "0x7f.0.0.1", "2130706433",
// "0177.0.0.1".
std::optional<IpAddress> ParseShorthandV4(const std::string& host) {
  const bool numeric_chars = std::all_of(host.begin(), host.end(), [](char c) {
    return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == 'x' ||
           c == '.';
  });
  if (!numeric_chars) return std::nullopt;
  in_addr a{};
  if (inet_aton(host.c_str(), &a) == 0) return std::nullopt;
  IpAddress addr;
  std::memcpy(addr.bytes.data(), &a.s_addr, 4);
  return addr;
}

Decision Invalid() { return Decision{false, "invalid host", "invalid-host"}; }

}  // namespace

std::optional<IpAddress> IpAddress::Parse(absl::string_view text) {
  // inet_pton needs a NUL-terminated string, so an embedded NUL would cut
  // the text short ("1::\0junk" read as "1::"); no address is longer than 45.
  if (text.empty() || text.size() > INET6_ADDRSTRLEN ||
      text.find('\0') != absl::string_view::npos) {
    return std::nullopt;
  }
  const std::string str(text);
  IpAddress addr;
  if (inet_pton(AF_INET, str.c_str(), addr.bytes.data()) == 1) {
    addr.family = Family::kV4;
    return addr;
  }
  if (inet_pton(AF_INET6, str.c_str(), addr.bytes.data()) == 1) {
    addr.family = Family::kV6;
    return addr;
  }
  return std::nullopt;
}

IpAddress IpAddress::V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress addr;
  addr.family = Family::kV4;
  addr.bytes[0] = a;
  addr.bytes[1] = b;
  addr.bytes[2] = c;
  addr.bytes[3] = d;
  return addr;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  const int af = is_v4() ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes.data(), buf, sizeof(buf)) == nullptr) return "?";
  return buf;
}

absl::StatusOr<Cidr> Cidr::Parse(absl::string_view text) {
  const size_t slash = text.find('/');
  std::optional<IpAddress> base = IpAddress::Parse(text.substr(0, slash));
  if (!base.has_value()) return CidrError(text, "not an IP address");
  const int max_prefix = base->size() * 8;
  int prefix = max_prefix;
  if (slash != absl::string_view::npos) {
    std::optional<int> parsed = ParsePrefix(text.substr(slash + 1));
    if (!parsed.has_value() || *parsed > max_prefix) {
      return CidrError(
          text,
          absl::StrCat("prefix length must be a number in 0..", max_prefix,
                       " for ", base->is_v4() ? "IPv4" : "IPv6"));
    }
    prefix = *parsed;
  }
  Cidr cidr{*base, prefix};
  // The base must be the first address of the block: "10.0.0.1/8" is a
  // typo for one address or for a network, and guessing which is unsafe.
  for (int bit = prefix; bit < max_prefix; ++bit) {
    if (base->bytes[bit / 8] & (0x80 >> (bit % 8))) {
      return CidrError(text, absl::StrCat("host bits set below /", prefix));
    }
  }
  return cidr;
}

bool Cidr::Contains(const IpAddress& addr) const {
  if (addr.family != base.family) return false;
  const int full_bytes = prefix / 8;
  if (std::memcmp(addr.bytes.data(), base.bytes.data(), full_bytes) != 0) {
    return false;
  }
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr.bytes[full_bytes] & mask) == (base.bytes[full_bytes] & mask);
}

std::string Cidr::ToString() const {
  return absl::StrCat(base.ToString(), "/", prefix);
}

std::vector<absl::string_view> AddressPolicy::DenialCategories() {
  std::vector<absl::string_view> out;
  for (const BuiltinRange& range : kBuiltinRanges) {
    if (std::find(out.begin(), out.end(), range.kind) == out.end()) {
      out.push_back(range.kind);
    }
  }
  for (absl::string_view other : {"deny", "host", "port", "invalid-host"}) {
    out.push_back(other);
  }
  return out;
}

bool AddressPolicy::Rule::MatchesPort(uint16_t port) const {
  return ports.empty() ||
         std::find(ports.begin(), ports.end(), port) != ports.end();
}

bool AddressPolicy::HostPattern::Matches(const std::string& host) const {
  if (!subdomains) return host == name;
  return host.size() > name.size() + 1 &&
         host.compare(host.size() - name.size(), name.size(), name) == 0 &&
         host[host.size() - name.size() - 1] == '.';
}

absl::Status AddressPolicy::ParseRules(const std::vector<AddressRule>& rules,
                                       const char* option, const char* verb,
                                       std::vector<Rule>& out) {
  for (size_t i = 0; i < rules.size(); ++i) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(rules[i].cidr);
    if (!cidr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(option, "[", i, "]: ", cidr.status().message()));
    }
    const std::vector<uint16_t>& ports = rules[i].ports;
    if (std::find(ports.begin(), ports.end(), 0) != ports.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(option, "[", i, "]: port 0 is not a port"));
    }
    std::string name = absl::StrCat(verb, " ", cidr->ToString());
    if (!ports.empty()) {
      absl::StrAppend(&name, " port ", absl::StrJoin(ports, ","));
    }
    out.push_back(Rule{*cidr, ports, std::move(name), verb});
  }
  return absl::OkStatus();
}

std::optional<AddressPolicy::HostPattern> AddressPolicy::ParseHostPattern(
    absl::string_view text, absl::string_view rule_prefix) {
  HostPattern pattern;
  pattern.name = NormalizeHost(text);
  if (pattern.name.rfind("*.", 0) == 0) {
    pattern.name.erase(0, 2);
    pattern.subdomains = true;
  }
  if (pattern.name.empty() || pattern.name.find('*') != std::string::npos ||
      pattern.name.front() == '.') {
    return std::nullopt;
  }
  // CheckHostName reads such a host as an address or as invalid, so the
  // pattern could never match (an address belongs in allow/deny).
  if (pattern.name.find_first_of("[]:%") != std::string::npos ||
      pattern.name.find("..") != std::string::npos ||
      (!pattern.subdomains && (IpAddress::Parse(pattern.name).has_value() ||
                               ParseShorthandV4(pattern.name).has_value()))) {
    return std::nullopt;
  }
  pattern.rule = absl::StrCat(std::string(rule_prefix),
                              pattern.subdomains ? "*." : "", pattern.name);
  return pattern;
}

absl::Status AddressPolicy::ParseHostPatterns(
    const std::vector<std::string>& texts, const char* option,
    absl::string_view rule_prefix, std::vector<HostPattern>& out) {
  for (size_t i = 0; i < texts.size(); ++i) {
    std::optional<HostPattern> pattern =
        ParseHostPattern(texts[i], rule_prefix);
    if (!pattern.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(option, "[", i, "]: invalid host pattern \"", texts[i],
                       "\": want an exact host name (not an IP address) "
                       "or \"*.suffix\""));
    }
    out.push_back(*std::move(pattern));
  }
  return absl::OkStatus();
}

absl::Status AddressPolicy::AddBuiltins() {
  for (const BuiltinRange& range : kBuiltinRanges) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(range.cidr);
    if (!cidr.ok()) return absl::InternalError(cidr.status().message());
    builtin_.push_back(Rule{*cidr,
                            {},
                            absl::StrCat(range.kind, " ", cidr->ToString()),
                            range.kind});
  }
  for (const char* text : kBuiltinHostPatterns) {
    std::optional<HostPattern> pattern = ParseHostPattern(text, "host ");
    if (!pattern.has_value()) {
      return absl::InternalError(absl::StrCat("built-in host pattern ", text));
    }
    pattern->builtin = true;
    host_patterns_.push_back(*std::move(pattern));
  }
  return absl::OkStatus();
}

absl::StatusOr<AddressPolicy> AddressPolicy::Create(const Options& options) {
  AddressPolicy policy;
  FETCHD_RETURN_IF_ERROR(
      ParseRules(options.allow, "allow", "allow", policy.allow_));
  FETCHD_RETURN_IF_ERROR(
      ParseRules(options.deny, "deny", "deny", policy.deny_));
  FETCHD_RETURN_IF_ERROR(ParseHostPatterns(options.deny_host_patterns,
                                           "deny_host_patterns", "deny host ",
                                           policy.host_patterns_));
  FETCHD_RETURN_IF_ERROR(ParseHostPatterns(options.allow_host_patterns,
                                           "allow_host_patterns", "allow host ",
                                           policy.allowed_hosts_));
  if (options.deny_by_default_ranges) {
    FETCHD_RETURN_IF_ERROR(policy.AddBuiltins());
  }
  policy.allowed_ports_ = options.allowed_ports;
  return policy;
}

const AddressPolicy::Rule* AddressPolicy::MatchBuiltin(
    const IpAddress& addr) const {
  const Rule* best = nullptr;
  for (const Rule& rule : builtin_) {
    if (rule.cidr.Contains(addr) &&
        (best == nullptr || rule.cidr.prefix > best->cidr.prefix)) {
      best = &rule;
    }
  }
  return best;
}

Decision AddressPolicy::CheckAddress(const IpAddress& addr, uint16_t port,
                                     bool* explicit_ports) const {
  *explicit_ports = false;
  const std::optional<EmbeddedV4> embedded = Embedded(addr);
  for (const Rule& rule : deny_) {
    if (!rule.MatchesPort(port)) continue;
    if (rule.cidr.Contains(addr)) {
      return Decision{false, rule.name, rule.category};
    }
    if (embedded.has_value() && rule.cidr.Contains(embedded->v4)) {
      return Decision{false, EmbeddedRule(addr, *embedded, rule.name),
                      rule.category};
    }
  }
  // Only an IPv4-mapped address is the same destination as its IPv4 address.
  const bool mapped = embedded.has_value() &&
                      absl::string_view(embedded->kind) == "ipv4-mapped";
  for (const Rule& rule : allow_) {
    if (!rule.MatchesPort(port)) continue;
    if (rule.cidr.Contains(addr) ||
        (mapped && rule.cidr.Contains(embedded->v4))) {
      *explicit_ports = !rule.ports.empty();
      return Decision{true,
                      rule.cidr.Contains(addr)
                          ? rule.name
                          : EmbeddedRule(addr, *embedded, rule.name),
                      rule.category};
    }
  }
  if (const Rule* rule = MatchBuiltin(addr); rule != nullptr) {
    if (embedded.has_value()) {
      if (const Rule* inner = MatchBuiltin(embedded->v4); inner != nullptr) {
        return Decision{false, EmbeddedRule(addr, *embedded, inner->name),
                        inner->category};
      }
    }
    return Decision{false, rule->name, rule->category};
  }
  return Decision{true, "default", "default"};
}

Decision AddressPolicy::Check(const IpAddress& addr, uint16_t port) const {
  bool explicit_ports = false;
  Decision decision = CheckAddress(addr, port, &explicit_ports);
  if (!decision.allowed) return decision;
  if (port == 0) return Decision{false, "port 0", "port"};
  if (explicit_ports) return decision;
  if (!allowed_ports_.empty() &&
      std::find(allowed_ports_.begin(), allowed_ports_.end(), port) ==
          allowed_ports_.end()) {
    return Decision{false, absl::StrCat("port ", port, " not allowed"), "port"};
  }
  return decision;
}

Decision AddressPolicy::CheckHostName(absl::string_view host,
                                      uint16_t port) const {
  if (host.empty()) return Invalid();
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return Invalid();
    std::optional<IpAddress> addr =
        ParseV6Literal(host.substr(1, host.size() - 2));
    if (!addr.has_value()) return Invalid();
    return Check(*addr, port);
  }
  const std::string name = NormalizeHost(host);
  if (name.empty()) return Invalid();
  if (name.find(':') != std::string::npos) {
    std::optional<IpAddress> addr = ParseV6Literal(name);
    if (!addr.has_value()) return Invalid();
    return Check(*addr, port);
  }
  // No host name has a '%' (a percent-encoded one, "%31%32%37.0.0.1", is
  // whatever it decodes to) or an empty label (".localhost" would slip past
  // "*.localhost", and some resolvers still answer it).
  if (name.find('%') != std::string::npos || name.front() == '.' ||
      name.find("..") != std::string::npos) {
    return Invalid();
  }
  if (std::optional<IpAddress> addr = IpAddress::Parse(name);
      addr.has_value()) {
    return Check(*addr, port);
  }
  if (std::optional<IpAddress> addr = ParseShorthandV4(name);
      addr.has_value()) {
    Decision decision = Check(*addr, port);
    if (!decision.allowed) {
      decision.rule = absl::StrCat("ipv4 ", name, " -> ", decision.rule);
    }
    return decision;
  }
  for (const HostPattern& pattern : host_patterns_) {
    if (!pattern.Matches(name)) continue;
    if (pattern.builtin &&
        std::any_of(allowed_hosts_.begin(), allowed_hosts_.end(),
                    [&name](const HostPattern& allowed) {
                      return allowed.Matches(name);
                    })) {
      continue;
    }
    return Decision{false, pattern.rule, "host"};
  }
  if (port == 0) return Decision{false, "port 0", "port"};
  return Decision{true, "default", "default"};
}

}  // namespace fetchd::policy

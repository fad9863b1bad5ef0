// Destination address policy against server-side request forgery (SSRF): a
// pure classifier that says whether fetchd may connect to an IP address and
// port, or resolve a host name, and names the rule that decided.
//
// Order of precedence for an address and port:
//   1. the explicit deny list (Options::deny),
//   2. the explicit allow list (Options::allow), so a test may allow
//      127.0.0.1 even though loopback is denied by default,
//   3. the built-in special-purpose ranges (loopback, private, link-local
//      including the 169.254.169.254 metadata endpoint, multicast, ...),
//      when Options::deny_by_default_ranges,
//   4. otherwise allowed.
// A rule may be limited to some ports; it then matches only those. An address
// allowed by a rule without ports, or by default, is then checked against
// Options::allowed_ports.
//
// IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96,
// 6to4) are denied by their own IPv6 range; the embedded IPv4 address is
// classified too and reported in the rule. Deny-list entries match the
// embedded IPv4 address of any of these forms; allow-list entries match the
// address itself or, for IPv4-mapped addresses only, the IPv4 address it is
// equivalent to.
//
// Host names are checked before resolution only against names that must never
// be resolved (localhost, cloud metadata names, Options::deny_host_patterns);
// Options::allow_host_patterns lifts the built-in name denials (not the
// address checks that follow resolution).
// Resolution is the caller's: every address a name resolves to, and every
// address actually connected to, must pass Check() as well, or DNS rebinding
// and names like 127.0.0.1.nip.io get through.
//
// No I/O, no DNS.
// Thread-safety: an AddressPolicy is immutable once created; its const
// methods may be called from any number of threads at once.
#ifndef FETCHD_SERVICE_POLICY_ADDRESS_POLICY_H_
#define FETCHD_SERVICE_POLICY_ADDRESS_POLICY_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fetchd::policy {

// An IPv4 or IPv6 address. IPv4 addresses occupy bytes[0..3], the rest zero.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) stay IPv6.
struct IpAddress {
  enum class Family { kV4, kV6 };

  Family family = Family::kV4;
  std::array<uint8_t, 16> bytes{};

  // Parses the canonical text forms accepted by inet_pton: dotted-quad IPv4
  // ("127.0.0.1") or IPv6 ("::1", "::ffff:10.0.0.1"). No brackets, no zone
  // ids, no shorthand IPv4 forms ("127.1", "0x7f000001"). Returns nullopt for
  // anything else.
  [[nodiscard]] static std::optional<IpAddress> Parse(absl::string_view text);

  static IpAddress V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);

  bool is_v4() const { return family == Family::kV4; }
  // 4 or 16.
  int size() const { return is_v4() ? 4 : 16; }

  // The inet_ntop form: "127.0.0.1", "::1", "::ffff:127.0.0.1".
  std::string ToString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// An address block: the first `prefix` bits of `base`; the other bits of
// `base` are zero.
struct Cidr {
  IpAddress base;
  int prefix = 0;

  // Parses "10.0.0.0/8", "fe80::/10", or a bare address (a /32 or /128).
  // Errors (InvalidArgument, naming the text): not an address, a prefix
  // length that is not a decimal number in 0..32 (IPv4) or 0..128 (IPv6),
  // or host bits set below the prefix ("10.0.0.1/8").
  [[nodiscard]] static absl::StatusOr<Cidr> Parse(absl::string_view text);

  // False for an address of the other family.
  bool Contains(const IpAddress& addr) const;

  // "10.0.0.0/8".
  std::string ToString() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// The outcome of a check. `rule` names what decided, e.g.
// "loopback 127.0.0.0/8", "allow 127.0.0.1/32", "deny 10.0.0.0/8",
// "host localhost", "ipv4-mapped ::ffff:127.0.0.1 -> loopback 127.0.0.0/8",
// or "default" when nothing matched and the destination is allowed.
// `category` is a short name from a fixed set, fit for a metric label:
// a built-in range kind ("loopback", "private", "link-local", ...), "deny"
// or "allow" (the configured lists), "host" (a host-name pattern), "port",
// "invalid-host" or "default".
struct Decision {
  bool allowed = false;
  std::string rule;
  std::string category;
};

// An entry of an allow or deny list: a CIDR (or a bare address), optionally
// limited to some destination ports (empty: every port).
struct AddressRule {
  std::string cidr;
  std::vector<uint16_t> ports;
};

class AddressPolicy {
 public:
  struct Options {
    // Addresses allowed even inside a built-in denied range.
    std::vector<AddressRule> allow;
    // Addresses always denied; they win over `allow`.
    std::vector<AddressRule> deny;
    // Host names denied before resolution: an exact name ("db.internal") or
    // "*.suffix", which matches every name below suffix but not suffix
    // itself. Case-insensitive; trailing dots are ignored.
    std::vector<std::string> deny_host_patterns;
    // Host names (same patterns) exempt from the built-in name denials, e.g.
    // "localhost" on a developer's machine. Their addresses are still
    // checked. deny_host_patterns win over them.
    std::vector<std::string> allow_host_patterns;
    // Destination ports allowed; empty allows every port but 0.
    std::vector<uint16_t> allowed_ports;
    // Deny the built-in special-purpose ranges (see address_policy.cc) and
    // the built-in host names: localhost, *.localhost, metadata,
    // metadata.google.internal.
    bool deny_by_default_ranges = true;
  };

  // Errors (InvalidArgument): an entry of allow/deny whose CIDR Cidr::Parse
  // rejects or that lists port 0, or a malformed host pattern (empty, "*", a
  // '*' anywhere but a leading "*.", '[', ']', ':', '%' or an empty label, or
  // an exact name that CheckHostName reads as an IP address, e.g. "10.0.0.1"
  // or "127.1", which could never match); the message names the option, the
  // index
  // and the text.
  [[nodiscard]] static absl::StatusOr<AddressPolicy> Create(
      const Options& options);

  // Every category a denial can have, each once: the built-in range kinds,
  // "deny", "host", "port", "invalid-host". For metric labels.
  static std::vector<absl::string_view> DenialCategories();

  // Whether fetchd may connect to `addr` on `port` (the effective port: 80
  // or 443 when the URL has none). Port 0 is always denied.
  [[nodiscard]] Decision Check(const IpAddress& addr, uint16_t port) const;

  // Whether fetchd may resolve `host` (the host of a URL, without port) to
  // connect to `port`. An IP literal ("10.0.0.1", "[::1]", "[fe80::1%eth0]",
  // and the shorthand IPv4 forms resolvers accept: "127.1", "0x7f000001",
  // "2130706433") is checked as Check(address, port) would. An empty host,
  // a bracketed or ':'-containing host that is not an IPv6 literal, or a
  // host name with an empty label (".localhost", "a..b") or a '%'
  // (percent-encoded: pass the decoded host, as curl's CURLUPART_HOST gives
  // it) is denied as "invalid host".
  [[nodiscard]] Decision CheckHostName(absl::string_view host,
                                       uint16_t port) const;

 private:
  struct Rule {
    Cidr cidr;
    std::vector<uint16_t> ports;  // empty: every port
    std::string name;             // e.g. "loopback 127.0.0.0/8"
    std::string category;         // e.g. "loopback"

    bool MatchesPort(uint16_t port) const;
  };
  struct HostPattern {
    std::string name;         // lower case, no trailing dot, no "*."
    bool subdomains = false;  // "*.name"
    std::string rule;         // e.g. "host *.localhost"
    bool builtin = false;     // lifted by allow_host_patterns

    bool Matches(const std::string& normalized_host) const;
  };

  AddressPolicy() = default;

  // Create()'s steps. Errors name `option`[i] and the rule broken.
  static absl::Status ParseRules(const std::vector<AddressRule>& rules,
                                 const char* option, const char* verb,
                                 std::vector<Rule>& out);
  // Nullopt: not an exact host name nor "*.suffix".
  static std::optional<HostPattern> ParseHostPattern(
      absl::string_view text, absl::string_view rule_prefix);
  static absl::Status ParseHostPatterns(const std::vector<std::string>& texts,
                                        const char* option,
                                        absl::string_view rule_prefix,
                                        std::vector<HostPattern>& out);
  // The built-in denied ranges and host names.
  absl::Status AddBuiltins();

  // Check() before the allowed_ports rule; `explicit_ports` is set when an
  // allow rule with its own ports decided.
  Decision CheckAddress(const IpAddress& addr, uint16_t port,
                        bool* explicit_ports) const;
  // The most specific built-in range containing `addr`, or nullptr.
  const Rule* MatchBuiltin(const IpAddress& addr) const;

  std::vector<Rule> allow_;
  std::vector<Rule> deny_;
  std::vector<Rule> builtin_;
  // Denied names: deny_host_patterns, then the built-in ones.
  std::vector<HostPattern> host_patterns_;
  // Names exempt from the built-in denials.
  std::vector<HostPattern> allowed_hosts_;
  std::vector<uint16_t> allowed_ports_;
};

}  // namespace fetchd::policy

#endif  // FETCHD_SERVICE_POLICY_ADDRESS_POLICY_H_

// Destination address policy against server-side request forgery (SSRF): a
// pure classifier that says whether fetchd may connect to an IP address and
// port, or resolve a host name, and names the rule that decided.
//
// Order of precedence for an address:
//   1. the explicit deny list (Options::deny_cidrs),
//   2. the explicit allow list (Options::allow_cidrs), so a test may allow
//      127.0.0.1 even though loopback is denied by default,
//   3. the built-in special-purpose ranges (loopback, private, link-local
//      including the 169.254.169.254 metadata endpoint, multicast, ...),
//      when Options::deny_by_default_ranges,
//   4. otherwise allowed.
// An allowed address is then checked against Options::allowed_ports.
//
// IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96,
// 6to4) are denied by their own IPv6 range; the embedded IPv4 address is
// classified too and reported in the rule. Deny-list entries match the
// embedded IPv4 address of any of these forms; allow-list entries match the
// address itself or, for IPv4-mapped addresses only, the IPv4 address it is
// equivalent to.
//
// Host names are checked before resolution only against names that must never
// be resolved (localhost, cloud metadata names, Options::deny_host_patterns).
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
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

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
  static std::optional<IpAddress> Parse(std::string_view text);

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
  static absl::StatusOr<Cidr> Parse(std::string_view text);

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
struct Decision {
  bool allowed = false;
  std::string rule;
};

class AddressPolicy {
 public:
  struct Options {
    // CIDRs (or bare addresses) that are allowed even inside a built-in
    // denied range.
    std::vector<std::string> allow_cidrs;
    // CIDRs (or bare addresses) that are always denied; they win over
    // allow_cidrs.
    std::vector<std::string> deny_cidrs;
    // Host names denied before resolution: an exact name ("db.internal") or
    // "*.suffix", which matches every name below suffix but not suffix
    // itself. Case-insensitive; trailing dots are ignored.
    std::vector<std::string> deny_host_patterns;
    // Destination ports allowed; empty allows every port but 0.
    std::vector<uint16_t> allowed_ports;
    // Deny the built-in special-purpose ranges (see address_policy.cc) and
    // the built-in host names: localhost, *.localhost, metadata,
    // metadata.google.internal.
    bool deny_by_default_ranges = true;
  };

  // Errors (InvalidArgument): an entry of allow_cidrs/deny_cidrs that
  // Cidr::Parse rejects, or a malformed host pattern (empty, "*", a '*'
  // anywhere but a leading "*.", '[', ']', ':', '%' or an empty label, or an
  // exact name that CheckHostName reads as an IP address, e.g. "10.0.0.1" or
  // "127.1", which could never match); the message names the option, the index
  // and the text.
  static absl::StatusOr<AddressPolicy> Create(const Options& options);

  // Whether fetchd may connect to `addr` on `port` (the effective port: 80
  // or 443 when the URL has none). Port 0 is always denied.
  Decision Check(const IpAddress& addr, uint16_t port) const;

  // Whether fetchd may resolve `host` (the host of a URL, without port).
  // An IP literal ("10.0.0.1", "[::1]", "[fe80::1%eth0]", and the shorthand
  // IPv4 forms resolvers accept: "127.1", "0x7f000001", "2130706433") is
  // classified as an address, ignoring ports. An empty host, a bracketed or
  // ':'-containing host that is not an IPv6 literal, or a host name with an
  // empty label (".localhost", "a..b") or a '%' (percent-encoded: pass the
  // decoded host, as curl's CURLUPART_HOST gives it) is denied as "invalid
  // host".
  Decision CheckHostName(std::string_view host) const;

 private:
  struct Rule {
    Cidr cidr;
    std::string name;  // e.g. "loopback 127.0.0.0/8"
  };
  struct HostPattern {
    std::string name;         // lower case, no trailing dot, no "*."
    bool subdomains = false;  // "*.name"
    std::string rule;         // e.g. "host *.localhost"
  };

  AddressPolicy() = default;

  // Check() without the port.
  Decision CheckAddress(const IpAddress& addr) const;
  // The most specific built-in range containing `addr`, or nullptr.
  const Rule* MatchBuiltin(const IpAddress& addr) const;

  std::vector<Rule> allow_;
  std::vector<Rule> deny_;
  std::vector<Rule> builtin_;
  std::vector<HostPattern> host_patterns_;
  std::vector<uint16_t> allowed_ports_;
};

}  // namespace fetchd::policy

#endif  // FETCHD_SERVICE_POLICY_ADDRESS_POLICY_H_

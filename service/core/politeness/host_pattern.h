// HostPattern: one entry of a politeness rule's `hosts`, and the host keys
// it matches. Forms:
//   api.example.com               that host, any scheme and port
//   *.example.com                 any subdomain of example.com, at any depth
//                                 (a.example.com, a.b.example.com), but NOT
//                                 example.com itself: list both to get both
//                                 (Envoy's and TLS certificates' reading)
//   https://api.example.com:8443  that host with that scheme and port only;
//                                 without ":port" the scheme's default port
//                                 (http 80, https 443); the host part may be
//                                 a *.suffix too
//   [2001:db8::1]                 an IPv6 literal, in brackets as in URLs
// Hosts compare case-insensitively (stored lower-case); a trailing dot, an
// empty label, a '*' anywhere but a leading "*." label, or a path are
// errors. Schemes are http and https.
//
// Thread-safety: immutable values.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_HOST_PATTERN_H_
#define FETCHD_SERVICE_CORE_POLITENESS_HOST_PATTERN_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fetchd::core::politeness {

// A host key (scheme://host:port, as service/url builds it) split up.
struct HostKeyParts {
  absl::string_view scheme;
  absl::string_view host;
  int port = 0;
};

// Splits `key`; nullopt when it is not of the form scheme://host:port.
// The parts view `key`.
[[nodiscard]] std::optional<HostKeyParts> SplitHostKey(absl::string_view key);

class HostPattern {
 public:
  // InvalidArgument naming what is wrong with `text` (without the field
  // name: the caller knows where the pattern came from).
  [[nodiscard]] static absl::StatusOr<HostPattern> Parse(
      absl::string_view text);

  // `host` must be lower-case (host keys are); `scheme` too.
  [[nodiscard]] bool Matches(absl::string_view scheme, absl::string_view host,
                             int port) const;

  // Whether every host key this pattern matches is also matched by
  // `earlier`, so that after `earlier` (first match wins) it never matches.
  [[nodiscard]] bool ShadowedBy(const HostPattern& earlier) const;

  // For a wildcard the suffix after "*." (example.com); else the host.
  const std::string& host() const { return host_; }
  bool wildcard() const { return wildcard_; }
  // Empty, or the scheme this pattern requires (then port() is set too).
  const std::string& scheme() const { return scheme_; }
  int port() const { return port_; }
  const std::string& text() const { return text_; }

 private:
  HostPattern() = default;
  // Whether `host` is matched by the host part alone.
  bool MatchesHost(absl::string_view host) const;

  std::string text_;
  std::string host_;
  bool wildcard_ = false;
  std::string scheme_;
  int port_ = 0;
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_HOST_PATTERN_H_

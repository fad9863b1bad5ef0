// HostAllowList: the hosts one caller may fetch (CallerPolicy.allowed_hosts).
//
// Patterns, matched case-insensitively against the URL's host (an IPv6
// literal without its brackets):
//   "example.org"    exactly that host;
//   "*.example.org"  any subdomain of it, at any depth, not example.org;
//   "*"              any host.
// An empty list allows every host. Ports and schemes are not part of a
// pattern. IPv4 literals match only themselves, as text ("10.0.0.1"); IPv6
// literals can't be listed (only "*" allows them).
//
// Pure and immutable; thread-safe.
#ifndef FETCHD_SERVICE_AUTH_HOST_ALLOW_LIST_H_
#define FETCHD_SERVICE_AUTH_HOST_ALLOW_LIST_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fetchd::auth {

class HostAllowList {
 public:
  // Allows every host.
  HostAllowList() = default;

  // Errors: InvalidArgument "`field`[i]: rule" for an empty pattern, one
  // with characters a host can't have ('/', ':', '@', spaces...), or a '*'
  // anywhere but a leading "*." (or alone).
  [[nodiscard]] static absl::StatusOr<HostAllowList> Create(
      absl::Span<const std::string> patterns, absl::string_view field);

  // Whether `host` (lower or upper case) matches a pattern.
  [[nodiscard]] bool Allows(absl::string_view host) const;
  bool allows_all() const {
    return any_ || (exact_.empty() && suffixes_.empty());
  }

 private:
  bool any_ = false;
  // Lower case.
  std::vector<std::string> exact_;
  // ".example.org" for "*.example.org".
  std::vector<std::string> suffixes_;
};

// The host of a FetchJob host_key ("scheme://host:port", lower case), with
// the brackets of an IPv6 literal removed.
absl::string_view HostOfKey(absl::string_view host_key);

}  // namespace fetchd::auth

#endif  // FETCHD_SERVICE_AUTH_HOST_ALLOW_LIST_H_

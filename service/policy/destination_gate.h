// DestinationGate: the one check of where fetchd may go, used before any
// I/O (request validation, the WebSocket opener), on every redirect hop,
// and when a connection is made (curl's open-socket and pre-request
// callbacks, the WebSocket transport's resolved addresses).
//
// A target (scheme, host, port) passes when the scheme is one fetchd
// speaks, the host — a name, or an IP literal in any spelling, IPv6 with
// or without brackets — passes the AddressPolicy's name and literal rules,
// and the caller's allowed hosts (if any) list it. An address passes when
// the AddressPolicy allows it. A refusal is a Denial: the rule's bounded
// category (for metrics) and a message that names the destination, the
// rule, and, for the built-in ranges and names, how an operator lifts it.
//
// What the gate can't see: through a proxy, fetchd connects to the proxy,
// so the connect-time check applies to the proxy's address; the target's
// name is resolved by the proxy, so only the name rules and literal
// addresses apply to it (docs/security.md).
//
// Thread-safety: immutable after construction; every method may be called
// from any thread.
#ifndef FETCHD_SERVICE_POLICY_DESTINATION_GATE_H_
#define FETCHD_SERVICE_POLICY_DESTINATION_GATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "service/policy/address_policy.h"

namespace fetchd::policy {

// Why a destination was refused.
struct Denial {
  // A bounded label: a policy category (AddressPolicy::DenialCategories()),
  // "scheme", or "caller".
  std::string category;
  std::string message;
};

// A caller's own destination rule: nullopt if the caller may fetch `host`
// (a name or an IP literal without brackets), else why not.
using HostRule =
    std::function<std::optional<std::string>(absl::string_view host)>;

class DestinationGate {
 public:
  // `policy` null: every destination passes (engine tests only).
  explicit DestinationGate(std::shared_ptr<const AddressPolicy> policy)
      : policy_(std::move(policy)) {}

  // The target of a request, a redirect hop or a WebSocket. `scheme` in
  // lower case; `caller` may be null (no caller rule). `what` prefixes the
  // message of a policy denial ("url", "redirect 2 (302)", "open.url"); a
  // caller's denial is its rule's own message.
  std::optional<Denial> CheckTarget(absl::string_view what,
                                    absl::string_view scheme,
                                    absl::string_view host, uint16_t port,
                                    const HostRule* caller) const;

  // An address about to be connected to.
  std::optional<Denial> CheckAddress(const IpAddress& address,
                                     uint16_t port) const;

  const AddressPolicy* policy() const { return policy_.get(); }

 private:
  const std::shared_ptr<const AddressPolicy> policy_;
};

// "a.b.c.d:port" or "[v6]:port".
std::string AddressText(const IpAddress& address, uint16_t port);

}  // namespace fetchd::policy

#endif  // FETCHD_SERVICE_POLICY_DESTINATION_GATE_H_

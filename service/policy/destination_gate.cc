#include "service/policy/destination_gate.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fetchd::policy {
namespace {

constexpr std::array<absl::string_view, 4> kSchemes = {"http", "https", "ws",
                                                       "wss"};

// How an operator lifts a built-in denial, for the message; empty for the
// operator's own rules.
std::string WayOut(absl::string_view category) {
  if (category == "host") {
    return "; to allow this name, add it to policy.allow_hosts (see "
           "docs/security.md)";
  }
  if (category == "deny" || category == "port" || category == "invalid-host" ||
      category == "default") {
    return "";
  }
  // A built-in address range (loopback, private, link-local, ...).
  return "; to allow it, add the range to policy.allow or pass "
         "--policy_allow=CIDR (see docs/security.md)";
}

Denial FromDecision(std::string what, const Decision& decision) {
  return Denial{decision.category,
                absl::StrCat(what, " denied by policy (rule: ", decision.rule,
                             ")", WayOut(decision.category))};
}

}  // namespace

std::string AddressText(const IpAddress& address, uint16_t port) {
  return address.is_v4() ? absl::StrCat(address.ToString(), ":", port)
                         : absl::StrCat("[", address.ToString(), "]:", port);
}

std::optional<Denial> DestinationGate::CheckTarget(
    absl::string_view what, absl::string_view scheme, absl::string_view host,
    uint16_t port, const HostRule* caller) const {
  if (std::find(kSchemes.begin(), kSchemes.end(), scheme) == kSchemes.end()) {
    return Denial{"scheme",
                  absl::StrCat(what, ": scheme \"", scheme,
                               "\" is not allowed (http, https, ws, wss)")};
  }
  if (policy_ != nullptr) {
    if (const Decision decision = policy_->CheckHostName(host, port);
        !decision.allowed) {
      return FromDecision(absl::StrCat(what, ": destination ", host, ":", port),
                          decision);
    }
  }
  if (caller != nullptr && *caller) {
    absl::string_view bare(host.data(), host.size());
    if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']') {
      bare = bare.substr(1, bare.size() - 2);
    }
    if (std::optional<std::string> why = (*caller)(bare)) {
      return Denial{"caller", *std::move(why)};
    }
  }
  return std::nullopt;
}

std::optional<Denial> DestinationGate::CheckAddress(const IpAddress& address,
                                                    uint16_t port) const {
  if (policy_ == nullptr) return std::nullopt;
  const Decision decision = policy_->Check(address, port);
  if (decision.allowed) return std::nullopt;
  return FromDecision(absl::StrCat("destination ", AddressText(address, port)),
                      decision);
}

}  // namespace fetchd::policy

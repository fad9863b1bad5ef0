// The AddressPolicy a server config asks for: fetch.v1.DestinationPolicy
// (proto/fetch/v1/config.proto) turned into AddressPolicy::Options.
#ifndef FETCHD_SERVICE_POLICY_POLICY_CONFIG_H_
#define FETCHD_SERVICE_POLICY_POLICY_CONFIG_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "service/policy/address_policy.h"
#include "service/policy/destination_gate.h"

namespace fetchd::policy {

// Errors (InvalidArgument) name the config field, e.g.
// `policy.allow[1]: invalid CIDR "10.0.0.1/8": host bits set below /8` or
// `policy.allowed_ports[0]: 70000 is not a port (1..65535)`.
[[nodiscard]] absl::StatusOr<AddressPolicy> AddressPolicyFromConfig(
    const fetch::v1::DestinationPolicy& config);

// The DestinationGate of that policy; same errors.
absl::StatusOr<std::shared_ptr<const DestinationGate>>
DestinationGateFromConfig(const fetch::v1::DestinationPolicy& config);

}  // namespace fetchd::policy

#endif  // FETCHD_SERVICE_POLICY_POLICY_CONFIG_H_

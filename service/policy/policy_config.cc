#include "service/policy/policy_config.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"

namespace fetchd::policy {
namespace {

absl::StatusOr<std::vector<uint16_t>> Ports(
    const google::protobuf::RepeatedField<uint32_t>& ports,
    const std::string& field) {
  std::vector<uint16_t> out;
  out.reserve(ports.size());
  for (int i = 0; i < ports.size(); ++i) {
    if (ports[i] == 0 || ports[i] > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "]: ", ports[i], " is not a port (1..65535)"));
    }
    out.push_back(static_cast<uint16_t>(ports[i]));
  }
  return out;
}

absl::Status Rules(
    const google::protobuf::RepeatedPtrField<fetch::v1::AddressRule>& rules,
    const std::string& field, std::vector<AddressRule>* out) {
  for (int i = 0; i < rules.size(); ++i) {
    FETCHD_ASSIGN_OR_RETURN(
        std::vector<uint16_t> ports,
        Ports(rules[i].ports(), absl::StrCat(field, "[", i, "].ports")));
    out->push_back(AddressRule{rules[i].cidr(), std::move(ports)});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AddressPolicy> AddressPolicyFromConfig(
    const fetch::v1::DestinationPolicy& config) {
  AddressPolicy::Options options;
  options.deny_by_default_ranges =
      !config.has_deny_special_ranges() || config.deny_special_ranges();
  FETCHD_RETURN_IF_ERROR(Rules(config.allow(), "policy.allow", &options.allow));
  FETCHD_RETURN_IF_ERROR(Rules(config.deny(), "policy.deny", &options.deny));
  options.allow_host_patterns.assign(config.allow_hosts().begin(),
                                     config.allow_hosts().end());
  options.deny_host_patterns.assign(config.deny_hosts().begin(),
                                    config.deny_hosts().end());
  FETCHD_ASSIGN_OR_RETURN(options.allowed_ports, Ports(config.allowed_ports(),
                                                       "policy.allowed_ports"));

  absl::StatusOr<AddressPolicy> policy = AddressPolicy::Create(options);
  if (!policy.ok()) {
    // Create() names the option as AddressPolicy::Options does; the config
    // spells the host lists differently.
    std::string message(policy.status().message());
    for (const auto& [from, to] : {std::pair<std::string, std::string>{
                                       "allow_host_patterns", "allow_hosts"},
                                   {"deny_host_patterns", "deny_hosts"}}) {
      if (message.rfind(from, 0) == 0) message.replace(0, from.size(), to);
    }
    return absl::InvalidArgumentError(absl::StrCat("policy.", message));
  }
  return policy;
}

absl::StatusOr<std::shared_ptr<const DestinationGate>>
DestinationGateFromConfig(const fetch::v1::DestinationPolicy& config) {
  absl::StatusOr<AddressPolicy> policy = AddressPolicyFromConfig(config);
  if (!policy.ok()) return policy.status();
  return std::make_shared<const DestinationGate>(
      std::make_shared<const AddressPolicy>(*std::move(policy)));
}

}  // namespace fetchd::policy

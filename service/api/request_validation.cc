#include "service/api/request_validation.h"

#include <utility>

#include "service/api/request_checks.h"
#include "service/common/status_macros.h"

namespace fetchd::api {

using fetch::v1::FetchRequest;

RequestValidator::RequestValidator(const fetch::v1::ServerConfig& config,
                                   const policy::DestinationGate* gate)
    : rules_(JobRules::FromConfig(config, gate)),
      server_defaults_(config.request_defaults()),
      max_batch_size_(config.limits().max_batch_size()) {}

absl::Status RequestValidator::CheckServerDefaults() const {
  return api::CheckServerDefaults(server_defaults_, rules_.bounds);
}

absl::Status RequestValidator::ValidateBatch(
    const fetch::v1::BatchRequest& batch) const {
  return CheckBatch(batch, rules_.bounds, max_batch_size_);
}

absl::Status RequestValidator::ValidateStreamOptions(
    const fetch::v1::BatchRequest& options) const {
  if (options.requests_size() > 0) {
    return absl::InvalidArgumentError(
        "options.requests: must be empty (a FetchStream's requests go in "
        "FetchStreamRequest.requests)");
  }
  return CheckBatchOptions(options, rules_.bounds, "options.");
}

FetchRequest RequestValidator::EffectiveDefaults(
    const FetchRequest& call_defaults) const {
  return api::EffectiveDefaults(server_defaults_, call_defaults);
}

absl::StatusOr<std::unique_ptr<core::FetchJob>> RequestValidator::Build(
    const FetchRequest& defaults, const FetchRequest& request, uint32_t index,
    const policy::HostRule* caller) const {
  FETCHD_RETURN_IF_ERROR(CheckRequest(request, rules_.bounds));
  return BuildJob(rules_, MergedRequest(defaults, request), index, caller);
}

}  // namespace fetchd::api

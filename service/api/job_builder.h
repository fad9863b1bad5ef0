// Step 3 of a request's way in (parse/validate → merge defaults → build the
// job → submit): the request merged over its defaults becomes a FetchJob.
// What only the merged request can show is checked here (the body cap of a
// streamed or inline body, header counts and bytes with the defaults and
// with what fetchd adds, the URL with its query parameters), the
// destination passes the DestinationGate (scheme, host, caller's allowed
// hosts, resolve pins), and the body, credentials and connection options
// are turned into the job's plain fields. Pure: no I/O, no clock.
//
// Errors: InvalidArgument "field: rule"; PermissionDenied for a refused
// destination, carrying the rule's category (PolicyCategory()).
#ifndef FETCHD_SERVICE_API_JOB_BUILDER_H_
#define FETCHD_SERVICE_API_JOB_BUILDER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/fetch_job.h"
#include "service/policy/destination_gate.h"

namespace fetchd::api {

// What the server says about every job.
struct JobRules {
  fetch::v1::RequestBounds bounds;
  // The body cap of an inline body when the request sets none
  // (request_defaults.max_body_bytes; a streamed body's is
  // bounds.max_stream_body_bytes).
  uint64_t default_max_body_bytes = 0;
  // Must outlive the rules.
  const policy::DestinationGate* gate = nullptr;

  static JobRules FromConfig(const fetch::v1::ServerConfig& config,
                             const policy::DestinationGate* gate);
};

// The job for `effective` (a request merged over its defaults, whose own
// fields passed CheckRequest) at position `index`. `caller`: the caller's
// destination rule, or null. The job's batch is left unset.
absl::StatusOr<std::unique_ptr<core::FetchJob>> BuildJob(
    const JobRules& rules, fetch::v1::FetchRequest effective, uint32_t index,
    const policy::HostRule* caller);

// The category of the policy rule that refused a request (see
// policy::Denial::category), from a PermissionDenied status of BuildJob;
// empty for other statuses.
std::string PolicyCategory(const absl::Status& status);

// A PermissionDenied status for a policy refusal, carrying its category.
absl::Status PolicyDenied(absl::string_view message,
                          absl::string_view category);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_JOB_BUILDER_H_

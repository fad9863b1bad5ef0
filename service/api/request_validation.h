// Turns API requests into FetchJobs: merges server defaults, batch defaults
// and the request's own fields, then checks every field against the server's
// bounds. Pure: no I/O, no clock, no shared state.
//
// Errors are absl::InvalidArgumentError with a message that names the field
// and the rule, e.g. `timeouts.total: 600s exceeds the server maximum 300s`.
// A bad batch option fails the whole call; a bad request becomes that item's
// result with error INVALID_REQUEST and the rest of the batch runs.
//
// The destination policy (config.policy) is applied here to what can be
// decided before any I/O: the scheme (only http and https) and the URL's
// host (IP literals in every spelling, and names that must never be
// resolved, such as localhost). A refusal is absl::PermissionDeniedError,
// which becomes the item's DENIED result; PolicyCategory() tells the rule's
// category for the metrics. Addresses a name resolves to are checked by the
// transport when it connects.
#ifndef FETCHD_SERVICE_API_REQUEST_VALIDATION_H_
#define FETCHD_SERVICE_API_REQUEST_VALIDATION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/fetch_job.h"
#include "service/policy/address_policy.h"
#include "service/transport/http_url.h"

namespace fetchd::api {

class RequestValidator {
 public:
  // `config` must already be validated (config/server_config.h).
  explicit RequestValidator(const fetch::v1::ServerConfig& config);

  // Checks the server's request_defaults against its bounds, and its
  // destination policy (at start-up).
  absl::Status CheckServerDefaults() const;

  // Batch-level checks: size within [1, limits.max_batch_size], defaults
  // without id or url and with options inside the bounds.
  absl::Status ValidateBatch(const fetch::v1::BatchRequest& batch) const;

  // The server defaults with the batch's (validated) defaults laid over
  // them: computed once per batch, passed to Build().
  fetch::v1::FetchRequest EffectiveDefaults(
      const fetch::v1::FetchRequest& batch_defaults) const;

  // The job for `request` (position `index`), with `base` (from
  // EffectiveDefaults) applied under it. The job's batch is left unset.
  absl::StatusOr<std::unique_ptr<core::FetchJob>> Build(
      const fetch::v1::FetchRequest& base,
      const fetch::v1::FetchRequest& request, uint32_t index) const;

 private:
  absl::Status CheckOptions(const fetch::v1::FetchRequest& request,
                            const std::string& prefix) const;
  // TLS, proxy, HTTP version and resolve pins of the merged request `r`
  // (whose URL is `url`) into `job`.
  absl::Status ApplyConnectionOptions(const fetch::v1::FetchRequest& r,
                                      const transport::HttpUrl& url,
                                      core::FetchJob* job) const;
  // max_body_bytes against the bound for inline or streamed bodies.
  absl::Status CheckBodyCap(const fetch::v1::FetchRequest& request,
                            const std::string& prefix) const;

  const fetch::v1::RequestBounds bounds_;
  // Set when config.policy is valid; policy_status_ says why not otherwise.
  std::optional<policy::AddressPolicy> policy_;
  absl::Status policy_status_;
  const fetch::v1::FetchRequest server_defaults_;
  const uint32_t max_batch_size_;
};

// The category of the policy rule that refused a request (see
// policy::Decision::category, plus "scheme"), from a PermissionDenied status
// of RequestValidator::Build; empty for other statuses.
std::string PolicyCategory(const absl::Status& status);

// A PermissionDenied status for a policy refusal, carrying its category.
absl::Status PolicyDenied(absl::string_view message,
                          absl::string_view category);

// `dst` with the fields set in `src` laid over it (MergeOver: a Duration
// replaces the previous one whole). Headers are appended;
// a non-empty retry_on / retry_on_status list replaces the previous one.
void MergeRequest(const fetch::v1::FetchRequest& src,
                  fetch::v1::FetchRequest* dst);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_REQUEST_VALIDATION_H_

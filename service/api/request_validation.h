// RequestValidator: a call's requests on their way in, as one forward pass
// over the pipeline's steps — CheckRequest (request_checks.h: each message
// on its own) → MergedRequest (request_merge.h: over the call's defaults)
// → BuildJob (job_builder.h: the merged request into a FetchJob, through the
// destination gate). SubmitRequests (submit_requests.h) runs it for every
// request of a call and hands the jobs to the Fetcher.
//
// A bad batch option fails the whole call; a bad request becomes that
// item's result (INVALID_REQUEST, or DENIED for a refused destination) and
// the rest of the batch runs.
//
// Thread-safety: immutable; every method may be called from any thread.
#ifndef FETCHD_SERVICE_API_REQUEST_VALIDATION_H_
#define FETCHD_SERVICE_API_REQUEST_VALIDATION_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "service/api/job_builder.h"
#include "service/api/request_merge.h"
#include "service/core/fetch_job.h"
#include "service/policy/destination_gate.h"

namespace fetchd::api {

class RequestValidator {
 public:
  // `config` must already be validated (config/server_config.h); `gate`
  // must outlive the validator.
  RequestValidator(const fetch::v1::ServerConfig& config,
                   const policy::DestinationGate* gate);

  // Checks the server's request_defaults against its bounds (at start-up).
  absl::Status CheckServerDefaults() const;

  // Batch-level checks (CheckBatch).
  absl::Status ValidateBatch(const fetch::v1::BatchRequest& batch) const;
  // A FetchStream's options (FetchStreamRequest.options): no requests, and
  // CheckBatchOptions with fields named "options.*".
  absl::Status ValidateStreamOptions(
      const fetch::v1::BatchRequest& options) const;

  // The server defaults with the call's (validated) defaults laid over
  // them: computed once per call, passed to Build().
  fetch::v1::FetchRequest EffectiveDefaults(
      const fetch::v1::FetchRequest& call_defaults) const;

  // The job for `request` (position `index`) with `defaults` (from
  // EffectiveDefaults) under it; `caller` is the caller's destination rule
  // or null. The job's batch is left unset.
  absl::StatusOr<std::unique_ptr<core::FetchJob>> Build(
      const fetch::v1::FetchRequest& defaults,
      const fetch::v1::FetchRequest& request, uint32_t index,
      const policy::HostRule* caller = nullptr) const;

 private:
  const JobRules rules_;
  const fetch::v1::FetchRequest server_defaults_;
  const uint32_t max_batch_size_;
};

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_REQUEST_VALIDATION_H_

// Retry decisions for one request, as pure functions: given what an attempt
// ended with, whether and when to try again. Envoy's model: full-jitter
// exponential backoff, Retry-After honoured up to a cap, bounded by the
// request's deadline, non-idempotent methods only retried when nothing was
// sent (or when the caller opts in).
//
// Thread-safety: stateless; the random source is the caller's.
#ifndef FETCHD_SERVICE_CORE_RETRY_POLICY_H_
#define FETCHD_SERVICE_CORE_RETRY_POLICY_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::core {

// The effective retry policy of one request (after defaults and bounds).
struct RetryParams {
  int max_attempts = 1;
  absl::Duration base_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  std::vector<fetch::v1::ErrorKind> retry_on;
  std::vector<uint32_t> retry_on_status;
  bool honor_retry_after = true;
  // Server cap on a Retry-After wait.
  absl::Duration max_retry_after = absl::Seconds(60);
  bool retry_non_idempotent = false;
};

// What one attempt ended with.
struct AttemptOutcome {
  fetch::v1::ErrorKind error = fetch::v1::ERROR_KIND_NONE;
  uint32_t status = 0;
  // True once the request may have reached the server (the connection was
  // up when the attempt failed). False for DNS/connect failures.
  bool request_sent = false;
  // Retry-After of the response, when it had one.
  std::optional<absl::Duration> retry_after;
  // One of fetchd's own limits ended the attempt (response headers or body
  // too large): the same response would end the next one too, so it is
  // never retried, whatever retry_on says.
  bool over_limit = false;
};

// Why a request is retried (a bounded label for metrics): a failure kind
// in retry_on; a status in retry_on_status, after a backoff; such a status
// whose Retry-After header set the delay (it was longer than the backoff).
enum class RetryReason { kError, kStatus, kRetryAfter };

struct RetryDecision {
  RetryReason reason;
  absl::Duration delay;
};

// Default failure kinds and statuses retried when the policy lists none.
const std::vector<fetch::v1::ErrorKind>& DefaultRetryOn();
const std::vector<uint32_t>& DefaultRetryOnStatus();

// GET, HEAD, PUT, DELETE and OPTIONS are idempotent (RFC 9110 9.2.2).
[[nodiscard]] bool IsIdempotent(absl::string_view method);

// Whether the policy retries an attempt that ended with `error` and HTTP
// `status`, and why: a status in retry_on_status (errors NONE and
// HTTP_STATUS: the status decides), or a failure kind in retry_on. Only the
// classification: attempts left, method safety, fetchd's own limits and the
// deadline are DecideRetry's. Nullopt: not retryable.
[[nodiscard]] std::optional<RetryReason> RetryableReason(
    const RetryParams& params, fetch::v1::ErrorKind error, uint32_t status);

// Full-jitter backoff before retry number `retry` (1 = first retry):
// uniform in [0, min(max_backoff, base_backoff * 2^(retry-1))].
[[nodiscard]] absl::Duration FullJitterBackoff(const RetryParams& params,
                                               int retry, absl::BitGenRef rng);

// Decides whether to retry after `attempts_made` attempts ended with
// `outcome`. Returns nullopt when the request is final: a success, a failure
// the policy doesn't retry, attempts exhausted, an unsafe method that was
// sent, or a delay that would not end before `time_left` (the time until the
// request's deadline) runs out.
[[nodiscard]] std::optional<RetryDecision> DecideRetry(
    const RetryParams& params, const AttemptOutcome& outcome, int attempts_made,
    bool idempotent, absl::Duration time_left, absl::BitGenRef rng);

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_RETRY_POLICY_H_

#include "service/core/retry_policy.h"

#include <algorithm>

#include "absl/random/distributions.h"

namespace fetchd::core {

using fetch::v1::ErrorKind;

const std::vector<ErrorKind>& DefaultRetryOn() {
  static const auto* kinds = new std::vector<ErrorKind>{
      fetch::v1::ERROR_KIND_CONNECT, fetch::v1::ERROR_KIND_DNS,
      fetch::v1::ERROR_KIND_CONNECT_TIMEOUT, fetch::v1::ERROR_KIND_PROTOCOL};
  return *kinds;
}

const std::vector<uint32_t>& DefaultRetryOnStatus() {
  static const auto* statuses = new std::vector<uint32_t>{429, 502, 503, 504};
  return *statuses;
}

bool IsIdempotent(absl::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" ||
         method == "DELETE" || method == "OPTIONS";
}

std::optional<RetryReason> RetryableReason(const RetryParams& params,
                                           ErrorKind error, uint32_t status) {
  if (error == fetch::v1::ERROR_KIND_NONE ||
      error == fetch::v1::ERROR_KIND_HTTP_STATUS) {
    const auto& statuses = params.retry_on_status.empty()
                               ? DefaultRetryOnStatus()
                               : params.retry_on_status;
    if (std::find(statuses.begin(), statuses.end(), status) == statuses.end()) {
      return std::nullopt;
    }
    return RetryReason::kStatus;
  }
  const auto& kinds =
      params.retry_on.empty() ? DefaultRetryOn() : params.retry_on;
  if (std::find(kinds.begin(), kinds.end(), error) == kinds.end()) {
    return std::nullopt;
  }
  return RetryReason::kError;
}

absl::Duration FullJitterBackoff(const RetryParams& params, int retry,
                                 absl::BitGenRef rng) {
  absl::Duration ceiling = params.base_backoff;
  for (int i = 1; i < retry && ceiling < params.max_backoff; ++i) {
    ceiling *= 2;
  }
  ceiling = std::min(ceiling, params.max_backoff);
  if (ceiling <= absl::ZeroDuration()) return absl::ZeroDuration();
  const int64_t max_us = absl::ToInt64Microseconds(ceiling);
  return absl::Microseconds(
      absl::Uniform<int64_t>(absl::IntervalClosed, rng, int64_t{0}, max_us));
}

std::optional<RetryDecision> DecideRetry(const RetryParams& params,
                                         const AttemptOutcome& outcome,
                                         int attempts_made, bool idempotent,
                                         absl::Duration time_left,
                                         absl::BitGenRef rng) {
  if (attempts_made >= params.max_attempts || outcome.over_limit) {
    return std::nullopt;
  }

  std::optional<RetryReason> retryable =
      RetryableReason(params, outcome.error, outcome.status);
  if (!retryable.has_value()) return std::nullopt;
  RetryReason reason = *retryable;
  if (outcome.request_sent && !idempotent && !params.retry_non_idempotent) {
    return std::nullopt;
  }

  absl::Duration delay = FullJitterBackoff(params, attempts_made, rng);
  if (params.honor_retry_after && outcome.retry_after.has_value() &&
      (outcome.status == 429 || outcome.status == 503)) {
    const absl::Duration retry_after =
        std::min(*outcome.retry_after, params.max_retry_after);
    if (retry_after > delay) {
      delay = retry_after;
      reason = RetryReason::kRetryAfter;
    }
  }
  if (delay >= time_left) return std::nullopt;
  return RetryDecision{reason, delay};
}

}  // namespace fetchd::core

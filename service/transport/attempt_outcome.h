// Outcome classification of one finished attempt, as a pure function: what
// curl returned and what fetchd saw (its own aborts, the policy's refusal,
// the HTTP status, the timeouts in force) become the result's error kind and
// message, plus the facts the retry policy needs beyond them.
//
// Rules worth knowing:
//  - fetchd's own aborts come first (body or headers over a limit, read
//    idle, cancelled); then a policy refusal behind a failed connect;
//  - a TLS alert received after the handshake (TLS 1.3 sends a refused
//    client certificate's alert with the first read) is TLS, as the same
//    refusal is during a TLS 1.2 handshake;
//  - a body over max_body_bytes is one error whoever noticed it (the write
//    callback counting decoded bytes, or curl refusing a Content-Length),
//    with one message naming the limit;
//  - a total timeout cut short by the RPC deadline is DEADLINE_EXCEEDED.
//
// Thread-safety: stateless.
#ifndef FETCHD_SERVICE_TRANSPORT_ATTEMPT_OUTCOME_H_
#define FETCHD_SERVICE_TRANSPORT_ATTEMPT_OUTCOME_H_

#include <curl/curl.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/politeness/host_limiter.h"
#include "service/core/retry_policy.h"

namespace fetchd::transport {

// Why fetchd itself stopped a transfer, if it did.
enum class Abort {
  kNone,
  kBodyTooLarge,
  kHeadersTooLarge,
  kReadIdle,
  kCancelled
};

// Everything the classification reads. Plain data; views must outlive the
// call.
struct AttemptFacts {
  CURLcode code = CURLE_OK;
  Abort abort = Abort::kNone;
  // curl's error buffer, or curl_easy_strerror(code) when it is empty.
  absl::string_view curl_detail;
  // The request was about to go out on a connection (CURLOPT_PREREQFUNCTION
  // ran): the server may have seen it.
  bool connected = false;
  uint32_t status = 0;
  bool fail_on_http_error = false;
  // The message of the first address the destination gate refused in this
  // attempt (policy::Denial::message), if any.
  std::optional<absl::string_view> denial;
  // The attempt's total timeout (the request's, cut to the RPC deadline)
  // and the request's own limits.
  absl::Duration attempt_timeout;
  absl::Duration total_timeout;
  absl::Duration connect_timeout;
  absl::Duration read_idle_timeout;
  uint64_t max_body_bytes = 0;
  uint32_t max_response_header_bytes = 0;
};

struct ClassifiedOutcome {
  fetch::v1::ErrorKind error = fetch::v1::ERROR_KIND_NONE;
  // Empty when error is NONE.
  std::string message;
  // One of fetchd's own limits ended the attempt: never retried.
  bool over_limit = false;
  // The destination policy refused the attempt's address (error DENIED).
  bool denied = false;
};

// The error kind of a failed curl code alone; `connected` and
// `connect_timeout_binds` (the connect timeout is not longer than the
// attempt's total timeout) pick between the kinds some codes stand for, and
// `detail` (curl's message) tells a TLS alert from other read/send errors.
[[nodiscard]] fetch::v1::ErrorKind ClassifyCurlError(CURLcode code,
                                                     bool connected,
                                                     bool connect_timeout_binds,
                                                     absl::string_view detail);

// The error and message of an attempt (see the rules above).
[[nodiscard]] ClassifiedOutcome ClassifyAttempt(const AttemptFacts& facts);

// How an attempt ended, for politeness (breaker, host pause, adaptive
// limit): DNS, connect and TLS errors, and a connection that gave no
// response (reset, empty reply) are kConnectFailed; connect, transfer and
// read-idle timeouts kTimedOut; a response kResponse with its status and
// Retry-After; what fetchd ended itself (cancelled, denied by policy, over
// one of its limits, the RPC deadline, an internal error) kAborted, which
// counts for nothing.
[[nodiscard]] core::politeness::AttemptResult AttemptResultOf(
    const core::AttemptOutcome& outcome);

// "response body exceeds max_body_bytes (N bytes)": the one message of
// BODY_TOO_LARGE for a response body.
[[nodiscard]] std::string BodyTooLargeMessage(uint64_t max_body_bytes);

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_ATTEMPT_OUTCOME_H_

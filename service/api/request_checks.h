// Step 1 of a request's way in (parse/validate → merge defaults → build the
// job → submit): each message checked on its own against the server's
// bounds, before anything is merged. Pure functions.
//
// Errors are absl::InvalidArgumentError with a message that names the field
// and the rule, e.g. `timeouts.total: 600s exceeds the server maximum 300s`;
// field names start with `prefix` ("defaults." for a batch's defaults,
// "request_defaults." for the server's).
#ifndef FETCHD_SERVICE_API_REQUEST_CHECKS_H_
#define FETCHD_SERVICE_API_REQUEST_CHECKS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::api {

// FetchRequest.chunk_bytes: the smallest accepted.
inline constexpr uint32_t kMinChunkBytes = 1024;

// A request of a call: a url within bounds.max_url_bytes, and its own
// fields (CheckRequestFields).
absl::Status CheckRequest(const fetch::v1::FetchRequest& request,
                          const fetch::v1::RequestBounds& bounds);

// A batch: size within [1, max_batch_size] (past it, the message names
// FetchStream as the way to send more), and its options (CheckBatchOptions).
absl::Status CheckBatch(const fetch::v1::BatchRequest& batch,
                        const fetch::v1::RequestBounds& bounds,
                        uint32_t max_batch_size);

// A batch's options without its requests: politeness.rate a number in
// [0, 1e9], defaults without id or url and with fields inside the bounds.
// Field names in errors start with `prefix` ("options." in a FetchStream).
absl::Status CheckBatchOptions(const fetch::v1::BatchRequest& batch,
                               const fetch::v1::RequestBounds& bounds,
                               absl::string_view prefix);

// The server's request_defaults (at start-up): every timeout and
// retry.max_attempts set, and the fields inside the bounds.
absl::Status CheckServerDefaults(const fetch::v1::FetchRequest& defaults,
                                 const fetch::v1::RequestBounds& bounds);

// The fields of one message: method, headers (names, values, framing,
// counts and bytes), body and content, timeouts, retry, redirects, body cap
// (for a message with a prefix; a request's own cap is checked once merged,
// when it is known whether the body is streamed), chunk size.
absl::Status CheckRequestFields(const fetch::v1::FetchRequest& request,
                                const fetch::v1::RequestBounds& bounds,
                                const std::string& prefix);

// max_body_bytes against the bound for an inline or a streamed body.
absl::Status CheckBodyCap(const fetch::v1::FetchRequest& request,
                          const fetch::v1::RequestBounds& bounds,
                          const std::string& prefix);

// The bytes of the headers (names and values, plus ": " and CRLF each)
// within `max_bytes`.
absl::Status CheckHeaderBytes(const fetch::v1::FetchRequest& request,
                              uint32_t max_bytes, const std::string& prefix);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_REQUEST_CHECKS_H_

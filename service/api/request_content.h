// What a FetchRequest sends besides its method and headers: query
// parameters, the body in one of its kinds (raw bytes, JSON, urlencoded
// form, multipart) and the target's credentials (Basic, Bearer). Checked
// here and turned into the FetchJob's URL, body, multipart parts and header
// lines, so that the transport sees plain bytes and header lines: a
// credential is an "Authorization" line, dropped on cross-origin redirects
// like any other (curl_worker.cc RedirectJob) and never logged.
//
// Thread-safety: pure functions.
#ifndef FETCHD_SERVICE_API_REQUEST_CONTENT_H_
#define FETCHD_SERVICE_API_REQUEST_CONTENT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "service/core/fetch_job.h"

namespace fetchd::api {

// Checks the query, body and credential fields of one message (a request,
// or the batch's or the server's defaults) on their own. Field names in
// errors start with `prefix` ("defaults." for the batch defaults).
//
// Errors (INVALID_ARGUMENT, "field: rule"): an empty query, form or
// multipart name; `body` together with a body_kind (naming both); empty or
// unparsable json; no multipart parts; CR, LF or NUL in a multipart name,
// filename or content type, or a content type that is not "type/subtype";
// a body of any kind over bounds.max_request_body_bytes; ':' in a
// basic_auth username; a bearer_token that is empty or not a token68 (the
// message never quotes credentials).
absl::Status CheckRequestContent(const fetch::v1::FetchRequest& request,
                                 const fetch::v1::RequestBounds& bounds,
                                 const std::string& prefix);

// Before `src` is merged over `dst` (defaults): clears the body and the
// credentials of `dst` that `src` replaces, so that a request's body or
// credentials replace the defaults' instead of merging field by field.
void ClearReplacedContent(const fetch::v1::FetchRequest& src,
                          fetch::v1::FetchRequest* dst);

// Moves the body and credentials of `effective` (the request merged over
// its defaults, each already checked by CheckRequestContent) into `job`:
// job->body (raw, json or encoded form), job->multipart, and header lines
// appended to job->header_lines (Content-Type for json and form unless
// `effective` has one; Authorization for the credentials). job->method must
// be set.
//
// Errors (INVALID_ARGUMENT) on combinations that only the merge can show:
// a body with HEAD; credentials together with an Authorization header; a
// multipart body with a Content-Type header; an encoded form over
// bounds.max_request_body_bytes.
absl::Status ApplyRequestContent(fetch::v1::FetchRequest& effective,
                                 const fetch::v1::RequestBounds& bounds,
                                 core::FetchJob* job);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_REQUEST_CONTENT_H_

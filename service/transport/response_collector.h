// Response collection: what one attempt learns of its response besides the
// body. Header lines arrive through CURLOPT_HEADERFUNCTION and become the
// result's headers (only the last response's, after a 100 Continue), the
// job's Set-Cookie values and a size hint for the body; once the transfer
// ends (or a streamed head goes out), curl's getinfo facts become the
// result's status, final URL, remote address, HTTP version, reuse, byte
// counts and timings.
//
// Thread-safety: none; the worker that runs the transfer calls them.
#ifndef FETCHD_SERVICE_TRANSPORT_RESPONSE_COLLECTOR_H_
#define FETCHD_SERVICE_TRANSPORT_RESPONSE_COLLECTOR_H_

#include <curl/curl.h>

#include <cstdint>

#include "absl/strings/string_view.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/fetch_job.h"

namespace fetchd::transport {

// What the header lines of one attempt told so far.
struct ResponseHeaderState {
  // Bytes of the current response's header lines.
  uint64_t bytes = 0;
  // The current response has a Location header.
  bool has_location = false;
};

// Takes one raw header line (with its CRLF) of the response to `job`:
// appends "Name: value" lines to `result`'s headers (a status line starts
// a new response and clears them), records Set-Cookie values in the job.
// Returns false when the response's header lines exceed
// job.max_response_header_bytes (the transfer must then be aborted).
[[nodiscard]] bool CollectHeaderLine(absl::string_view line,
                                     core::FetchJob& job,
                                     ResponseHeaderState& state,
                                     fetch::v1::FetchResult& result);

// Fills `result` with what curl knows of the transfer on `easy`:
// `connected` says whether a request went out (for connection_reused) and
// `body_bytes` is the body received (bytes_received).
void CollectTransferInfo(CURL* easy, bool connected, uint64_t body_bytes,
                         fetch::v1::FetchResult& result);

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_RESPONSE_COLLECTOR_H_

// The access log: one line per finished request (sampled), in logfmt, e.g.
//
//   access method=GET url=https://example.org:443/a/b status=200 outcome=ok
//   attempts=1 duration_ms=12.345 bytes_received=1500 bytes_sent=0
//
// (one line). It never contains headers, cookies, bodies, userinfo, query
// strings or fragments: those carry credentials and signed-URL signatures.
//
// Thread-safety: pure functions.
#ifndef FETCHD_SERVICE_METRICS_ACCESS_LOG_H_
#define FETCHD_SERVICE_METRICS_ACCESS_LOG_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/fetch_observer.h"

namespace fetchd::metrics {

// Longest URL written; a longer one is cut and ends in "...".
inline constexpr size_t kMaxLoggedUrlBytes = 1024;

// `url` as scheme://host:port/path: userinfo, query and fragment dropped.
// `host_key` ("scheme://host:port"), when not empty, stands for the scheme
// and authority. Works on invalid URLs too (best effort, same rules).
// Spaces, quotes, backslashes and bytes outside printable ASCII are
// percent-encoded, so the result is one logfmt value and one line.
std::string LoggableUrl(absl::string_view url, absl::string_view host_key);

// The access log line of `request` (see the file comment).
std::string AccessLogLine(const core::FinishedRequest& request,
                          const fetch::v1::FetchResult& result);

}  // namespace fetchd::metrics

#endif  // FETCHD_SERVICE_METRICS_ACCESS_LOG_H_

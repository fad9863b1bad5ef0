// Parsing of the absolute http(s) URLs fetchd fetches, by libcurl's own URL
// parser (CURLU), so that fetchd checks exactly the host and port curl will
// connect to. Used for the caller's URL and for every redirect target.
#ifndef FETCHD_SERVICE_URL_HTTP_URL_H_
#define FETCHD_SERVICE_URL_HTTP_URL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace fetchd::url {

struct HttpUrl {
  // The normalized URL, as curl will request it.
  std::string url;
  // "http" or "https".
  std::string scheme;
  // Lower case; an IPv6 literal keeps its brackets ("[::1]").
  std::string host;
  // The effective port (80/443 when the URL has none).
  uint16_t port = 0;
  // "scheme://host:port": the unit of per-host limits and sharding.
  std::string host_key;
};

// Errors:
//   InvalidArgument   malformed URL, no host, or user:password@ in the URL
//                     (credentials belong in headers, where they are
//                     redacted and dropped on cross-origin redirects);
//   PermissionDenied  a scheme other than http and https.
// Messages start with "url: " and say what is wrong.
absl::StatusOr<HttpUrl> ParseHttpUrl(const std::string& url);

// Checks a proxy URL: http://, https://, socks5:// or socks5h:// with a
// host, no path, no credentials (they have their own fields). Errors are
// InvalidArgument "`field`: rule".
absl::Status CheckProxyUrl(const std::string& url, absl::string_view field);

// Percent-encoding of every byte but the unreserved ones (RFC 3986), by
// curl: the encoding of query parameters and form fields.
std::string PercentEncode(absl::string_view text);

// A query parameter, unencoded.
struct QueryParam {
  absl::string_view name;
  absl::string_view value;
};

// `url` with `params` appended to its query as name=value pairs, each
// percent-encoded, by curl's URL API. Errors: InvalidArgument "url: ..." if
// curl cannot parse `url`, "query: ..." naming a parameter it cannot add.
absl::StatusOr<std::string> AppendQueryParams(
    const std::string& url, absl::Span<const QueryParam> params);

}  // namespace fetchd::url

#endif  // FETCHD_SERVICE_URL_HTTP_URL_H_

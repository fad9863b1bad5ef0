#include "service/metrics/access_log.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/metrics/labels.h"

namespace fetchd::metrics {
namespace {

void AppendEscaped(absl::string_view text, std::string* out) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f || c == '"' || c == '\\') {
      absl::StrAppendFormat(out, "%%%02X", byte);
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

std::string LoggableUrl(absl::string_view url, absl::string_view host_key) {
  absl::string_view scheme;  // "http://", when the URL has one
  absl::string_view rest = url;
  const size_t scheme_end = url.find("://");
  if (scheme_end != absl::string_view::npos &&
      scheme_end < url.find_first_of("/?#")) {
    scheme = url.substr(0, scheme_end + 3);
    rest = url.substr(scheme_end + 3);
  }
  // The authority (without a scheme: the first segment) ends at the first
  // '/', '?' or '#'; userinfo is everything up to its last '@'.
  const size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  absl::string_view authority = rest.substr(0, authority_end);
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  absl::string_view path = rest.substr(authority_end);
  path = path.substr(0, path.find_first_of("?#"));

  std::string out;
  if (!host_key.empty()) {
    AppendEscaped(host_key, &out);
  } else {
    AppendEscaped(scheme, &out);
    AppendEscaped(authority, &out);
  }
  AppendEscaped(path, &out);
  if (out.size() > kMaxLoggedUrlBytes) {
    out.resize(kMaxLoggedUrlBytes - 3);
    out.append("...");
  }
  return out;
}

std::string AccessLogLine(const core::FinishedRequest& request,
                          const fetch::v1::FetchResult& result) {
  return absl::StrFormat(
      "access method=%s url=%s status=%d outcome=%s attempts=%d "
      "duration_ms=%.3f bytes_received=%d bytes_sent=%d",
      kMethodLabels[MethodLabel(request.method)],
      LoggableUrl(request.url, request.host_key), result.status(),
      OutcomeName(OutcomeLabel(result.error())), result.attempts(),
      absl::ToDoubleMilliseconds(request.duration), result.bytes_received(),
      result.bytes_sent());
}

}  // namespace fetchd::metrics

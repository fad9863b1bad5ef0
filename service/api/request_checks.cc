#include "service/api/request_checks.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/api/request_content.h"
#include "service/common/proto_duration.h"
#include "service/common/status_macros.h"

namespace fetchd::api {
namespace {

using fetch::v1::FetchRequest;

constexpr absl::string_view kMethods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                          "PATCH", "DELETE", "OPTIONS"};

absl::Status Invalid(const std::string& field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

// RFC 9110 token characters.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return absl::string_view("!#$%&'*+-.^_`|~").find(c) !=
         absl::string_view::npos;
}

absl::Status CheckDuration(bool has, const google::protobuf::Duration& d,
                           const google::protobuf::Duration& max,
                           const std::string& field) {
  if (!has) return absl::OkStatus();
  if (!IsValidProtoDuration(d)) return Invalid(field, "not a valid duration");
  const absl::Duration value = FromProto(d);
  if (value <= absl::ZeroDuration()) return Invalid(field, "must be positive");
  if (value > FromProto(max)) {
    return Invalid(field, absl::StrCat(absl::FormatDuration(value),
                                       " exceeds the server maximum ",
                                       absl::FormatDuration(FromProto(max))));
  }
  return absl::OkStatus();
}

// Request headers that frame the message or the connection: curl sets them
// from the body and the connection it uses, and letting a caller set them
// opens request smuggling. Host is allowed only when the bounds say so.
constexpr absl::string_view kFramingHeaders[] = {
    "content-length", "transfer-encoding", "connection", "upgrade", "te",
    "keep-alive",     "proxy-connection",  "trailer"};

absl::Status CheckFraming(const fetch::v1::Header& h, bool allow_host,
                          const std::string& field) {
  const std::string name = absl::AsciiStrToLower(h.name());
  if (std::find(std::begin(kFramingHeaders), std::end(kFramingHeaders), name) !=
      std::end(kFramingHeaders)) {
    return Invalid(field, absl::StrCat("header \"", h.name(),
                                       "\" is set by fetchd from the "
                                       "request; callers are not allowed to "
                                       "set it"));
  }
  if (name == "host" && !allow_host) {
    return Invalid(field,
                   "header \"Host\" is not allowed "
                   "(request_bounds.allow_host_header is off)");
  }
  return absl::OkStatus();
}

absl::Status CheckHeaders(const FetchRequest& request,
                          const fetch::v1::RequestBounds& bounds,
                          const std::string& prefix) {
  const uint32_t max_headers = bounds.max_headers();
  if (static_cast<uint32_t>(request.headers_size()) > max_headers) {
    return Invalid(prefix + "headers",
                   absl::StrCat(request.headers_size(),
                                " headers exceed the limit of ", max_headers));
  }
  for (int i = 0; i < request.headers_size(); ++i) {
    const fetch::v1::Header& h = request.headers(i);
    const std::string field = absl::StrCat(prefix, "headers[", i, "]");
    if (h.name().find_first_of(std::string_view("\r\n\0", 3)) !=
        std::string::npos) {
      return Invalid(field,
                     absl::StrCat("header name \"", absl::CHexEscape(h.name()),
                                  "\" contains CR, LF or NUL"));
    }
    if (h.name().empty()) return Invalid(field, "empty header name");
    if (!std::all_of(h.name().begin(), h.name().end(), IsTokenChar)) {
      return Invalid(field,
                     absl::StrCat("header name \"", absl::CHexEscape(h.name()),
                                  "\" has a character not allowed in "
                                  "a token"));
    }
    if (h.value().find_first_of(std::string_view("\r\n\0", 3)) !=
        std::string::npos) {
      return Invalid(field, absl::StrCat("value of \"", h.name(),
                                         "\" contains CR, LF or NUL"));
    }
    FETCHD_RETURN_IF_ERROR(CheckFraming(h, bounds.allow_host_header(), field));
  }
  return CheckHeaderBytes(request, bounds.max_header_bytes(), prefix);
}

}  // namespace

// Names and values together, plus ": " and CRLF per header.
absl::Status CheckHeaderBytes(const FetchRequest& request, uint32_t max_bytes,
                              const std::string& prefix) {
  uint64_t bytes = 0;
  for (const fetch::v1::Header& h : request.headers()) {
    bytes += h.name().size() + h.value().size() + 4;
  }
  if (bytes > max_bytes) {
    return Invalid(
        prefix + "headers",
        absl::StrCat(bytes, " bytes of headers exceed the limit of ", max_bytes,
                     " (request_bounds.max_header_bytes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckRequestFields(const FetchRequest& r,
                                const fetch::v1::RequestBounds& bounds,
                                const std::string& prefix) {
  if (!r.method().empty()) {
    const std::string method = absl::AsciiStrToUpper(r.method());
    if (std::find(std::begin(kMethods), std::end(kMethods), method) ==
        std::end(kMethods)) {
      return Invalid(prefix + "method",
                     absl::StrCat("unsupported method \"", r.method(),
                                  "\" (GET, HEAD, POST, PUT, PATCH, DELETE, "
                                  "OPTIONS)"));
    }
  }
  FETCHD_RETURN_IF_ERROR(CheckHeaders(r, bounds, prefix));
  if (r.body().size() > bounds.max_request_body_bytes()) {
    return Invalid(prefix + "body",
                   absl::StrCat(r.body().size(), " bytes exceed the limit of ",
                                bounds.max_request_body_bytes()));
  }
  FETCHD_RETURN_IF_ERROR(CheckRequestContent(r, bounds, prefix));
  const auto& t = r.timeouts();
  for (absl::Status s :
       {CheckDuration(t.has_total(), t.total(), bounds.max_total_timeout(),
                      prefix + "timeouts.total"),
        CheckDuration(t.has_connect(), t.connect(),
                      bounds.max_connect_timeout(),
                      prefix + "timeouts.connect"),
        CheckDuration(t.has_read_idle(), t.read_idle(),
                      bounds.max_read_idle_timeout(),
                      prefix + "timeouts.read_idle"),
        CheckDuration(t.has_queue(), t.queue(), bounds.max_queue_timeout(),
                      prefix + "timeouts.queue")}) {
    if (!s.ok()) return s;
  }
  const auto& retry = r.retry();
  if (retry.has_max_attempts() &&
      (retry.max_attempts() < 1 ||
       retry.max_attempts() > bounds.max_attempts())) {
    return Invalid(prefix + "retry.max_attempts",
                   absl::StrCat("must be between 1 and ", bounds.max_attempts(),
                                ", got ", retry.max_attempts()));
  }
  if (retry.has_base_backoff() &&
      (!IsValidProtoDuration(retry.base_backoff()) ||
       FromProto(retry.base_backoff()) < absl::ZeroDuration())) {
    return Invalid(prefix + "retry.base_backoff", "must not be negative");
  }
  if (absl::Status s =
          CheckDuration(retry.has_max_backoff(), retry.max_backoff(),
                        bounds.max_backoff(), prefix + "retry.max_backoff");
      !s.ok()) {
    return s;
  }
  for (int kind : retry.retry_on()) {
    if (kind == fetch::v1::ERROR_KIND_NONE ||
        !fetch::v1::ErrorKind_IsValid(kind)) {
      return Invalid(prefix + "retry.retry_on",
                     absl::StrCat("not a retryable error kind: ", kind));
    }
  }
  for (uint32_t status : retry.retry_on_status()) {
    if (status < 100 || status > 599) {
      return Invalid(prefix + "retry.retry_on_status",
                     absl::StrCat("not an HTTP status: ", status));
    }
  }
  if (r.has_max_redirects() && r.max_redirects() > bounds.max_redirects()) {
    return Invalid(
        prefix + "max_redirects",
        absl::StrCat(r.max_redirects(), " exceeds the server maximum ",
                     bounds.max_redirects()));
  }
  // A request's own cap is checked in Build(), once it is known whether
  // the body is streamed (the batch defaults may say so).
  if (!prefix.empty()) {
    FETCHD_RETURN_IF_ERROR(CheckBodyCap(r, bounds, prefix));
  }
  if (r.has_chunk_bytes() && (r.chunk_bytes() < kMinChunkBytes ||
                              r.chunk_bytes() > bounds.max_chunk_bytes())) {
    return Invalid(prefix + "chunk_bytes",
                   absl::StrCat("must be between ", kMinChunkBytes, " and ",
                                bounds.max_chunk_bytes(),
                                " (request_bounds.max_chunk_bytes), got ",
                                r.chunk_bytes()));
  }
  return absl::OkStatus();
}

absl::Status CheckBodyCap(const FetchRequest& r,
                          const fetch::v1::RequestBounds& bounds,
                          const std::string& prefix) {
  if (!r.has_max_body_bytes()) return absl::OkStatus();
  const bool streamed = r.stream_body();
  const uint64_t max =
      streamed ? bounds.max_stream_body_bytes() : bounds.max_body_bytes();
  if (r.max_body_bytes() == 0 || r.max_body_bytes() > max) {
    return Invalid(
        prefix + "max_body_bytes",
        absl::StrCat("must be between 1 and ", max,
                     streamed ? " for a streamed body "
                                "(request_bounds.max_stream_body_bytes)"
                              : "",
                     ", got ", r.max_body_bytes()));
  }
  return absl::OkStatus();
}

absl::Status CheckServerDefaults(const FetchRequest& defaults,
                                 const fetch::v1::RequestBounds& bounds) {
  const auto& t = defaults.timeouts();
  if (!t.has_total() || !t.has_connect() || !t.has_read_idle() ||
      !t.has_queue()) {
    return Invalid("request_defaults.timeouts", "every timeout must be set");
  }
  if (!defaults.retry().has_max_attempts()) {
    return Invalid("request_defaults.retry.max_attempts", "must be set");
  }
  return CheckRequestFields(defaults, bounds, "request_defaults.");
}

absl::Status CheckBatch(const fetch::v1::BatchRequest& batch,
                        const fetch::v1::RequestBounds& bounds,
                        uint32_t max_batch_size) {
  if (batch.requests_size() == 0) {
    return absl::InvalidArgumentError("requests: the batch is empty");
  }
  if (static_cast<uint32_t>(batch.requests_size()) > max_batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "requests: the batch has ", batch.requests_size(),
        " requests; the server limit is ", max_batch_size,
        " (limits.max_batch_size); send more through FetchStream (fetchctl "
        "batch does), which takes any number"));
  }
  return CheckBatchOptions(batch, bounds, "");
}

absl::Status CheckBatchOptions(const fetch::v1::BatchRequest& batch,
                               const fetch::v1::RequestBounds& bounds,
                               absl::string_view prefix) {
  // Written so that NaN fails too.
  if (const double rate = batch.politeness().rate();
      !(rate >= 0 && rate <= 1e9)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix,
                     "politeness.rate: must be a number between 0 and "
                     "1e9, got ",
                     rate));
  }
  if (!batch.defaults().id().empty()) {
    return Invalid(absl::StrCat(prefix, "defaults.id"),
                   "must be empty (ids are per request)");
  }
  if (!batch.defaults().url().empty()) {
    return Invalid(absl::StrCat(prefix, "defaults.url"),
                   "must be empty (urls are per request)");
  }
  return CheckRequestFields(batch.defaults(), bounds,
                            absl::StrCat(prefix, "defaults."));
}

absl::Status CheckRequest(const FetchRequest& request,
                          const fetch::v1::RequestBounds& bounds) {
  if (request.url().empty()) return Invalid("url", "is empty");
  if (request.url().size() > bounds.max_url_bytes()) {
    return Invalid(
        "url", absl::StrCat(request.url().size(), " bytes exceed the limit of ",
                            bounds.max_url_bytes()));
  }
  return CheckRequestFields(request, bounds, "");
}

}  // namespace fetchd::api

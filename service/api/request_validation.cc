#include "service/api/request_validation.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "service/common/proto_duration.h"
#include "service/common/proto_merge.h"
#include "service/transport/curl_handles.h"

namespace fetchd::api {
namespace {

using fetch::v1::FetchRequest;

constexpr std::string_view kMethods[] = {"GET",   "HEAD",   "POST",   "PUT",
                                         "PATCH", "DELETE", "OPTIONS"};

absl::Status Invalid(const std::string& field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

// RFC 9110 token characters.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
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

absl::Status CheckHeaders(const FetchRequest& request, uint32_t max_headers,
                          const std::string& prefix) {
  if (static_cast<uint32_t>(request.headers_size()) > max_headers) {
    return Invalid(prefix + "headers",
                   absl::StrCat(request.headers_size(),
                                " headers exceed the limit of ", max_headers));
  }
  for (int i = 0; i < request.headers_size(); ++i) {
    const fetch::v1::Header& h = request.headers(i);
    const std::string field = absl::StrCat(prefix, "headers[", i, "]");
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
  }
  return absl::OkStatus();
}

// Normalized URL and host key (scheme://host:port) of an absolute http(s)
// URL.
absl::StatusOr<std::pair<std::string, std::string>> ParseUrl(
    const std::string& url) {
  transport::CurlUrlPtr handle(curl_url());
  if (handle == nullptr) return absl::InternalError("curl_url failed");
  CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, url.c_str(),
                              CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    return Invalid("url",
                   absl::StrCat("malformed URL: ", curl_url_strerror(rc)));
  }
  auto get = [&](CURLUPart part, unsigned flags,
                 std::string* out) -> CURLUcode {
    char* value = nullptr;
    const CURLUcode code = curl_url_get(handle.get(), part, &value, flags);
    if (code == CURLUE_OK) {
      out->assign(value);
      curl_free(value);
    }
    return code;
  };
  std::string scheme, host, port, normalized;
  // curl decodes a percent-encoded host after it has normalized the numeric
  // IPv4 forms, so "http://21307%36/" comes out as "http://213076/", which
  // parses as http://0.3.64.84/. Parsing curl's URL again gives the fixed
  // point: the host key and URL the job's own URL would give. Each pass has
  // its own handle and reads the URL once: libcurl 7.88 percent-encodes the
  // stored host again on every curl_url_get of CURLUPART_URL ("%25" becomes
  // "%2525").
  if (get(CURLUPART_URL, 0, &normalized) != CURLUE_OK) {
    return Invalid("url", "cannot be normalized");
  }
  handle.reset(curl_url());
  if (handle == nullptr) return absl::InternalError("curl_url failed");
  rc = curl_url_set(handle.get(), CURLUPART_URL, normalized.c_str(),
                    CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    return Invalid("url",
                   absl::StrCat("malformed URL: ", curl_url_strerror(rc)));
  }
  get(CURLUPART_SCHEME, 0, &scheme);
  scheme = absl::AsciiStrToLower(scheme);
  if (scheme != "http" && scheme != "https") {
    return Invalid("url", absl::StrCat("unsupported scheme \"", scheme,
                                       "\" (only http and https)"));
  }
  if (get(CURLUPART_HOST, 0, &host) != CURLUE_OK || host.empty()) {
    return Invalid("url", "no host");
  }
  if (get(CURLUPART_PORT, CURLU_DEFAULT_PORT, &port) != CURLUE_OK) {
    return Invalid("url", "no port");
  }
  if (get(CURLUPART_URL, 0, &normalized) != CURLUE_OK) {
    return Invalid("url", "cannot be normalized");
  }
  return std::make_pair(
      std::move(normalized),
      absl::StrCat(scheme, "://", absl::AsciiStrToLower(host), ":", port));
}

}  // namespace

void MergeRequest(const FetchRequest& src, FetchRequest* dst) {
  if (src.retry().retry_on_size() > 0) dst->mutable_retry()->clear_retry_on();
  if (src.retry().retry_on_status_size() > 0) {
    dst->mutable_retry()->clear_retry_on_status();
  }
  MergeOver(src, dst);
}

RequestValidator::RequestValidator(const fetch::v1::ServerConfig& config)
    : bounds_(config.request_bounds()),
      server_defaults_(config.request_defaults()),
      max_batch_size_(config.limits().max_batch_size()) {}

absl::Status RequestValidator::CheckOptions(const FetchRequest& r,
                                            const std::string& prefix) const {
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
  if (absl::Status s = CheckHeaders(r, bounds_.max_headers(), prefix);
      !s.ok()) {
    return s;
  }
  if (r.body().size() > bounds_.max_request_body_bytes()) {
    return Invalid(prefix + "body",
                   absl::StrCat(r.body().size(), " bytes exceed the limit of ",
                                bounds_.max_request_body_bytes()));
  }
  const auto& t = r.timeouts();
  for (absl::Status s :
       {CheckDuration(t.has_total(), t.total(), bounds_.max_total_timeout(),
                      prefix + "timeouts.total"),
        CheckDuration(t.has_connect(), t.connect(),
                      bounds_.max_connect_timeout(),
                      prefix + "timeouts.connect"),
        CheckDuration(t.has_read_idle(), t.read_idle(),
                      bounds_.max_read_idle_timeout(),
                      prefix + "timeouts.read_idle"),
        CheckDuration(t.has_queue(), t.queue(), bounds_.max_queue_timeout(),
                      prefix + "timeouts.queue")}) {
    if (!s.ok()) return s;
  }
  const auto& retry = r.retry();
  if (retry.has_max_attempts() &&
      (retry.max_attempts() < 1 ||
       retry.max_attempts() > bounds_.max_attempts())) {
    return Invalid(
        prefix + "retry.max_attempts",
        absl::StrCat("must be between 1 and ", bounds_.max_attempts(), ", got ",
                     retry.max_attempts()));
  }
  if (retry.has_base_backoff() &&
      (!IsValidProtoDuration(retry.base_backoff()) ||
       FromProto(retry.base_backoff()) < absl::ZeroDuration())) {
    return Invalid(prefix + "retry.base_backoff", "must not be negative");
  }
  if (absl::Status s =
          CheckDuration(retry.has_max_backoff(), retry.max_backoff(),
                        bounds_.max_backoff(), prefix + "retry.max_backoff");
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
  if (r.has_max_redirects() && r.max_redirects() > bounds_.max_redirects()) {
    return Invalid(
        prefix + "max_redirects",
        absl::StrCat(r.max_redirects(), " exceeds the server maximum ",
                     bounds_.max_redirects()));
  }
  if (r.has_max_body_bytes() &&
      (r.max_body_bytes() == 0 ||
       r.max_body_bytes() > bounds_.max_body_bytes())) {
    return Invalid(
        prefix + "max_body_bytes",
        absl::StrCat("must be between 1 and ", bounds_.max_body_bytes(),
                     ", got ", r.max_body_bytes()));
  }
  return absl::OkStatus();
}

absl::Status RequestValidator::CheckServerDefaults() const {
  const auto& t = server_defaults_.timeouts();
  if (!t.has_total() || !t.has_connect() || !t.has_read_idle() ||
      !t.has_queue()) {
    return Invalid("request_defaults.timeouts", "every timeout must be set");
  }
  if (!server_defaults_.retry().has_max_attempts()) {
    return Invalid("request_defaults.retry.max_attempts", "must be set");
  }
  return CheckOptions(server_defaults_, "request_defaults.");
}

absl::Status RequestValidator::ValidateBatch(
    const fetch::v1::BatchRequest& batch) const {
  if (batch.requests_size() == 0) {
    return absl::InvalidArgumentError("requests: the batch is empty");
  }
  if (static_cast<uint32_t>(batch.requests_size()) > max_batch_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("requests: the batch has ", batch.requests_size(),
                     " requests; the server limit is ", max_batch_size_,
                     " (limits.max_batch_size)"));
  }
  if (!batch.defaults().id().empty()) {
    return Invalid("defaults.id", "must be empty (ids are per request)");
  }
  if (!batch.defaults().url().empty()) {
    return Invalid("defaults.url", "must be empty (urls are per request)");
  }
  return CheckOptions(batch.defaults(), "defaults.");
}

FetchRequest RequestValidator::EffectiveDefaults(
    const FetchRequest& batch_defaults) const {
  FetchRequest effective = server_defaults_;
  MergeRequest(batch_defaults, &effective);
  return effective;
}

absl::StatusOr<std::unique_ptr<core::FetchJob>> RequestValidator::Build(
    const FetchRequest& base, const FetchRequest& request,
    uint32_t index) const {
  if (request.url().empty()) return Invalid("url", "is empty");
  if (request.url().size() > bounds_.max_url_bytes()) {
    return Invalid(
        "url", absl::StrCat(request.url().size(), " bytes exceed the limit of ",
                            bounds_.max_url_bytes()));
  }
  if (absl::Status s = CheckOptions(request, ""); !s.ok()) return s;

  FetchRequest effective = base;
  MergeRequest(request, &effective);
  if (static_cast<uint32_t>(effective.headers_size()) > bounds_.max_headers()) {
    return Invalid("headers", absl::StrCat(effective.headers_size(),
                                           " headers (with the batch "
                                           "defaults) exceed the limit of ",
                                           bounds_.max_headers()));
  }
  if (effective.body().size() > bounds_.max_request_body_bytes()) {
    return Invalid("body", "exceeds the request body limit");
  }

  absl::StatusOr<std::pair<std::string, std::string>> url =
      ParseUrl(request.url());
  if (!url.ok()) return url.status();

  auto job = std::make_unique<core::FetchJob>();
  job->index = index;
  job->id = request.id();
  job->url = std::move(url->first);
  job->host_key = std::move(url->second);
  job->method = effective.method().empty()
                    ? "GET"
                    : absl::AsciiStrToUpper(effective.method());
  job->header_lines.reserve(effective.headers_size());
  for (const auto& h : effective.headers()) {
    job->header_lines.push_back(absl::StrCat(h.name(), ": ", h.value()));
  }
  job->body = std::move(*effective.mutable_body());
  const auto& t = effective.timeouts();
  job->total_timeout = FromProto(t.total());
  job->connect_timeout = FromProto(t.connect());
  job->read_idle_timeout = FromProto(t.read_idle());
  job->queue_timeout = FromProto(t.queue());
  const auto& r = effective.retry();
  job->retry.max_attempts = static_cast<int>(r.max_attempts());
  job->retry.base_backoff = FromProto(r.base_backoff());
  job->retry.max_backoff = FromProto(r.max_backoff());
  for (int kind : r.retry_on()) {
    job->retry.retry_on.push_back(static_cast<fetch::v1::ErrorKind>(kind));
  }
  job->retry.retry_on_status.assign(r.retry_on_status().begin(),
                                    r.retry_on_status().end());
  job->retry.honor_retry_after = r.honor_retry_after();
  job->retry.max_retry_after = FromProto(bounds_.max_retry_after());
  job->retry.retry_non_idempotent = r.retry_non_idempotent();
  job->follow_redirects = effective.follow_redirects();
  job->max_redirects = effective.max_redirects();
  job->max_body_bytes = effective.max_body_bytes();
  job->fail_on_http_error = effective.fail_on_http_error();
  return job;
}

}  // namespace fetchd::api

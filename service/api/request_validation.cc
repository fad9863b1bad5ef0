#include "service/api/request_validation.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "service/api/request_content.h"
#include "service/common/proto_duration.h"
#include "service/common/proto_merge.h"
#include "service/policy/policy_config.h"
#include "service/transport/http_url.h"

namespace fetchd::api {
namespace {

using fetch::v1::FetchRequest;

// FetchRequest.chunk_bytes: smallest accepted, and the value when neither
// the request nor the server's defaults set one.
constexpr uint32_t kMinChunkBytes = 1024;
constexpr uint32_t kDefaultChunk = 256 << 10;

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

// Request headers that frame the message or the connection: curl sets them
// from the body and the connection it uses, and letting a caller set them
// opens request smuggling. Host is allowed only when the bounds say so.
constexpr std::string_view kFramingHeaders[] = {
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
    if (absl::Status s = CheckFraming(h, bounds.allow_host_header(), field);
        !s.ok()) {
      return s;
    }
  }
  return CheckHeaderBytes(request, bounds.max_header_bytes(), prefix);
}

constexpr absl::string_view kCategoryPayload = "type.fetchd/policy-category";

}  // namespace

void MergeRequest(const FetchRequest& src, FetchRequest* dst) {
  if (src.retry().retry_on_size() > 0) dst->mutable_retry()->clear_retry_on();
  if (src.retry().retry_on_status_size() > 0) {
    dst->mutable_retry()->clear_retry_on_status();
  }
  ClearReplacedContent(src, dst);
  MergeOver(src, dst);
}

std::string PolicyCategory(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kPermissionDenied) return "";
  auto category = status.GetPayload(kCategoryPayload);
  return category.has_value() ? std::string(*category) : "";
}

absl::Status PolicyDenied(absl::string_view message,
                          absl::string_view category) {
  absl::Status status = absl::PermissionDeniedError(message);
  status.SetPayload(kCategoryPayload, absl::Cord(category));
  return status;
}

RequestValidator::RequestValidator(const fetch::v1::ServerConfig& config)
    : bounds_(config.request_bounds()),
      server_defaults_(config.request_defaults()),
      max_batch_size_(config.limits().max_batch_size()) {
  absl::StatusOr<policy::AddressPolicy> policy =
      policy::AddressPolicyFromConfig(config.policy());
  if (policy.ok()) {
    policy_.emplace(*std::move(policy));
  } else {
    policy_status_ = policy.status();
  }
}

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
  if (absl::Status s = CheckHeaders(r, bounds_, prefix); !s.ok()) {
    return s;
  }
  if (r.body().size() > bounds_.max_request_body_bytes()) {
    return Invalid(prefix + "body",
                   absl::StrCat(r.body().size(), " bytes exceed the limit of ",
                                bounds_.max_request_body_bytes()));
  }
  if (absl::Status s = CheckRequestContent(r, bounds_, prefix); !s.ok()) {
    return s;
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
  // A request's own cap is checked in Build(), once it is known whether
  // the body is streamed (the batch defaults may say so).
  if (!prefix.empty()) {
    if (absl::Status s = CheckBodyCap(r, prefix); !s.ok()) return s;
  }
  if (r.has_chunk_bytes() && (r.chunk_bytes() < kMinChunkBytes ||
                              r.chunk_bytes() > bounds_.max_chunk_bytes())) {
    return Invalid(prefix + "chunk_bytes",
                   absl::StrCat("must be between ", kMinChunkBytes, " and ",
                                bounds_.max_chunk_bytes(),
                                " (request_bounds.max_chunk_bytes), got ",
                                r.chunk_bytes()));
  }
  return absl::OkStatus();
}

absl::Status RequestValidator::CheckBodyCap(const FetchRequest& r,
                                            const std::string& prefix) const {
  if (!r.has_max_body_bytes()) return absl::OkStatus();
  const bool streamed = r.stream_body();
  const uint64_t max =
      streamed ? bounds_.max_stream_body_bytes() : bounds_.max_body_bytes();
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

absl::Status RequestValidator::CheckServerDefaults() const {
  if (!policy_status_.ok()) return policy_status_;
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
  // Applied in Build(): the cap of a streamed body defaults to another
  // bound.
  effective.clear_max_body_bytes();
  MergeRequest(batch_defaults, &effective);
  return effective;
}

absl::Status RequestValidator::ApplyConnectionOptions(
    const FetchRequest& r, const transport::HttpUrl& url,
    core::FetchJob* job) const {
  const fetch::v1::TlsOptions& tls = r.tls();
  for (const auto& [name, pem] :
       {std::pair<absl::string_view, const std::string&>{"ca_pem",
                                                         tls.ca_pem()},
        {"client_cert_pem", tls.client_cert_pem()},
        {"client_key_pem", tls.client_key_pem()}}) {
    if (pem.size() > bounds_.max_pem_bytes()) {
      return Invalid(absl::StrCat("tls.", name),
                     absl::StrCat(pem.size(), " bytes exceed the limit of ",
                                  bounds_.max_pem_bytes(),
                                  " (request_bounds.max_pem_bytes)"));
    }
  }
  if (tls.client_cert_pem().empty() != tls.client_key_pem().empty()) {
    return Invalid("tls", "client_cert_pem and client_key_pem go together");
  }
  if (tls.has_verify() && !tls.verify() && !bounds_.allow_insecure_tls()) {
    return Invalid("tls.verify",
                   "false is not allowed by the server "
                   "(request_bounds.allow_insecure_tls)");
  }
  job->tls_ca_pem = tls.ca_pem();
  job->tls_client_cert_pem = tls.client_cert_pem();
  job->tls_client_key_pem = tls.client_key_pem();
  job->tls_verify = !tls.has_verify() || tls.verify();

  const fetch::v1::ProxyOptions& proxy = r.proxy();
  if (!proxy.url().empty()) {
    if (absl::Status s = transport::CheckProxyUrl(proxy.url(), "proxy.url");
        !s.ok()) {
      return s;
    }
  } else if (!proxy.username().empty() || !proxy.password().empty()) {
    return Invalid("proxy", "credentials without a url");
  }
  job->proxy_url = proxy.url();
  job->proxy_username = proxy.username();
  job->proxy_password = proxy.password();

  if (!fetch::v1::HttpVersion_IsValid(r.http_version())) {
    return Invalid("http_version",
                   absl::StrCat("unknown value ", r.http_version()));
  }
  job->http_version = r.http_version();

  for (int i = 0; i < r.resolve_size(); ++i) {
    const fetch::v1::ResolveOverride& pin = r.resolve(i);
    const std::string field = absl::StrCat("resolve[", i, "]");
    if (pin.host().empty() ||
        pin.host().find_first_of(":[] /") != std::string::npos) {
      return Invalid(field + ".host", "must be a host name");
    }
    if (pin.port() > 65535) {
      return Invalid(field + ".port", "must be 0 (any) or a port");
    }
    std::string address = pin.address();
    if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
      address = address.substr(1, address.size() - 2);
    }
    const std::optional<policy::IpAddress> ip =
        policy::IpAddress::Parse(address);
    if (!ip.has_value()) {
      return Invalid(field + ".address", "must be an IP address literal");
    }
    const uint16_t port =
        pin.port() != 0 ? static_cast<uint16_t>(pin.port()) : url.port;
    if (policy_.has_value()) {
      if (const policy::Decision d = policy_->Check(*ip, port); !d.allowed) {
        return PolicyDenied(
            absl::StrCat(field, ": address ", ip->ToString(),
                         " denied by policy (rule: ", d.rule, ")"),
            d.category);
      }
    }
    job->connect_to.push_back(absl::StrCat(
        absl::AsciiStrToLower(pin.host()), ":",
        pin.port() != 0 ? absl::StrCat(pin.port()) : "", ":",
        ip->is_v4() ? ip->ToString() : absl::StrCat("[", ip->ToString(), "]"),
        ":"));
  }
  return absl::OkStatus();
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
  if (absl::Status s = CheckBodyCap(effective, ""); !s.ok()) return s;
  if (static_cast<uint32_t>(effective.headers_size()) > bounds_.max_headers()) {
    return Invalid("headers", absl::StrCat(effective.headers_size(),
                                           " headers (with the batch "
                                           "defaults) exceed the limit of ",
                                           bounds_.max_headers()));
  }
  if (effective.body().size() > bounds_.max_request_body_bytes()) {
    return Invalid("body", "exceeds the request body limit");
  }

  if (absl::Status s =
          CheckHeaderBytes(effective, bounds_.max_header_bytes(), "");
      !s.ok()) {
    return Invalid("headers", absl::StrCat(s.message(),
                                           " (with the batch "
                                           "defaults)"));
  }

  absl::StatusOr<std::string> with_query =
      AppendQueryParams(request.url(), effective.query());
  if (!with_query.ok()) return with_query.status();
  if (with_query->size() > bounds_.max_url_bytes()) {
    return Invalid("query", absl::StrCat(with_query->size(),
                                         " bytes of URL with the query "
                                         "parameters exceed the limit of ",
                                         bounds_.max_url_bytes()));
  }
  absl::StatusOr<transport::HttpUrl> url = transport::ParseHttpUrl(*with_query);
  if (!url.ok()) {
    if (url.status().code() == absl::StatusCode::kPermissionDenied) {
      return PolicyDenied(url.status().message(), "scheme");
    }
    return url.status();
  }
  if (!policy_.has_value()) return policy_status_;
  if (const policy::Decision decision =
          policy_->CheckHostName(url->host, url->port);
      !decision.allowed) {
    return PolicyDenied(
        absl::StrCat("url: destination ", url->host, ":", url->port,
                     " denied by policy (rule: ", decision.rule, ")"),
        decision.category);
  }

  auto job = std::make_unique<core::FetchJob>();
  job->index = index;
  job->id = request.id();
  job->url = std::move(url->url);
  job->host_key = std::move(url->host_key);
  job->method = effective.method().empty()
                    ? "GET"
                    : absl::AsciiStrToUpper(effective.method());
  job->header_lines.reserve(effective.headers_size());
  for (const auto& h : effective.headers()) {
    job->header_lines.push_back(absl::StrCat(h.name(), ": ", h.value()));
  }
  if (absl::Status s = ApplyRequestContent(effective, bounds_, job.get());
      !s.ok()) {
    return s;
  }
  // The Content-Type and Authorization lines fetchd adds count too.
  uint64_t header_bytes = 0;
  for (const std::string& line : job->header_lines) {
    header_bytes += line.size() + 2;
  }
  if (job->header_lines.size() > bounds_.max_headers() ||
      header_bytes > bounds_.max_header_bytes()) {
    return Invalid(
        "headers",
        absl::StrCat(job->header_lines.size(), " headers of ", header_bytes,
                     " bytes (with the Content-Type and "
                     "Authorization from the body and "
                     "credentials) exceed the limits of ",
                     bounds_.max_headers(), " headers and ",
                     bounds_.max_header_bytes(), " bytes"));
  }
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
  job->stream_body = effective.stream_body();
  job->max_body_bytes = effective.has_max_body_bytes()
                            ? effective.max_body_bytes()
                        : job->stream_body ? bounds_.max_stream_body_bytes()
                                           : server_defaults_.max_body_bytes();
  job->decompress = !effective.has_decompress() || effective.decompress();
  job->chunk_bytes = effective.chunk_bytes() != 0
                         ? effective.chunk_bytes()
                         : std::min(kDefaultChunk, bounds_.max_chunk_bytes());
  job->fail_on_http_error = effective.fail_on_http_error();
  job->max_response_header_bytes = bounds_.max_response_header_bytes();
  if (absl::Status s = ApplyConnectionOptions(effective, *url, job.get());
      !s.ok()) {
    return s;
  }
  return job;
}

}  // namespace fetchd::api

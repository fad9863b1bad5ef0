#include "service/api/job_builder.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/api/request_checks.h"
#include "service/api/request_content.h"
#include "service/common/proto_duration.h"
#include "service/common/status_macros.h"
#include "service/url/http_url.h"

namespace fetchd::api {
namespace {

using fetch::v1::FetchRequest;

// FetchRequest.chunk_bytes when neither the request nor the server's
// defaults set one.
constexpr uint32_t kDefaultChunk = 256 << 10;

constexpr absl::string_view kCategoryPayload = "type.fetchd/policy-category";

absl::Status Invalid(const std::string& field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

// TLS, proxy, HTTP version and resolve pins of the merged request `r`
// (whose URL is `url`) into `job`.
absl::Status ApplyConnectionOptions(const JobRules& rules,
                                    const FetchRequest& r,
                                    const url::HttpUrl& url,
                                    core::FetchJob* job) {
  const fetch::v1::TlsOptions& tls = r.tls();
  for (const auto& [name, pem] :
       {std::pair<absl::string_view, const std::string&>{"ca_pem",
                                                         tls.ca_pem()},
        {"client_cert_pem", tls.client_cert_pem()},
        {"client_key_pem", tls.client_key_pem()}}) {
    if (pem.size() > rules.bounds.max_pem_bytes()) {
      return Invalid(absl::StrCat("tls.", name),
                     absl::StrCat(pem.size(), " bytes exceed the limit of ",
                                  rules.bounds.max_pem_bytes(),
                                  " (request_bounds.max_pem_bytes)"));
    }
  }
  if (tls.client_cert_pem().empty() != tls.client_key_pem().empty()) {
    return Invalid("tls", "client_cert_pem and client_key_pem go together");
  }
  if (tls.has_verify() && !tls.verify() && !rules.bounds.allow_insecure_tls()) {
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
    FETCHD_RETURN_IF_ERROR(url::CheckProxyUrl(proxy.url(), "proxy.url"));
    const auto& allowed = rules.bounds.allowed_proxies();
    if (!allowed.empty() && std::none_of(allowed.begin(), allowed.end(),
                                         [&proxy](const std::string& entry) {
                                           return absl::EqualsIgnoreCase(
                                               entry, proxy.url());
                                         })) {
      return PolicyDenied(
          absl::StrCat("proxy.url: \"", proxy.url(),
                       "\" is not in request_bounds.allowed_proxies"),
          "proxy");
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
    if (std::optional<policy::Denial> denial =
            rules.gate->CheckAddress(*ip, port)) {
      return PolicyDenied(absl::StrCat(field, ": ", denial->message),
                          denial->category);
    }
    job->connect_to.push_back(absl::StrCat(
        absl::AsciiStrToLower(pin.host()), ":",
        pin.port() != 0 ? absl::StrCat(pin.port()) : "", ":",
        ip->is_v4() ? ip->ToString() : absl::StrCat("[", ip->ToString(), "]"),
        ":"));
  }
  return absl::OkStatus();
}

}  // namespace

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

JobRules JobRules::FromConfig(const fetch::v1::ServerConfig& config,
                              const policy::DestinationGate* gate) {
  JobRules rules;
  rules.bounds = config.request_bounds();
  rules.default_max_body_bytes = config.request_defaults().max_body_bytes();
  rules.gate = gate;
  return rules;
}

absl::StatusOr<std::unique_ptr<core::FetchJob>> BuildJob(
    const JobRules& rules, FetchRequest effective, uint32_t index,
    const policy::HostRule* caller) {
  FETCHD_RETURN_IF_ERROR(CheckBodyCap(effective, rules.bounds, ""));
  if (static_cast<uint32_t>(effective.headers_size()) >
      rules.bounds.max_headers()) {
    return Invalid("headers", absl::StrCat(effective.headers_size(),
                                           " headers (with the batch "
                                           "defaults) exceed the limit of ",
                                           rules.bounds.max_headers()));
  }
  if (effective.body().size() > rules.bounds.max_request_body_bytes()) {
    return Invalid("body", "exceeds the request body limit");
  }

  if (absl::Status s =
          CheckHeaderBytes(effective, rules.bounds.max_header_bytes(), "");
      !s.ok()) {
    return Invalid("headers", absl::StrCat(s.message(),
                                           " (with the batch "
                                           "defaults)"));
  }

  std::vector<url::QueryParam> params;
  params.reserve(effective.query_size());
  for (const fetch::v1::QueryParam& p : effective.query()) {
    params.push_back({p.name(), p.value()});
  }
  absl::StatusOr<std::string> with_query =
      url::AppendQueryParams(effective.url(), params);
  if (!with_query.ok()) return with_query.status();
  if (with_query->size() > rules.bounds.max_url_bytes()) {
    return Invalid("query", absl::StrCat(with_query->size(),
                                         " bytes of URL with the query "
                                         "parameters exceed the limit of ",
                                         rules.bounds.max_url_bytes()));
  }
  absl::StatusOr<url::HttpUrl> url = url::ParseHttpUrl(*with_query);
  if (!url.ok()) {
    if (url.status().code() == absl::StatusCode::kPermissionDenied) {
      return PolicyDenied(url.status().message(), "scheme");
    }
    return url.status();
  }
  if (std::optional<policy::Denial> denial = rules.gate->CheckTarget(
          "url", url->scheme, url->host, url->port, caller)) {
    return PolicyDenied(denial->message, denial->category);
  }

  auto job = std::make_unique<core::FetchJob>();
  job->index = index;
  job->id = effective.id();
  job->url = std::move(url->url);
  job->host_key = std::move(url->host_key);
  job->method = effective.method().empty()
                    ? "GET"
                    : absl::AsciiStrToUpper(effective.method());
  job->header_lines.reserve(effective.headers_size());
  for (const auto& h : effective.headers()) {
    job->header_lines.push_back(absl::StrCat(h.name(), ": ", h.value()));
  }
  FETCHD_RETURN_IF_ERROR(
      ApplyRequestContent(effective, rules.bounds, job.get()));
  // The Content-Type and Authorization lines fetchd adds count too.
  uint64_t header_bytes = 0;
  for (const std::string& line : job->header_lines) {
    header_bytes += line.size() + 2;
  }
  if (job->header_lines.size() > rules.bounds.max_headers() ||
      header_bytes > rules.bounds.max_header_bytes()) {
    return Invalid(
        "headers",
        absl::StrCat(job->header_lines.size(), " headers of ", header_bytes,
                     " bytes (with the Content-Type and "
                     "Authorization from the body and "
                     "credentials) exceed the limits of ",
                     rules.bounds.max_headers(), " headers and ",
                     rules.bounds.max_header_bytes(), " bytes"));
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
  job->retry.max_retry_after = FromProto(rules.bounds.max_retry_after());
  job->retry.retry_non_idempotent = r.retry_non_idempotent();
  job->follow_redirects = effective.follow_redirects();
  job->max_redirects = effective.max_redirects();
  job->stream_body = effective.stream_body();
  job->max_body_bytes =
      effective.has_max_body_bytes() ? effective.max_body_bytes()
      : job->stream_body             ? rules.bounds.max_stream_body_bytes()
                                     : rules.default_max_body_bytes;
  job->decompress = !effective.has_decompress() || effective.decompress();
  job->chunk_bytes =
      effective.chunk_bytes() != 0
          ? effective.chunk_bytes()
          : std::min(kDefaultChunk, rules.bounds.max_chunk_bytes());
  job->fail_on_http_error = effective.fail_on_http_error();
  job->max_response_header_bytes = rules.bounds.max_response_header_bytes();
  if (absl::Status s =
          ApplyConnectionOptions(rules, effective, *url, job.get());
      !s.ok()) {
    return s;
  }
  return job;
}

}  // namespace fetchd::api

// FetchJob: one validated request with every option resolved (defaults
// applied, server bounds checked), plus its progress through the scheduler.
// Plain data: it moves from the API layer to one curl worker, which owns it
// until its result is delivered.
#ifndef FETCHD_SERVICE_CORE_FETCH_JOB_H_
#define FETCHD_SERVICE_CORE_FETCH_JOB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/core/batch.h"
#include "service/core/cookie_store.h"
#include "service/core/politeness/host_limiter.h"
#include "service/core/retry_policy.h"

namespace fetchd::core {

// A followed redirect: the URL that answered with a 3xx, and the status.
struct RedirectHop {
  std::string url;
  uint32_t status = 0;
};

// A caller's own destination rule (auth::HostAllowList), applied to every
// redirect hop as it is to the request's URL: why `host` (no brackets) is
// refused, or nullopt.
using HostCheck =
    std::function<std::optional<std::string>(absl::string_view host)>;

// One part of a multipart/form-data body (FetchRequest.multipart).
struct MultipartPart {
  std::string name;
  std::string data;
  // Not empty: a file part with this filename.
  std::string filename;
  // Empty: curl's default (none for a field, application/octet-stream for
  // a file).
  std::string content_type;
};

struct FetchJob {
  std::shared_ptr<Batch> batch;
  uint32_t index = 0;
  std::string id;

  std::string url;
  std::string method = "GET";
  // "Name: value", in the caller's order.
  // Includes the Content-Type of a json or form body and the Authorization
  // line of basic_auth / bearer_token (api/request_content.cc).
  std::vector<std::string> header_lines;
  // The raw body (json and form bodies are encoded into it).
  std::string body;
  // A multipart/form-data body, sent with curl's mime API; when not empty,
  // `body` is empty.
  std::vector<MultipartPart> multipart;

  absl::Duration total_timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration read_idle_timeout = absl::Seconds(30);
  absl::Duration queue_timeout = absl::Seconds(60);
  // The caller set timeouts.queue itself (in the request or the batch's
  // defaults): the request waits for an open breaker when its queue timeout
  // lasts until the breaker admits again, instead of ending at once with
  // ERROR_KIND_CIRCUIT_OPEN.
  bool wait_for_open_breaker = false;
  RetryParams retry;
  bool follow_redirects = true;
  uint32_t max_redirects = 10;
  uint64_t max_body_bytes = 2 << 20;
  // Decode gzip/deflate/br/zstd bodies (and ask for them); false: raw
  // bytes, the caller's headers untouched.
  bool decompress = true;
  // Send the body as BodyHead + BodyChunks of at most chunk_bytes instead
  // of inline in the result (Batch::SendHead/SendChunk).
  bool stream_body = false;
  uint32_t chunk_bytes = 256 << 10;
  bool fail_on_http_error = false;
  // TLS to the target (fetch.v1.TlsOptions); empty PEMs: system store, no
  // client certificate.
  std::string tls_ca_pem;
  std::string tls_client_cert_pem;
  std::string tls_client_key_pem;
  bool tls_verify = true;
  // Empty url: the server's proxy, if any.
  std::string proxy_url;
  std::string proxy_username;
  std::string proxy_password;
  // fetch::v1::HttpVersion.
  int http_version = 0;
  // curl CONNECT_TO entries, "host:port:address:" (ResolveOverride).
  std::vector<std::string> connect_to;
  // The call's cookies (Fetcher::NewCookieStore); null: none kept.
  std::shared_ptr<CookieStore> cookie_jar;

  // Bytes of one response's headers; more ends the request (PROTOCOL).
  uint32_t max_response_header_bytes = 256 << 10;

  // The caller's destination rule, when it has one (shared by the jobs of a
  // call); null: none.
  std::shared_ptr<const HostCheck> caller_host_check;

  // scheme://host:port, lower case: the unit of per-host limits and sharding.
  std::string host_key;
  // When the API layer admitted the request (the start of its call), on the
  // engine's clock: the start of the request's duration. InfinitePast when
  // unknown (jobs made by tests).
  absl::Time admitted_at = absl::InfinitePast();

  // Progress, owned by the worker.
  int attempts = 0;
  // When the job started waiting for its current slot.
  absl::Time queued_at;
  // Queue wait of earlier attempts.
  absl::Duration queue_wait;
  // Earliest start of the next attempt (retry backoff); InfinitePast when
  // the job may start at once.
  absl::Time not_before = absl::InfinitePast();
  // Redirects followed so far (url and host_key are the current hop's).
  std::vector<RedirectHop> redirect_history;
  // Time spent in the hops before the current one.
  absl::Duration redirect_time;
  // Set-Cookie values received so far (every attempt and hop).
  std::vector<std::string> set_cookies;
  // The next start continues the current attempt at a redirect target, so
  // it is not counted as a new attempt.
  bool redirect_pending = false;
  // stream_body: the BodyHead has gone to the batch (the request is then
  // never retried), and the body bytes sent in chunks so far.
  bool head_sent = false;
  uint64_t streamed_bytes = 0;

  // Politeness, kept by the worker's HostScheduler.
  // The limiter's admission of the attempt in flight (Next to Release).
  politeness::Permit permit;
  // The job holds a place in its host's retry budget (HostScheduler::
  // TryRetry), from the retry decision to the end of the retry's attempt.
  bool retry_outstanding = false;
  // What politeness did to the job, for its result to say
  // (FetchResult.politeness).
  struct PolitenessWaits {
    // It waited for the host's rate or least delay between starts, or for
    // its batch's own rate.
    bool rate = false;
    // It waited for the host-wide pause after a 429/503.
    bool paused = false;
    // The host's retry budget refused a retry.
    bool retry_denied = false;
  };
  PolitenessWaits politeness_waits;
};

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_FETCH_JOB_H_

// Easy-handle setup: configures a curl easy handle for one attempt of a
// FetchJob (URL, request headers, method and body, timeouts, decoding, TLS,
// proxy, HTTP version, resolve pins, cookies and the server's connection
// settings). The callbacks, their data and the error buffer are the
// transfer's own (curl_transfer.cc).
//
// Thread-safety: none; the worker that owns the handle calls it.
#ifndef FETCHD_SERVICE_TRANSPORT_EASY_SETUP_H_
#define FETCHD_SERVICE_TRANSPORT_EASY_SETUP_H_

#include <curl/curl.h>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/core/fetch_job.h"
#include "service/transport/curl_handles.h"

namespace fetchd::transport {

// Server-wide connection settings every transfer applies
// (fetch.v1.Transport).
struct TransferSettings {
  absl::Duration dns_cache_ttl = absl::Seconds(60);
  absl::Duration happy_eyeballs_delay = absl::Milliseconds(200);
  // CURL_IPRESOLVE_WHATEVER, _V4 or _V6.
  long ip_resolve = CURL_IPRESOLVE_WHATEVER;  // NOLINT(google-runtime-int)
  absl::Duration idle_connection_timeout = absl::Seconds(118);
  // Zero: no limit.
  absl::Duration max_connection_lifetime;
  // The proxy of requests that don't name one; empty: none.
  std::string proxy_url;
  std::string proxy_username;
  std::string proxy_password;
  // With no proxy at all, let curl read http_proxy/https_proxy/no_proxy.
  bool use_env_proxy = false;
};

// Applies curl_easy_setopt calls, keeping the first failure.
class CurlOptions {
 public:
  explicit CurlOptions(CURL* easy) : easy_(easy) {}
  template <typename T>
  CurlOptions& Set(CURLoption option, T value) {
    if (code_ == CURLE_OK) {
      code_ = curl_easy_setopt(easy_, option, value);
      if (code_ != CURLE_OK) failed_ = option;
    }
    return *this;
  }
  // Internal "curl_easy_setopt(<option number>): <curl's message>" for the
  // first failure; OK when every call succeeded.
  [[nodiscard]] absl::Status status() const;

 private:
  CURL* easy_;
  CURLcode code_ = CURLE_OK;
  int failed_ = 0;
};

// What the handle points at while it runs (request headers, CONNECT_TO
// entries, multipart body). It must outlive the handle's transfer; the mime
// must be unset from the handle (CURLOPT_MIMEPOST) before it is freed.
struct RequestMemory {
  CurlSlistPtr headers;
  CurlSlistPtr connect_to;
  CurlMimePtr mime;
};

// Configures `easy` (fresh or reset) for an attempt of `job` whose total
// timeout is `attempt_timeout`; what the handle must keep pointing at goes
// to `memory` (replacing what was there). Errors: Internal (a setopt
// failed: the handle must not run), ResourceExhausted (out of memory), and
// the cookie jar's.
[[nodiscard]] absl::Status SetUpRequest(CURL* easy, const core::FetchJob& job,
                                        absl::Duration attempt_timeout,
                                        const TransferSettings& settings,
                                        RequestMemory& memory);

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_EASY_SETUP_H_

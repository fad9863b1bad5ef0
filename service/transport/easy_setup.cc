#include "service/transport/easy_setup.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/transport/cookie_jar.h"

namespace fetchd::transport {
namespace {

long ToMillis(absl::Duration d) {  // NOLINT(google-runtime-int): curl's type.
  return static_cast<long>(        // NOLINT(google-runtime-int)
      std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

// A curl list of `lines`.
absl::StatusOr<CurlSlistPtr> MakeSlist(const std::vector<std::string>& lines) {
  CurlSlistPtr list;
  curl_slist* tail = nullptr;
  for (const std::string& line : lines) {
    curl_slist* next = curl_slist_append(tail, line.c_str());
    if (next == nullptr) {
      return absl::ResourceExhaustedError("curl_slist_append failed");
    }
    if (list == nullptr) list.reset(next);
    tail = next;
  }
  return list;
}

// Sets the method and the body (raw bytes or multipart) from the job; the
// mime, if any, goes to `mime_out`.
absl::Status ApplyBody(CURL* easy, const core::FetchJob& job,
                       CurlMimePtr& mime_out) {
  CurlOptions opts(easy);
  if (job.method == "HEAD") {
    opts.Set(CURLOPT_NOBODY, 1L);
    return opts.status();
  }
  if (!job.multipart.empty()) {
    CurlMimePtr mime(curl_mime_init(easy));
    if (mime == nullptr)
      return absl::ResourceExhaustedError("curl_mime_init failed");
    for (const core::MultipartPart& part : job.multipart) {
      curl_mimepart* p = curl_mime_addpart(mime.get());
      if (p == nullptr) {
        return absl::ResourceExhaustedError("curl_mime_addpart failed");
      }
      CURLcode rc = curl_mime_name(p, part.name.c_str());
      if (rc == CURLE_OK) {
        rc = curl_mime_data(p, part.data.data(), part.data.size());
      }
      if (rc == CURLE_OK && !part.filename.empty()) {
        rc = curl_mime_filename(p, part.filename.c_str());
      }
      if (rc == CURLE_OK && !part.content_type.empty()) {
        rc = curl_mime_type(p, part.content_type.c_str());
      }
      if (rc != CURLE_OK) {
        return absl::InternalError(absl::StrCat(
            "multipart part \"", part.name, "\": ", curl_easy_strerror(rc)));
      }
    }
    opts.Set(CURLOPT_MIMEPOST, mime.get());
    // The easy handle refers to the mime until it is unset
    // (Transfer::TakeEasy()).
    mime_out = std::move(mime);
  } else if (!job.body.empty() || job.method == "POST") {
    opts.Set(CURLOPT_POSTFIELDSIZE_LARGE,
             static_cast<curl_off_t>(job.body.size()))
        .Set(CURLOPT_POSTFIELDS, job.body.data());
  }
  // GET with a body, and every other method, by name.
  if (job.method != "POST" &&
      (job.method != "GET" || !job.body.empty() || !job.multipart.empty())) {
    opts.Set(CURLOPT_CUSTOMREQUEST, job.method.c_str());
  }
  return opts.status();
}

// The server's connection settings (config `transport`).
void ApplyServerSettings(CurlOptions& opts, const TransferSettings& settings) {
  const auto seconds = [](absl::Duration d) {
    return static_cast<long>(absl::ToInt64Seconds(d));  // NOLINT
  };
  opts.Set(CURLOPT_DNS_CACHE_TIMEOUT, seconds(settings.dns_cache_ttl))
      .Set(CURLOPT_HAPPY_EYEBALLS_TIMEOUT_MS,
           static_cast<long>(  // NOLINT(google-runtime-int)
               absl::ToInt64Milliseconds(settings.happy_eyeballs_delay)))
      .Set(CURLOPT_IPRESOLVE, settings.ip_resolve)
      .Set(CURLOPT_MAXAGE_CONN,
           std::max(1L, seconds(settings.idle_connection_timeout)))
      .Set(CURLOPT_MAXLIFETIME_CONN, seconds(settings.max_connection_lifetime));
}

// TLS to the target. Blobs are copied by curl.
void ApplyTls(CurlOptions& opts, const core::FetchJob& job) {
  const auto blob = [](const std::string& pem) {
    curl_blob b;
    b.data = const_cast<char*>(pem.data());
    b.len = pem.size();
    b.flags = CURL_BLOB_COPY;
    return b;
  };
  if (!job.tls_ca_pem.empty()) {
    curl_blob ca = blob(job.tls_ca_pem);
    opts.Set(CURLOPT_CAINFO_BLOB, &ca);
  }
  if (!job.tls_client_cert_pem.empty()) {
    curl_blob cert = blob(job.tls_client_cert_pem);
    curl_blob key = blob(job.tls_client_key_pem);
    opts.Set(CURLOPT_SSLCERTTYPE, "PEM")
        .Set(CURLOPT_SSLCERT_BLOB, &cert)
        .Set(CURLOPT_SSLKEYTYPE, "PEM")
        .Set(CURLOPT_SSLKEY_BLOB, &key);
  }
  if (!job.tls_verify) {
    opts.Set(CURLOPT_SSL_VERIFYPEER, 0L).Set(CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

// Proxy: the request's, else the server's; the environment only when the
// server opts in (an empty CURLOPT_PROXY makes curl ignore it).
void ApplyProxy(CurlOptions& opts, const core::FetchJob& job,
                const TransferSettings& settings) {
  const bool own_proxy = !job.proxy_url.empty();
  const std::string& proxy = own_proxy ? job.proxy_url : settings.proxy_url;
  if (!proxy.empty()) {
    const std::string& user =
        own_proxy ? job.proxy_username : settings.proxy_username;
    const std::string& password =
        own_proxy ? job.proxy_password : settings.proxy_password;
    opts.Set(CURLOPT_PROXY, proxy.c_str());
    if (!user.empty() || !password.empty()) {
      opts.Set(CURLOPT_PROXYUSERNAME, user.c_str())
          .Set(CURLOPT_PROXYPASSWORD, password.c_str());
    }
  } else if (!settings.use_env_proxy) {
    opts.Set(CURLOPT_PROXY, "");
  }
}

// HTTP version. Over TLS, wait for a connection that may multiplex
// (HTTP/2) rather than opening one per concurrent request.
void ApplyHttpVersion(CurlOptions& opts, const core::FetchJob& job) {
  const bool https = job.url.rfind("https:", 0) == 0;
  switch (job.http_version) {
    case fetch::v1::HTTP_VERSION_1_1:
      opts.Set(CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
      break;
    case fetch::v1::HTTP_VERSION_2:
      opts.Set(CURLOPT_HTTP_VERSION, https
                                         ? CURL_HTTP_VERSION_2TLS
                                         : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
          .Set(CURLOPT_PIPEWAIT, 1L);
      break;
    default:
      opts.Set(CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
      if (https) opts.Set(CURLOPT_PIPEWAIT, 1L);
      break;
  }
}

// TLS, proxy, HTTP version, pins, cookies and the server's connection
// settings; the CONNECT_TO list goes to `connect_to_out`.
absl::Status ApplyConnectionOptions(CURL* easy, const core::FetchJob& job,
                                    const TransferSettings& settings,
                                    CurlSlistPtr& connect_to_out) {
  CurlOptions opts(easy);
  ApplyServerSettings(opts, settings);
  ApplyTls(opts, job);
  ApplyProxy(opts, job, settings);
  ApplyHttpVersion(opts, job);
  if (!job.connect_to.empty()) {
    FETCHD_ASSIGN_OR_RETURN(connect_to_out, MakeSlist(job.connect_to));
    opts.Set(CURLOPT_CONNECT_TO, connect_to_out.get());
  }
  FETCHD_RETURN_IF_ERROR(opts.status());
  return CookieJar::AttachStore(job.cookie_jar.get(), easy);
}

}  // namespace

absl::Status CurlOptions::status() const {
  if (code_ == CURLE_OK) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("curl_easy_setopt(", failed_,
                                          "): ", curl_easy_strerror(code_)));
}

absl::Status SetUpRequest(CURL* easy, const core::FetchJob& job,
                          absl::Duration attempt_timeout,
                          const TransferSettings& settings,
                          RequestMemory& memory) {
  FETCHD_ASSIGN_OR_RETURN(memory.headers, MakeSlist(job.header_lines));
  // No "Expect: 100-continue" round trip for bodies unless asked for.
  if (!job.body.empty() || !job.multipart.empty()) {
    curl_slist* list = curl_slist_append(memory.headers.get(), "Expect:");
    if (memory.headers == nullptr) memory.headers.reset(list);
  }

  CurlOptions opts(easy);
  opts.Set(CURLOPT_URL, job.url.c_str())
      .Set(CURLOPT_NOSIGNAL, 1L)
      .Set(CURLOPT_PROTOCOLS_STR, "http,https")
      .Set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
      // Redirects are followed by the worker, one hop at a time, so that
      // each hop's method, credentials and destination are decided by
      // fetchd (curl_worker.cc).
      .Set(CURLOPT_FOLLOWLOCATION, 0L)
      .Set(CURLOPT_TIMEOUT_MS, ToMillis(attempt_timeout))
      .Set(CURLOPT_CONNECTTIMEOUT_MS, ToMillis(job.connect_timeout))
      // Decode every encoding libcurl supports (unless the caller wants
      // the raw bytes); the body cap counts decoded bytes in OnBody.
      .Set(CURLOPT_ACCEPT_ENCODING, job.decompress ? "" : nullptr)
      .Set(CURLOPT_HTTP_CONTENT_DECODING, job.decompress ? 1L : 0L)
      .Set(CURLOPT_HTTPHEADER, memory.headers.get())
      .Set(CURLOPT_MAXFILESIZE_LARGE,
           static_cast<curl_off_t>(job.max_body_bytes));
  FETCHD_RETURN_IF_ERROR(opts.status());
  FETCHD_RETURN_IF_ERROR(ApplyBody(easy, job, memory.mime));
  return ApplyConnectionOptions(easy, job, settings, memory.connect_to);
}

}  // namespace fetchd::transport

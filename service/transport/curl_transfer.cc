#include "service/transport/curl_transfer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "service/transport/cookie_jar.h"

namespace fetchd::transport {
namespace {

using fetch::v1::ErrorKind;
using google::protobuf::util::TimeUtil;

// Applies curl_easy_setopt calls, keeping the first failure.
class Options {
 public:
  explicit Options(CURL* easy) : easy_(easy) {}
  template <typename T>
  Options& Set(CURLoption option, T value) {
    if (code_ == CURLE_OK) {
      code_ = curl_easy_setopt(easy_, option, value);
      if (code_ != CURLE_OK) failed_ = option;
    }
    return *this;
  }
  absl::Status status() const {
    if (code_ == CURLE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("curl_easy_setopt(", failed_,
                                            "): ", curl_easy_strerror(code_)));
  }

 private:
  CURL* easy_;
  CURLcode code_ = CURLE_OK;
  int failed_ = 0;
};

long ToMillis(absl::Duration d) {  // NOLINT(google-runtime-int): curl's type.
  return static_cast<long>(        // NOLINT(google-runtime-int)
      std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

void SetDuration(google::protobuf::Duration* out, curl_off_t micros) {
  *out = TimeUtil::MicrosecondsToDuration(std::max<curl_off_t>(0, micros));
}

ErrorKind ClassifyCurlError(CURLcode code, bool connected,
                            bool connect_timeout_binds) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return fetch::v1::ERROR_KIND_DNS;
    case CURLE_COULDNT_CONNECT:
    case CURLE_PROXY:  // the proxy refused: handshake, credentials, target
      return fetch::v1::ERROR_KIND_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
      if (!connected && connect_timeout_binds) {
        return fetch::v1::ERROR_KIND_CONNECT_TIMEOUT;
      }
      return fetch::v1::ERROR_KIND_TOTAL_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return fetch::v1::ERROR_KIND_TLS;
    case CURLE_TOO_MANY_REDIRECTS:
      return fetch::v1::ERROR_KIND_TOO_MANY_REDIRECTS;
    case CURLE_FILESIZE_EXCEEDED:
      return fetch::v1::ERROR_KIND_BODY_TOO_LARGE;
    case CURLE_UNSUPPORTED_PROTOCOL:
      // The URL's scheme was checked before any I/O: once connected this
      // is the server's reply that isn't HTTP ("Received HTTP/0.9").
      return connected ? fetch::v1::ERROR_KIND_PROTOCOL
                       : fetch::v1::ERROR_KIND_INVALID_REQUEST;
    case CURLE_URL_MALFORMAT:
      return fetch::v1::ERROR_KIND_INVALID_REQUEST;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_RANGE_ERROR:
      return fetch::v1::ERROR_KIND_PROTOCOL;
    default:
      return fetch::v1::ERROR_KIND_INTERNAL;
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' ||
                        s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  return s;
}

}  // namespace

Transfer::Transfer(std::unique_ptr<core::FetchJob> job, CurlEasyPtr easy,
                   const Clock* clock, const policy::AddressPolicy* policy,
                   const TransferSettings* settings)
    : job_(std::move(job)),
      easy_(std::move(easy)),
      clock_(clock),
      policy_(policy),
      settings_(settings) {}

absl::Status Transfer::Start(absl::Time now) {
  const core::FetchJob& job = *job_;
  result_.Clear();
  error_buffer_[0] = '\0';
  started_ = now;
  last_activity_ = now;
  connected_ = false;
  abort_ = Abort::kNone;
  header_bytes_ = 0;
  denied_address_.reset();
  denial_ = policy::Decision();
  denied_category_.reset();
  redirect_url_.reset();
  ResetBody();
  attempt_timeout_ = std::min(job.total_timeout, job.batch->deadline() - now);

  curl_slist* list = nullptr;
  for (const std::string& line : job.header_lines) {
    curl_slist* next = curl_slist_append(list, line.c_str());
    if (next == nullptr) {
      curl_slist_free_all(list);
      return absl::ResourceExhaustedError("curl_slist_append failed");
    }
    list = next;
  }
  // No "Expect: 100-continue" round trip for bodies unless asked for.
  if (!job.body.empty() || !job.multipart.empty()) {
    curl_slist* next = curl_slist_append(list, "Expect:");
    if (next != nullptr) list = next;
  }
  request_headers_.reset(list);

  CURL* easy = easy_.get();
  Options opts(easy);
  opts.Set(CURLOPT_URL, job.url.c_str())
      .Set(CURLOPT_PRIVATE, static_cast<void*>(this))
      .Set(CURLOPT_NOSIGNAL, 1L)
      .Set(CURLOPT_ERRORBUFFER, error_buffer_)
      .Set(CURLOPT_PROTOCOLS_STR, "http,https")
      .Set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
      // Redirects are followed by the worker, one hop at a time, so that
      // each hop's method, credentials and destination are decided by
      // fetchd (curl_worker.cc).
      .Set(CURLOPT_FOLLOWLOCATION, 0L)
      .Set(CURLOPT_TIMEOUT_MS, ToMillis(attempt_timeout_))
      .Set(CURLOPT_CONNECTTIMEOUT_MS, ToMillis(job.connect_timeout))
      // Decode every encoding libcurl supports (unless the caller wants
      // the raw bytes); the body cap counts decoded bytes in OnBody.
      .Set(CURLOPT_ACCEPT_ENCODING, job.decompress ? "" : nullptr)
      .Set(CURLOPT_HTTP_CONTENT_DECODING, job.decompress ? 1L : 0L)
      .Set(CURLOPT_WRITEFUNCTION, &Transfer::OnBody)
      .Set(CURLOPT_WRITEDATA, static_cast<void*>(this))
      .Set(CURLOPT_HEADERFUNCTION, &Transfer::OnHeader)
      .Set(CURLOPT_HEADERDATA, static_cast<void*>(this))
      .Set(CURLOPT_PREREQFUNCTION, &Transfer::OnPrereq)
      .Set(CURLOPT_PREREQDATA, static_cast<void*>(this))
      .Set(CURLOPT_OPENSOCKETFUNCTION, &Transfer::OnOpenSocket)
      .Set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(this))
      .Set(CURLOPT_HTTPHEADER, request_headers_.get())
      .Set(CURLOPT_MAXFILESIZE_LARGE,
           static_cast<curl_off_t>(job.max_body_bytes));
  if (absl::Status s = opts.status(); !s.ok()) return s;
  return ApplyBody();
}

absl::Status Transfer::ApplyBody() {
  const core::FetchJob& job = *job_;
  CURL* easy = easy_.get();
  Options opts(easy);
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
    // The easy handle refers to the mime until it is unset (TakeEasy()).
    mime_ = std::move(mime);
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
  if (absl::Status status = opts.status(); !status.ok()) return status;
  return ApplyConnectionOptions();
}

absl::Status Transfer::ApplyConnectionOptions() {
  static const TransferSettings kDefaults;
  const TransferSettings& settings =
      settings_ != nullptr ? *settings_ : kDefaults;
  const core::FetchJob& job = *job_;
  CURL* easy = easy_.get();
  Options opts(easy);
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

  // TLS to the target. Blobs are copied by curl.
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

  // Proxy: the request's, else the server's; the environment only when the
  // server opts in (an empty CURLOPT_PROXY makes curl ignore it).
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

  // HTTP version. Over TLS, wait for a connection that may multiplex
  // (HTTP/2) rather than opening one per concurrent request.
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

  if (!job.connect_to.empty()) {
    curl_slist* list = nullptr;
    for (const std::string& entry : job.connect_to) {
      curl_slist* next = curl_slist_append(list, entry.c_str());
      if (next == nullptr) {
        curl_slist_free_all(list);
        return absl::ResourceExhaustedError("curl_slist_append failed");
      }
      list = next;
    }
    connect_to_.reset(list);
    opts.Set(CURLOPT_CONNECT_TO, connect_to_.get());
  }
  if (absl::Status status = opts.status(); !status.ok()) return status;
  if (job.cookie_jar != nullptr) return job.cookie_jar->Attach(easy);
  return absl::OkStatus();
}

CurlEasyPtr Transfer::TakeEasy() {
  if (mime_ != nullptr && easy_ != nullptr) {
    // curl_easy_reset() of the recycled handle would touch the mime.
    curl_easy_setopt(easy_.get(), CURLOPT_MIMEPOST, nullptr);
  }
  return std::move(easy_);
}

absl::Time Transfer::IdleDeadline() const {
  if (!connected_ || paused_) return absl::InfiniteFuture();
  return last_activity_ + job_->read_idle_timeout;
}

void Transfer::ResetBody() {
  body_bytes_ = 0;
  has_location_ = false;
  body_mode_ = BodyMode::kUndecided;
  pending_.clear();
  paused_ = false;
  partial_listed_ = false;
}

size_t Transfer::OnBody(char* data, size_t size, size_t count, void* self) {
  auto* t = static_cast<Transfer*>(self);
  const size_t n = size * count;
  if (t->body_bytes_ + n > t->job_->max_body_bytes) {
    t->abort_ = Abort::kBodyTooLarge;
    return 0;  // Short count: curl aborts with CURLE_WRITE_ERROR.
  }
  t->last_activity_ = t->clock_->Now();
  if (t->job_->stream_body) return t->OnStreamedBody(data, n);
  t->result_.mutable_body()->append(data, n);
  t->body_bytes_ += n;
  return n;
}

Transfer::BodyMode Transfer::DecideBodyMode() {
  const core::FetchJob& job = *job_;
  long status = 0;  // NOLINT(google-runtime-int): curl's type.
  curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status);
  if (job.follow_redirects && has_location_ &&
      (status == 301 || status == 302 || status == 303 || status == 307 ||
       status == 308)) {
    return BodyMode::kRedirect;
  }
  if (job.attempts < job.retry.max_attempts) {
    const std::vector<uint32_t>& statuses = job.retry.retry_on_status.empty()
                                                ? core::DefaultRetryOnStatus()
                                                : job.retry.retry_on_status;
    const std::vector<ErrorKind>& kinds = job.retry.retry_on.empty()
                                              ? core::DefaultRetryOn()
                                              : job.retry.retry_on;
    if (std::find(statuses.begin(), statuses.end(),
                  static_cast<uint32_t>(status)) != statuses.end() ||
        (job.fail_on_http_error && status >= 400 &&
         std::find(kinds.begin(), kinds.end(),
                   fetch::v1::ERROR_KIND_HTTP_STATUS) != kinds.end())) {
      return BodyMode::kHold;
    }
  }
  return BodyMode::kStream;
}

size_t Transfer::OnStreamedBody(const char* data, size_t n) {
  core::FetchJob& job = *job_;
  const size_t chunk = job.chunk_bytes;
  if (body_mode_ == BodyMode::kUndecided) body_mode_ = DecideBodyMode();
  switch (body_mode_) {
    case BodyMode::kRedirect:
      // Never shown unless the redirect can't be followed; one chunk is
      // plenty for that.
      pending_.append(data,
                      std::min(n, chunk - std::min(chunk, pending_.size())));
      body_bytes_ += n;
      return n;
    case BodyMode::kHold:
      if (pending_.size() + n <= chunk) {
        pending_.append(data, n);
        body_bytes_ += n;
        return n;
      }
      // Too long to hold: stream it, and give up retrying this request.
      body_mode_ = BodyMode::kStream;
      break;
    case BodyMode::kStream:
    case BodyMode::kUndecided:
      break;
  }
  // Everything taken goes to the batch soon (SendPartial), so it all needs
  // room: the batch then holds at most its bound plus less than a chunk and
  // one write per transfer.
  if (!job.batch->StreamHasRoom(worker_index_)) {
    paused_ = true;
    if (paused_list_ != nullptr) paused_list_->push_back(easy_.get());
    // curl keeps `data` and hands it over again once unpaused.
    return CURL_WRITEFUNC_PAUSE;
  }
  pending_.append(data, n);
  body_bytes_ += n;
  SendStreamed(/*last=*/false);
  if (!pending_.empty() && !partial_listed_ && partial_list_ != nullptr) {
    partial_listed_ = true;
    partial_list_->push_back(easy_.get());
  }
  return n;
}

void Transfer::SendPartial() {
  partial_listed_ = false;
  if (body_mode_ == BodyMode::kStream && !pending_.empty()) {
    SendStreamed(/*last=*/true);
  }
}

void Transfer::SendStreamed(bool last) {
  core::FetchJob& job = *job_;
  if (!job.head_sent) {
    FillTransferInfo();
    fetch::v1::FetchResult head_of = result_;
    SendHeldBody(job, head_of);  // the head only: head_of has no body
  }
  const size_t chunk = job.chunk_bytes;
  size_t sent = 0;
  while (pending_.size() - sent >= chunk || (last && sent < pending_.size())) {
    const size_t take = std::min(chunk, pending_.size() - sent);
    fetch::v1::BodyChunk out;
    out.set_index(job.index);
    out.set_offset(job.streamed_bytes);
    out.set_data(pending_.data() + sent, take);
    job.streamed_bytes += take;
    sent += take;
    job.batch->SendChunk(std::move(out));
  }
  pending_.erase(0, sent);
}

void Transfer::FinishBody() {
  if (!job_->stream_body) return;
  if (body_mode_ == BodyMode::kStream) {
    SendStreamed(/*last=*/true);
  } else {
    // Held (or empty): the worker sends it if this result is final.
    result_.mutable_body()->swap(pending_);
    pending_.clear();
  }
}

absl::Status Transfer::Resume(absl::Time now) {
  if (!paused_) return absl::OkStatus();
  paused_ = false;
  last_activity_ = now;
  // May call OnBody (and pause again) before it returns.
  const CURLcode code = curl_easy_pause(easy_.get(), CURLPAUSE_CONT);
  if (code != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("curl_easy_pause: ", curl_easy_strerror(code)));
  }
  return absl::OkStatus();
}

void SendHeldBody(core::FetchJob& job, fetch::v1::FetchResult& result) {
  if (!job.stream_body) return;
  if (!job.head_sent) {
    if (result.status() == 0) return;  // no response: the result says why
    fetch::v1::BodyHead head;
    head.set_id(job.id);
    head.set_index(job.index);
    head.set_status(result.status());
    *head.mutable_headers() = result.headers();
    head.set_final_url(result.final_url().empty() ? job.url
                                                  : result.final_url());
    head.set_http_version(result.http_version());
    bool encoded = false;
    std::optional<uint64_t> length;
    for (const fetch::v1::Header& h : result.headers()) {
      uint64_t value = 0;
      if (absl::EqualsIgnoreCase(h.name(), "content-encoding") &&
          !absl::EqualsIgnoreCase(h.value(), "identity")) {
        encoded = true;
      } else if (absl::EqualsIgnoreCase(h.name(), "content-length") &&
                 absl::SimpleAtoi(h.value(), &value)) {
        length = value;
      }
    }
    if (length.has_value() && (!encoded || !job.decompress)) {
      head.set_content_length(*length);
    }
    job.head_sent = true;
    job.batch->SendHead(std::move(head));
  }
  const std::string& body = result.body();
  for (size_t sent = 0; sent < body.size();) {
    const size_t take = std::min<size_t>(job.chunk_bytes, body.size() - sent);
    fetch::v1::BodyChunk out;
    out.set_index(job.index);
    out.set_offset(job.streamed_bytes);
    out.set_data(body.data() + sent, take);
    job.streamed_bytes += take;
    sent += take;
    job.batch->SendChunk(std::move(out));
  }
  result.clear_body();
}

size_t Transfer::OnHeader(char* data, size_t size, size_t count, void* self) {
  auto* t = static_cast<Transfer*>(self);
  const size_t n = size * count;
  t->last_activity_ = t->clock_->Now();
  t->header_bytes_ += n;
  if (t->header_bytes_ > t->job_->max_response_header_bytes) {
    t->abort_ = Abort::kHeadersTooLarge;
    return 0;  // Short count: curl aborts with CURLE_WRITE_ERROR.
  }
  std::string_view line(data, n);
  if (line.substr(0, 5) == "HTTP/") {
    // A new response (after 100 Continue): keep only the last.
    t->result_.clear_headers();
    t->header_bytes_ = n;
    t->has_location_ = false;
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return n;
  fetch::v1::Header* header = t->result_.add_headers();
  header->set_name(std::string(Trim(line.substr(0, colon))));
  header->set_value(std::string(Trim(line.substr(colon + 1))));
  if (absl::EqualsIgnoreCase(header->name(), "set-cookie")) {
    t->job_->set_cookies.push_back(header->value());
  }
  // Size the body once instead of growing it chunk by chunk. Only a hint:
  // the cap is enforced on the bytes that arrive (decoded).
  uint64_t length = 0;
  if (absl::EqualsIgnoreCase(header->name(), "location")) {
    t->has_location_ = true;
  } else if (!t->job_->stream_body &&
             absl::EqualsIgnoreCase(header->name(), "content-length") &&
             absl::SimpleAtoi(header->value(), &length)) {
    t->result_.mutable_body()->reserve(
        static_cast<size_t>(std::min(length, t->job_->max_body_bytes)));
  }
  return n;
}

bool Transfer::Permit(const policy::IpAddress& addr, uint16_t port) {
  if (policy_ == nullptr) return true;
  policy::Decision decision = policy_->Check(addr, port);
  if (decision.allowed) return true;
  if (!denied_address_.has_value()) {
    denied_address_ = addr.is_v4()
                          ? absl::StrCat(addr.ToString(), ":", port)
                          : absl::StrCat("[", addr.ToString(), "]:", port);
    denial_ = std::move(decision);
  }
  return false;
}

curl_socket_t Transfer::OnOpenSocket(void* self, curlsocktype /*purpose*/,
                                     curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(self);
  policy::IpAddress addr;
  uint16_t port = 0;
  if (address->family == AF_INET && address->addrlen >= sizeof(sockaddr_in)) {
    sockaddr_in sin;
    std::memcpy(&sin, &address->addr, sizeof(sin));
    addr.family = policy::IpAddress::Family::kV4;
    std::memcpy(addr.bytes.data(), &sin.sin_addr, 4);
    port = ntohs(sin.sin_port);
  } else if (address->family == AF_INET6 &&
             address->addrlen >= sizeof(sockaddr_in6)) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, &address->addr, sizeof(sin6));
    addr.family = policy::IpAddress::Family::kV6;
    std::memcpy(addr.bytes.data(), &sin6.sin6_addr, 16);
    port = ntohs(sin6.sin6_port);
  } else {
    // Unix sockets and anything else are never a fetch destination.
    return CURL_SOCKET_BAD;
  }
  if (!t->Permit(addr, port)) return CURL_SOCKET_BAD;
  return socket(address->family, address->socktype | SOCK_CLOEXEC,
                address->protocol);
}

int Transfer::OnPrereq(void* self, char* primary_ip, char* /*local_ip*/,
                       int primary_port, int /*local_port*/) {
  auto* t = static_cast<Transfer*>(self);
  t->connected_ = true;
  t->last_activity_ = t->clock_->Now();
  // A reused connection was opened for an earlier transfer: check its
  // address again for this one (the policy checks every request).
  if (t->policy_ != nullptr) {
    std::optional<policy::IpAddress> addr =
        policy::IpAddress::Parse(primary_ip);
    if (!addr.has_value() || primary_port <= 0 || primary_port > 65535 ||
        !t->Permit(*addr, static_cast<uint16_t>(primary_port))) {
      return CURL_PREREQFUNC_ABORT;
    }
  }
  return CURL_PREREQFUNC_OK;
}

void Transfer::SetError(ErrorKind kind, std::string message) {
  result_.set_error(kind);
  result_.set_error_message(std::move(message));
}

void Transfer::FillTransferInfo() {
  CURL* easy = easy_.get();
  long status = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK) {
    result_.set_status(static_cast<uint32_t>(status));
  }
  char* url = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
      url != nullptr) {
    result_.set_final_url(url);
  }
  char* ip = nullptr;
  long port = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
      ip != nullptr && ip[0] != '\0' &&
      curl_easy_getinfo(easy, CURLINFO_PRIMARY_PORT, &port) == CURLE_OK) {
    const absl::string_view addr(ip);
    result_.set_remote_address(addr.find(':') == std::string_view::npos
                                   ? absl::StrCat(addr, ":", port)
                                   : absl::StrCat("[", addr, "]:", port));
  }
  long version = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version) == CURLE_OK) {
    switch (version) {
      case CURL_HTTP_VERSION_1_0:
        result_.set_http_version("1.0");
        break;
      case CURL_HTTP_VERSION_1_1:
        result_.set_http_version("1.1");
        break;
      case CURL_HTTP_VERSION_2_0:
        result_.set_http_version("2");
        break;
      case CURL_HTTP_VERSION_3:
        result_.set_http_version("3");
        break;
      default:
        break;
    }
  }
  long connects = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
    result_.set_connection_reused(connected_ && connects == 0);
  }
  curl_off_t uploaded = 0;
  if (curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK) {
    result_.set_bytes_sent(static_cast<uint64_t>(uploaded));
  }
  result_.set_bytes_received(body_bytes_);

  curl_off_t dns = 0, connect = 0, tls = 0, first_byte = 0, total = 0;
  curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &dns);
  curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect);
  curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &tls);
  curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
  fetch::v1::Timings* timings = result_.mutable_timings();
  SetDuration(timings->mutable_dns(), dns);
  SetDuration(timings->mutable_connect(), connect > 0 ? connect - dns : 0);
  SetDuration(timings->mutable_tls(), tls > 0 ? tls - connect : 0);
  SetDuration(timings->mutable_first_byte(), first_byte);
  SetDuration(timings->mutable_total(), total);
}

core::AttemptOutcome Transfer::Finish(CURLcode code) {
  FillTransferInfo();
  FinishBody();
  core::AttemptOutcome outcome;
  outcome.request_sent = connected_;
  outcome.status = result_.status();

  switch (abort_) {
    case Abort::kBodyTooLarge:
      outcome.over_limit = true;
      SetError(fetch::v1::ERROR_KIND_BODY_TOO_LARGE,
               absl::StrCat("response body exceeds max_body_bytes (",
                            job_->max_body_bytes, ")"));
      break;
    case Abort::kHeadersTooLarge:
      outcome.over_limit = true;
      SetError(fetch::v1::ERROR_KIND_PROTOCOL,
               absl::StrCat("response headers exceed ",
                            job_->max_response_header_bytes,
                            " bytes (request_bounds.max_response_header_"
                            "bytes)"));
      break;
    case Abort::kReadIdle:
      SetError(fetch::v1::ERROR_KIND_READ_TIMEOUT,
               absl::StrCat("read-idle timeout: no data for ",
                            absl::FormatDuration(job_->read_idle_timeout)));
      break;
    case Abort::kCancelled:
      SetError(fetch::v1::ERROR_KIND_CANCELLED, "cancelled");
      break;
    case Abort::kNone:
      if (code == CURLE_OK) break;
      if (denied_address_.has_value() && (code == CURLE_COULDNT_CONNECT ||
                                          code == CURLE_ABORTED_BY_CALLBACK)) {
        SetError(fetch::v1::ERROR_KIND_DENIED,
                 absl::StrCat("destination ", *denied_address_,
                              " denied by policy (rule: ", denial_.rule, ")"));
        denied_category_ = denial_.category;
        break;
      }
      {
        const bool connect_binds = job_->connect_timeout <= attempt_timeout_;
        ErrorKind kind = ClassifyCurlError(code, connected_, connect_binds);
        std::string detail =
            error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(code);
        if (kind == fetch::v1::ERROR_KIND_TOTAL_TIMEOUT &&
            attempt_timeout_ < job_->total_timeout) {
          // The attempt was cut short by the RPC deadline, not by its own
          // total timeout.
          kind = fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED;
          detail = absl::StrCat("the RPC deadline ended the transfer after ",
                                absl::FormatDuration(attempt_timeout_), ": ",
                                detail);
        } else if (kind == fetch::v1::ERROR_KIND_TOTAL_TIMEOUT) {
          detail = absl::StrCat("total timeout (",
                                absl::FormatDuration(attempt_timeout_),
                                "): ", detail);
        } else if (kind == fetch::v1::ERROR_KIND_CONNECT_TIMEOUT) {
          detail = absl::StrCat("connect timeout (",
                                absl::FormatDuration(job_->connect_timeout),
                                "): ", detail);
        }
        SetError(kind, std::move(detail));
      }
      break;
  }
  if (result_.error() == fetch::v1::ERROR_KIND_NONE &&
      job_->fail_on_http_error && result_.status() >= 400) {
    SetError(fetch::v1::ERROR_KIND_HTTP_STATUS,
             absl::StrCat("HTTP status ", result_.status()));
  }
  outcome.error = result_.error();

  if (result_.error() == fetch::v1::ERROR_KIND_NONE && job_->follow_redirects) {
    const uint32_t status = result_.status();
    char* location = nullptr;
    if ((status == 301 || status == 302 || status == 303 || status == 307 ||
         status == 308) &&
        curl_easy_getinfo(easy_.get(), CURLINFO_REDIRECT_URL, &location) ==
            CURLE_OK &&
        location != nullptr) {
      redirect_url_ = location;
    }
  }

  curl_off_t retry_after = 0;
  if (curl_easy_getinfo(easy_.get(), CURLINFO_RETRY_AFTER, &retry_after) ==
          CURLE_OK &&
      retry_after > 0) {
    outcome.retry_after = absl::Seconds(retry_after);
  }
  return outcome;
}

}  // namespace fetchd::transport

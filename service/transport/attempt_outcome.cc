#include "service/transport/attempt_outcome.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fetchd::transport {
namespace {

using fetch::v1::ErrorKind;

// OpenSSL's message for a TLS alert the peer sent, e.g. "...SSL routines::
// tlsv13 alert certificate required" or "...tlsv1 alert unknown ca".
bool IsTlsAlert(absl::string_view detail) {
  const absl::string_view text = detail;
  return absl::StrContains(text, "SSL routines") &&
         absl::StrContains(text, " alert ");
}

}  // namespace

std::string BodyTooLargeMessage(uint64_t max_body_bytes) {
  return absl::StrCat("response body exceeds max_body_bytes (", max_body_bytes,
                      " bytes)");
}

ErrorKind ClassifyCurlError(CURLcode code, bool connected,
                            bool connect_timeout_binds,
                            absl::string_view detail) {
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
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      // Under TLS 1.3 the server checks the client certificate after the
      // client's handshake is done: its alert is the first thing read.
      return IsTlsAlert(detail) ? fetch::v1::ERROR_KIND_TLS
                                : fetch::v1::ERROR_KIND_PROTOCOL;
    case CURLE_GOT_NOTHING:
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

ClassifiedOutcome ClassifyAttempt(const AttemptFacts& facts) {
  ClassifiedOutcome out;
  switch (facts.abort) {
    case Abort::kBodyTooLarge:
      out.error = fetch::v1::ERROR_KIND_BODY_TOO_LARGE;
      out.message = BodyTooLargeMessage(facts.max_body_bytes);
      out.over_limit = true;
      return out;
    case Abort::kHeadersTooLarge:
      out.error = fetch::v1::ERROR_KIND_PROTOCOL;
      out.message = absl::StrCat(
          "response headers exceed ", facts.max_response_header_bytes,
          " bytes (request_bounds.max_response_header_bytes)");
      out.over_limit = true;
      return out;
    case Abort::kReadIdle:
      out.error = fetch::v1::ERROR_KIND_READ_TIMEOUT;
      out.message = absl::StrCat("read-idle timeout: no data for ",
                                 absl::FormatDuration(facts.read_idle_timeout));
      return out;
    case Abort::kCancelled:
      out.error = fetch::v1::ERROR_KIND_CANCELLED;
      out.message = "cancelled";
      return out;
    case Abort::kNone:
      break;
  }
  if (facts.code != CURLE_OK) {
    if (facts.denial.has_value() && (facts.code == CURLE_COULDNT_CONNECT ||
                                     facts.code == CURLE_ABORTED_BY_CALLBACK)) {
      out.error = fetch::v1::ERROR_KIND_DENIED;
      out.message = std::string(*facts.denial);
      out.denied = true;
      return out;
    }
    const bool connect_binds = facts.connect_timeout <= facts.attempt_timeout;
    out.error = ClassifyCurlError(facts.code, facts.connected, connect_binds,
                                  facts.curl_detail);
    if (out.error == fetch::v1::ERROR_KIND_BODY_TOO_LARGE) {
      // curl refused a Content-Length over the cap before any body byte.
      out.message = BodyTooLargeMessage(facts.max_body_bytes);
      out.over_limit = true;
    } else if (out.error == fetch::v1::ERROR_KIND_TOTAL_TIMEOUT &&
               facts.attempt_timeout < facts.total_timeout) {
      // The attempt was cut short by the RPC deadline, not by its own
      // total timeout.
      out.error = fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED;
      out.message = absl::StrCat("the RPC deadline ended the transfer after ",
                                 absl::FormatDuration(facts.attempt_timeout),
                                 ": ", facts.curl_detail);
    } else if (out.error == fetch::v1::ERROR_KIND_TOTAL_TIMEOUT) {
      out.message = absl::StrCat("total timeout (",
                                 absl::FormatDuration(facts.attempt_timeout),
                                 "): ", facts.curl_detail);
    } else if (out.error == fetch::v1::ERROR_KIND_CONNECT_TIMEOUT) {
      out.message = absl::StrCat("connect timeout (",
                                 absl::FormatDuration(facts.connect_timeout),
                                 "): ", facts.curl_detail);
    } else {
      out.message = std::string(facts.curl_detail);
    }
    return out;
  }
  if (facts.fail_on_http_error && facts.status >= 400) {
    out.error = fetch::v1::ERROR_KIND_HTTP_STATUS;
    out.message = absl::StrCat("HTTP status ", facts.status);
  }
  return out;
}

core::politeness::AttemptResult AttemptResultOf(
    const core::AttemptOutcome& outcome) {
  using Kind = core::politeness::AttemptResult::Kind;
  core::politeness::AttemptResult result;
  result.kind = Kind::kAborted;
  if (outcome.over_limit) return result;
  switch (outcome.error) {
    case fetch::v1::ERROR_KIND_DNS:
    case fetch::v1::ERROR_KIND_CONNECT:
    case fetch::v1::ERROR_KIND_TLS:
      result.kind = Kind::kConnectFailed;
      return result;
    case fetch::v1::ERROR_KIND_CONNECT_TIMEOUT:
    case fetch::v1::ERROR_KIND_TOTAL_TIMEOUT:
    case fetch::v1::ERROR_KIND_READ_TIMEOUT:
      result.kind = Kind::kTimedOut;
      return result;
    case fetch::v1::ERROR_KIND_NONE:
    case fetch::v1::ERROR_KIND_HTTP_STATUS:
    case fetch::v1::ERROR_KIND_PROTOCOL:
    case fetch::v1::ERROR_KIND_TOO_MANY_REDIRECTS:
      break;
    default:
      // Cancelled, denied, the RPC deadline, fetchd's own limits or bugs.
      return result;
  }
  if (outcome.status == 0) {
    // Connected, but no response came (reset, empty or garbled reply): the
    // host failed as surely as a refused connection.
    result.kind = outcome.error == fetch::v1::ERROR_KIND_PROTOCOL
                      ? Kind::kConnectFailed
                      : Kind::kAborted;
    return result;
  }
  result.kind = Kind::kResponse;
  result.status = static_cast<int>(outcome.status);
  result.retry_after = outcome.retry_after;
  return result;
}

}  // namespace fetchd::transport

// Outcome classification as a table: curl code, fetchd's own aborts, the
// policy's refusal and HTTP facts in; error kind, message, over_limit and
// denied out. Pure: no curl transfer runs.
#include "service/transport/attempt_outcome.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::transport {
namespace {

using fetch::v1::ErrorKind;
using ::testing::HasSubstr;

AttemptFacts Base() {
  AttemptFacts f;
  f.attempt_timeout = absl::Seconds(30);
  f.total_timeout = absl::Seconds(30);
  f.connect_timeout = absl::Seconds(10);
  f.read_idle_timeout = absl::Seconds(5);
  f.max_body_bytes = 2097152;
  f.max_response_header_bytes = 16384;
  return f;
}

struct Case {
  std::string name;
  AttemptFacts facts;
  ErrorKind want;
  // Substring of the message; empty: the message must be empty.
  std::string message;
  bool over_limit = false;
  bool denied = false;
};

TEST(AttemptOutcomeTest, Table) {
  std::vector<Case> cases;
  const auto add = [&](std::string name, auto tweak, ErrorKind want,
                       std::string message, bool over_limit = false,
                       bool denied = false) {
    AttemptFacts f = Base();
    tweak(f);
    cases.push_back(
        {std::move(name), f, want, std::move(message), over_limit, denied});
  };
  add(
      "success", [](AttemptFacts& f) { f.status = 200; },
      fetch::v1::ERROR_KIND_NONE, "");
  add(
      "404 is a response", [](AttemptFacts& f) { f.status = 404; },
      fetch::v1::ERROR_KIND_NONE, "");
  add(
      "404 with fail_on_http_error",
      [](AttemptFacts& f) {
        f.status = 404;
        f.fail_on_http_error = true;
      },
      fetch::v1::ERROR_KIND_HTTP_STATUS, "HTTP status 404");
  add(
      "399 with fail_on_http_error",
      [](AttemptFacts& f) {
        f.status = 399;
        f.fail_on_http_error = true;
      },
      fetch::v1::ERROR_KIND_NONE, "");
  add(
      "decoded body over the cap",
      [](AttemptFacts& f) {
        f.abort = Abort::kBodyTooLarge;
        f.code = CURLE_WRITE_ERROR;
        f.status = 200;
      },
      fetch::v1::ERROR_KIND_BODY_TOO_LARGE,
      "response body exceeds max_body_bytes (2097152 bytes)", true);
  add(
      "Content-Length over the cap (curl refuses)",
      [](AttemptFacts& f) {
        f.code = CURLE_FILESIZE_EXCEEDED;
        f.curl_detail = "Maximum file size exceeded";
        f.connected = true;
        f.status = 200;
      },
      fetch::v1::ERROR_KIND_BODY_TOO_LARGE,
      "response body exceeds max_body_bytes (2097152 bytes)", true);
  add(
      "headers over the cap",
      [](AttemptFacts& f) {
        f.abort = Abort::kHeadersTooLarge;
        f.code = CURLE_WRITE_ERROR;
      },
      fetch::v1::ERROR_KIND_PROTOCOL,
      "response headers exceed 16384 bytes "
      "(request_bounds.max_response_header_bytes)",
      true);
  add(
      "read idle", [](AttemptFacts& f) { f.abort = Abort::kReadIdle; },
      fetch::v1::ERROR_KIND_READ_TIMEOUT, "read-idle timeout: no data for 5s");
  add(
      "cancelled wins over a curl error",
      [](AttemptFacts& f) {
        f.abort = Abort::kCancelled;
        f.code = CURLE_RECV_ERROR;
      },
      fetch::v1::ERROR_KIND_CANCELLED, "cancelled");
  add(
      "policy refused the socket",
      [](AttemptFacts& f) {
        f.code = CURLE_COULDNT_CONNECT;
        f.denial =
            "destination 169.254.169.254:80 denied by policy (rule: "
            "link-local)";
      },
      fetch::v1::ERROR_KIND_DENIED,
      "destination 169.254.169.254:80 denied by policy (rule: link-local)",
      false, true);
  add(
      "policy refused a reused connection",
      [](AttemptFacts& f) {
        f.code = CURLE_ABORTED_BY_CALLBACK;
        f.denial = "destination [::1]:8080 denied by policy (rule: loopback)";
      },
      fetch::v1::ERROR_KIND_DENIED, "destination [::1]:8080 denied", false,
      true);
  add(
      "a refusal behind another failure is that failure",
      [](AttemptFacts& f) {
        f.code = CURLE_COULDNT_RESOLVE_HOST;
        f.curl_detail = "Could not resolve host: nx.test";
        f.denial = "destination 10.0.0.1:80 denied by policy (rule: private)";
      },
      fetch::v1::ERROR_KIND_DNS, "Could not resolve host: nx.test");
  add(
      "connection refused",
      [](AttemptFacts& f) {
        f.code = CURLE_COULDNT_CONNECT;
        f.curl_detail = "Failed to connect";
      },
      fetch::v1::ERROR_KIND_CONNECT, "Failed to connect");
  add(
      "proxy refused", [](AttemptFacts& f) { f.code = CURLE_PROXY; },
      fetch::v1::ERROR_KIND_CONNECT, "");
  add(
      "timeout before connecting",
      [](AttemptFacts& f) {
        f.code = CURLE_OPERATION_TIMEDOUT;
        f.curl_detail = "Connection timed out";
      },
      fetch::v1::ERROR_KIND_CONNECT_TIMEOUT,
      "connect timeout (10s): Connection timed out");
  add(
      "timeout before connecting, total timeout shorter",
      [](AttemptFacts& f) {
        f.code = CURLE_OPERATION_TIMEDOUT;
        f.attempt_timeout = absl::Seconds(2);
        f.total_timeout = absl::Seconds(2);
      },
      fetch::v1::ERROR_KIND_TOTAL_TIMEOUT, "total timeout (2s)");
  add(
      "timeout once connected",
      [](AttemptFacts& f) {
        f.code = CURLE_OPERATION_TIMEDOUT;
        f.connected = true;
      },
      fetch::v1::ERROR_KIND_TOTAL_TIMEOUT, "total timeout (30s)");
  add(
      "timeout cut short by the RPC deadline",
      [](AttemptFacts& f) {
        f.code = CURLE_OPERATION_TIMEDOUT;
        f.connected = true;
        f.attempt_timeout = absl::Seconds(3);
      },
      fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED,
      "the RPC deadline ended the transfer after 3s");
  add(
      "certificate that doesn't verify",
      [](AttemptFacts& f) { f.code = CURLE_PEER_FAILED_VERIFICATION; },
      fetch::v1::ERROR_KIND_TLS, "");
  add(
      "TLS 1.2: client certificate refused in the handshake",
      [](AttemptFacts& f) {
        f.code = CURLE_SSL_CONNECT_ERROR;
        f.curl_detail =
            "OpenSSL/3.0.19: error:0A000418:SSL routines::tlsv1 alert "
            "unknown ca";
      },
      fetch::v1::ERROR_KIND_TLS, "alert unknown ca");
  add(
      "TLS 1.3: client certificate from another CA, refused after it",
      [](AttemptFacts& f) {
        f.code = CURLE_RECV_ERROR;
        f.connected = true;
        f.curl_detail =
            "OpenSSL SSL_read: OpenSSL/3.0.19: error:0A000418:SSL "
            "routines::tlsv1 alert unknown ca, errno 0";
      },
      fetch::v1::ERROR_KIND_TLS, "alert unknown ca");
  add(
      "TLS 1.3: no client certificate, refused after the handshake",
      [](AttemptFacts& f) {
        f.code = CURLE_RECV_ERROR;
        f.connected = true;
        f.curl_detail =
            "OpenSSL SSL_read: OpenSSL/3.0.19: error:0A00045C:SSL "
            "routines::tlsv13 alert certificate required, errno 0";
      },
      fetch::v1::ERROR_KIND_TLS, "alert certificate required");
  add(
      "TLS connection cut without an alert is a protocol failure",
      [](AttemptFacts& f) {
        f.code = CURLE_RECV_ERROR;
        f.connected = true;
        f.curl_detail =
            "OpenSSL SSL_read: error:0A000126:SSL routines::unexpected eof "
            "while reading, errno 0";
      },
      fetch::v1::ERROR_KIND_PROTOCOL, "unexpected eof");
  add(
      "connection reset",
      [](AttemptFacts& f) {
        f.code = CURLE_RECV_ERROR;
        f.connected = true;
        f.curl_detail = "Recv failure: Connection reset by peer";
      },
      fetch::v1::ERROR_KIND_PROTOCOL, "Connection reset by peer");
  add(
      "send failure", [](AttemptFacts& f) { f.code = CURLE_SEND_ERROR; },
      fetch::v1::ERROR_KIND_PROTOCOL, "");
  add(
      "empty reply", [](AttemptFacts& f) { f.code = CURLE_GOT_NOTHING; },
      fetch::v1::ERROR_KIND_PROTOCOL, "");
  add(
      "not HTTP once connected",
      [](AttemptFacts& f) {
        f.code = CURLE_UNSUPPORTED_PROTOCOL;
        f.connected = true;
      },
      fetch::v1::ERROR_KIND_PROTOCOL, "");
  add(
      "unsupported scheme before connecting",
      [](AttemptFacts& f) { f.code = CURLE_UNSUPPORTED_PROTOCOL; },
      fetch::v1::ERROR_KIND_INVALID_REQUEST, "");
  add(
      "malformed URL", [](AttemptFacts& f) { f.code = CURLE_URL_MALFORMAT; },
      fetch::v1::ERROR_KIND_INVALID_REQUEST, "");
  add(
      "unknown curl code",
      [](AttemptFacts& f) {
        f.code = CURLE_OUT_OF_MEMORY;
        f.curl_detail = "Out of memory";
      },
      fetch::v1::ERROR_KIND_INTERNAL, "Out of memory");

  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const ClassifiedOutcome out = ClassifyAttempt(c.facts);
    EXPECT_EQ(out.error, c.want) << out.message;
    if (c.want == fetch::v1::ERROR_KIND_NONE) {
      EXPECT_EQ(out.message, "");
    } else {
      EXPECT_THAT(out.message, HasSubstr(c.message));
    }
    EXPECT_EQ(out.over_limit, c.over_limit);
    EXPECT_EQ(out.denied, c.denied);
  }
}

TEST(AttemptOutcomeTest, BodyTooLargeHasOneMessage) {
  EXPECT_EQ(BodyTooLargeMessage(1000),
            "response body exceeds max_body_bytes (1000 bytes)");
}

// How attempts count for politeness (breaker, pause, adaptive limit).
TEST(AttemptResultOfTest, MapsEveryOutcomeToWhatPolitenessCounts) {
  using Kind = core::politeness::AttemptResult::Kind;
  struct Mapping {
    ErrorKind error;
    uint32_t status;
    bool over_limit;
    Kind want;
  };
  const Mapping cases[] = {
      {fetch::v1::ERROR_KIND_NONE, 200, false, Kind::kResponse},
      {fetch::v1::ERROR_KIND_NONE, 503, false, Kind::kResponse},
      {fetch::v1::ERROR_KIND_HTTP_STATUS, 500, false, Kind::kResponse},
      {fetch::v1::ERROR_KIND_DNS, 0, false, Kind::kConnectFailed},
      {fetch::v1::ERROR_KIND_CONNECT, 0, false, Kind::kConnectFailed},
      {fetch::v1::ERROR_KIND_TLS, 0, false, Kind::kConnectFailed},
      // Connected, no response (reset, empty reply).
      {fetch::v1::ERROR_KIND_PROTOCOL, 0, false, Kind::kConnectFailed},
      // A response that broke off: the host did answer.
      {fetch::v1::ERROR_KIND_PROTOCOL, 200, false, Kind::kResponse},
      {fetch::v1::ERROR_KIND_CONNECT_TIMEOUT, 0, false, Kind::kTimedOut},
      {fetch::v1::ERROR_KIND_TOTAL_TIMEOUT, 200, false, Kind::kTimedOut},
      {fetch::v1::ERROR_KIND_READ_TIMEOUT, 200, false, Kind::kTimedOut},
      {fetch::v1::ERROR_KIND_CANCELLED, 0, false, Kind::kAborted},
      {fetch::v1::ERROR_KIND_DENIED, 0, false, Kind::kAborted},
      {fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED, 0, false, Kind::kAborted},
      {fetch::v1::ERROR_KIND_INTERNAL, 0, false, Kind::kAborted},
      {fetch::v1::ERROR_KIND_BODY_TOO_LARGE, 200, true, Kind::kAborted},
      {fetch::v1::ERROR_KIND_PROTOCOL, 200, true, Kind::kAborted},
  };
  for (const Mapping& c : cases) {
    SCOPED_TRACE(testing::Message() << fetch::v1::ErrorKind_Name(c.error)
                                    << " status " << c.status);
    core::AttemptOutcome outcome;
    outcome.error = c.error;
    outcome.status = c.status;
    outcome.over_limit = c.over_limit;
    outcome.retry_after = absl::Seconds(2);
    const core::politeness::AttemptResult result = AttemptResultOf(outcome);
    EXPECT_EQ(result.kind, c.want);
    if (c.want == Kind::kResponse) {
      EXPECT_EQ(result.status, static_cast<int>(c.status));
      EXPECT_EQ(result.retry_after, absl::Seconds(2));
    }
  }
}

}  // namespace
}  // namespace fetchd::transport

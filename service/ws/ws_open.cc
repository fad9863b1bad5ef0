#include "service/ws/ws_open.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/proto_duration.h"
#include "service/url/http_url.h"

namespace fetchd::ws {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat("open.", field, ": ", rule));
}

// RFC 9110 token characters.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) continue;
    if (absl::string_view("!#$%&'*+-.^_`|~").find(c) ==
        absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool HasControl(absl::string_view s) {
  for (const char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return true;
  }
  return false;
}

// Set by fetchd (or by the WebSocket handshake itself).
bool IsReservedHeader(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  return lower == "host" || lower == "connection" || lower == "upgrade" ||
         lower == "content-length" || lower == "transfer-encoding" ||
         lower == "te" || absl::StartsWith(lower, "sec-websocket-");
}

absl::StatusOr<absl::Duration> Timeout(absl::string_view field,
                                       const google::protobuf::Duration& given,
                                       const google::protobuf::Duration& def,
                                       const google::protobuf::Duration& max) {
  if (!IsValidProtoDuration(given)) {
    return Invalid(field, "not a valid duration");
  }
  const absl::Duration value = FromProto(given);
  if (value == absl::ZeroDuration()) return FromProto(def);
  if (value < absl::ZeroDuration()) return Invalid(field, "must be positive");
  if (value > FromProto(max)) {
    return Invalid(field, absl::StrCat("must be at most ",
                                       absl::FormatDuration(FromProto(max)),
                                       ", got ", absl::FormatDuration(value)));
  }
  return value;
}

}  // namespace

absl::StatusOr<WsOpenParams> CheckOpen(const fetch::v1::WsOpen& open,
                                       const fetch::v1::WebSocketLimits& limits,
                                       const policy::DestinationGate& gate,
                                       const policy::HostRule* caller,
                                       std::string* denied_category) {
  const auto deny = [&](std::string message, std::string category) {
    if (denied_category != nullptr) *denied_category = std::move(category);
    return absl::PermissionDeniedError(std::move(message));
  };
  // The scheme rule of HTTP, with ws for http and wss for https: curl's
  // parser checks the rest (host, port, no user:password@).
  const std::string& url = open.url();
  if (url.empty()) return Invalid("url", "is required");
  const size_t colon = url.find("://");
  if (colon == std::string::npos) {
    return Invalid("url", "must be an absolute ws:// or wss:// URL");
  }
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, colon));
  if (scheme != "ws" && scheme != "wss") {
    return deny(absl::StrCat("open.url: scheme \"", scheme,
                             "\" is not allowed (only ws and wss)"),
                "scheme");
  }
  const bool tls = scheme == "wss";
  absl::StatusOr<url::HttpUrl> parsed = url::ParseHttpUrl(
      absl::StrCat(tls ? "https" : "http", url.substr(colon)));
  if (!parsed.ok()) {
    std::string message(parsed.status().message());
    if (absl::StartsWith(message, "url: ")) message.erase(0, 5);
    return Invalid("url", message);
  }
  if (std::optional<policy::Denial> denial = gate.CheckTarget(
          "open.url", scheme, parsed->host, parsed->port, caller)) {
    return deny(std::move(denial->message), std::move(denial->category));
  }

  WsOpenParams params;
  WsTarget& t = params.target;
  t.tls = tls;
  const absl::string_view host = parsed->host;
  t.host = std::string(host.size() >= 2 && host.front() == '['
                           ? host.substr(1, host.size() - 2)
                           : host);
  t.port = parsed->port;
  t.host_key = absl::StrCat(scheme, "://", parsed->host, ":", parsed->port);
  // Path and query of the normalized URL: after the authority, before any
  // fragment.
  absl::string_view rest = parsed->url;
  rest.remove_prefix(std::min(rest.size(), rest.find("://") + 3));
  rest = rest.substr(std::min(rest.size(), rest.find('/')));
  rest = rest.substr(0, rest.find('#'));
  t.target = rest.empty() ? std::string("/") : std::string(rest);

  for (int i = 0; i < open.headers_size(); ++i) {
    const auto& h = open.headers(i);
    const std::string field = absl::StrCat("headers[", i, "]");
    if (!IsToken(h.name())) {
      return Invalid(field, "name must be an HTTP token");
    }
    if (HasControl(h.value())) {
      return Invalid(field, "value must not contain CR, LF or NUL");
    }
    if (IsReservedHeader(h.name())) {
      return Invalid(field, absl::StrCat("\"", h.name(),
                                         "\" is set by fetchd, not allowed"));
    }
    if (!open.bearer_token().empty() &&
        absl::EqualsIgnoreCase(h.name(), "authorization")) {
      return Invalid(field, "Authorization and bearer_token both set");
    }
    params.headers.emplace_back(h.name(), h.value());
  }
  if (!open.bearer_token().empty()) {
    if (HasControl(open.bearer_token()) ||
        open.bearer_token().find(' ') != std::string::npos) {
      return Invalid("bearer_token", "must not contain spaces, CR, LF or NUL");
    }
    params.headers.emplace_back("Authorization",
                                absl::StrCat("Bearer ", open.bearer_token()));
  }
  for (int i = 0; i < open.subprotocols_size(); ++i) {
    if (!IsToken(open.subprotocols(i))) {
      return Invalid(absl::StrCat("subprotocols[", i, "]"),
                     "must be an HTTP token");
    }
    params.subprotocols.push_back(open.subprotocols(i));
  }

  const auto& tls_options = open.tls();
  if (!tls && (!tls_options.ca_cert_pem().empty() ||
               !tls_options.client_cert_pem().empty() ||
               tls_options.insecure_skip_verify())) {
    return Invalid("tls", "only for wss:// URLs");
  }
  if (tls_options.client_cert_pem().empty() !=
      tls_options.client_key_pem().empty()) {
    return Invalid("tls", "client_cert_pem and client_key_pem go together");
  }
  params.ca_cert_pem = tls_options.ca_cert_pem();
  params.client_cert_pem = tls_options.client_cert_pem();
  params.client_key_pem = tls_options.client_key_pem();
  params.insecure_skip_verify = tls_options.insecure_skip_verify();

  absl::StatusOr<absl::Duration> handshake = Timeout(
      "handshake_timeout", open.handshake_timeout(),
      limits.default_handshake_timeout(), limits.max_handshake_timeout());
  if (!handshake.ok()) return handshake.status();
  params.handshake_timeout = *handshake;
  absl::StatusOr<absl::Duration> idle =
      Timeout("idle_timeout", open.idle_timeout(),
              limits.default_idle_timeout(), limits.max_idle_timeout());
  if (!idle.ok()) return idle.status();
  params.idle_timeout = *idle;
  if (open.max_message_bytes() > limits.max_message_bytes()) {
    return Invalid("max_message_bytes",
                   absl::StrCat("must be at most ", limits.max_message_bytes(),
                                " (websocket.max_message_bytes), got ",
                                open.max_message_bytes()));
  }
  params.max_message_bytes = open.max_message_bytes() == 0
                                 ? limits.max_message_bytes()
                                 : open.max_message_bytes();
  return params;
}

}  // namespace fetchd::ws

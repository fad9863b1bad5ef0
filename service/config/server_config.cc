#include "service/config/server_config.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "service/auth/caller_auth.h"
#include "service/common/logging.h"
#include "service/common/proto_duration.h"
#include "service/common/proto_merge.h"
#include "service/common/status_macros.h"
#include "service/config/limiter_config.h"
#include "service/config/politeness_config.h"
#include "service/policy/policy_config.h"
#include "service/url/http_url.h"

namespace fetchd::config {
namespace {

using google::protobuf::util::TimeUtil;

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

absl::Status CheckRange(absl::string_view field, uint64_t value, uint64_t min,
                        uint64_t max) {
  if (value < min || value > max) {
    return Invalid(field, absl::StrCat("must be between ", min, " and ", max,
                                       ", got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckPositive(absl::string_view field,
                           const google::protobuf::Duration& d) {
  if (!IsValidProtoDuration(d) || FromProto(d) <= absl::ZeroDuration()) {
    return Invalid(field, "must be a positive duration");
  }
  return absl::OkStatus();
}

// A duration that gRPC takes as an int of milliseconds: at least 1 ms, at
// most INT32_MAX ms (about 24 days); zero too if `zero_allowed`.
absl::Status CheckGrpcMillis(absl::string_view field,
                             const google::protobuf::Duration& d,
                             bool zero_allowed) {
  constexpr absl::Duration kMax = absl::Milliseconds(INT32_MAX);
  if (!IsValidProtoDuration(d)) return Invalid(field, "not a valid duration");
  const absl::Duration value = FromProto(d);
  if (zero_allowed && value == absl::ZeroDuration()) return absl::OkStatus();
  if (value < absl::Milliseconds(1) || value > kMax) {
    return Invalid(field, absl::StrCat("must be between 1ms and ",
                                       absl::FormatDuration(kMax), ", got ",
                                       absl::FormatDuration(value)));
  }
  return absl::OkStatus();
}

// metrics: listen is host:port with a numeric port (0 picks one); the access
// log rate is a probability; host label names are plain, and few.
// A duration from 0 (if `zero_allowed`, else 1 ms) to `max`.
absl::Status CheckDurationRange(absl::string_view field,
                                const google::protobuf::Duration& d,
                                bool zero_allowed, absl::Duration max) {
  if (!IsValidProtoDuration(d)) return Invalid(field, "not a valid duration");
  const absl::Duration value = FromProto(d);
  if (zero_allowed && value == absl::ZeroDuration()) return absl::OkStatus();
  if (value < absl::Milliseconds(1) || value > max) {
    return Invalid(field,
                   absl::StrCat("must be between ", zero_allowed ? "0" : "1ms",
                                " and ", absl::FormatDuration(max), ", got ",
                                absl::FormatDuration(value)));
  }
  return absl::OkStatus();
}

absl::Status CheckTransport(const fetch::v1::Transport& t) {
  for (const absl::Status& s : {
           CheckDurationRange("transport.dns_cache_ttl", t.dns_cache_ttl(),
                              /*zero_allowed=*/true, absl::Hours(24)),
           CheckDurationRange("transport.happy_eyeballs_delay",
                              t.happy_eyeballs_delay(), /*zero_allowed=*/true,
                              absl::Seconds(10)),
           CheckDurationRange("transport.idle_connection_timeout",
                              t.idle_connection_timeout(),
                              /*zero_allowed=*/false, absl::Hours(24)),
           CheckDurationRange("transport.max_connection_lifetime",
                              t.max_connection_lifetime(),
                              /*zero_allowed=*/true, absl::Hours(24 * 7)),
           CheckRange("transport.max_cached_connections",
                      t.max_cached_connections(), 0, 100000),
       }) {
    FETCHD_RETURN_IF_ERROR(s);
  }
  if (t.ip_version() != "any" && t.ip_version() != "ipv4" &&
      t.ip_version() != "ipv6") {
    return Invalid("transport.ip_version",
                   absl::StrCat("must be any, ipv4 or ipv6, got \"",
                                t.ip_version(), "\""));
  }
  if (!t.proxy().url().empty()) {
    FETCHD_RETURN_IF_ERROR(
        url::CheckProxyUrl(t.proxy().url(), "transport.proxy.url"));
  } else if (!t.proxy().username().empty() || !t.proxy().password().empty()) {
    return Invalid("transport.proxy", "credentials without a url");
  }
  if (t.use_env_proxy() && !t.proxy().url().empty()) {
    return Invalid("transport.use_env_proxy",
                   "can't be combined with transport.proxy.url");
  }
  return absl::OkStatus();
}

absl::Status CheckMetrics(const fetch::v1::Metrics& m) {
  constexpr int kMaxHostLabels = 100;
  const std::string& listen = m.listen();
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      listen.find_first_of(", \t") != std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return Invalid("metrics.listen",
                   absl::StrCat("must be host:port with a port from 0 to "
                                "65535, got \"",
                                listen, "\""));
  }
  // Written so that NaN fails too.
  if (!(m.access_log_sample_rate() >= 0 && m.access_log_sample_rate() <= 1)) {
    return Invalid("metrics.access_log_sample_rate",
                   absl::StrCat("must be between 0 and 1, got ",
                                m.access_log_sample_rate()));
  }
  if (m.host_labels_size() > kMaxHostLabels) {
    return Invalid("metrics.host_labels",
                   absl::StrCat("at most ", kMaxHostLabels, " names, got ",
                                m.host_labels_size()));
  }
  for (const std::string& name : m.host_labels()) {
    if (name.empty() || name == "other" ||
        name.find_first_of("/?#@ \t") != std::string::npos) {
      return Invalid("metrics.host_labels",
                     absl::StrCat("must be host names other than \"other\", "
                                  "got \"",
                                  name, "\""));
    }
  }
  return absl::OkStatus();
}

// workers and limits.
absl::Status CheckLimits(const fetch::v1::ServerConfig& c) {
  const auto& l = c.limits();
  for (const absl::Status& s : {
           CheckRange("workers", c.workers(), 0, 256),
           CheckRange("limits.max_in_flight", l.max_in_flight(), 1, 1000000),
           CheckRange("limits.max_per_host", l.max_per_host(), 1, 100000),
           CheckRange("limits.max_batch_size", l.max_batch_size(), 1, 10000000),
           CheckRange("limits.max_pending", l.max_pending(), 1, 100000000),
           CheckRange("limits.stream_window", l.stream_window(), 1, 1000000),
           CheckRange("limits.max_active_calls", l.max_active_calls(), 1,
                      1000000),
       }) {
    FETCHD_RETURN_IF_ERROR(s);
  }
  if (l.max_batch_size() > l.max_pending()) {
    return Invalid("limits.max_batch_size",
                   "must not exceed limits.max_pending");
  }
  if (const google::protobuf::Duration& margin = l.deadline_margin();
      !IsValidProtoDuration(margin) ||
      FromProto(margin) < absl::ZeroDuration() ||
      FromProto(margin) > absl::Seconds(60)) {
    return Invalid("limits.deadline_margin", "must be between 0s and 60s");
  }
  return absl::OkStatus();
}

// request_bounds, and the stream buffer that must hold one chunk.
absl::Status CheckRequestBounds(const fetch::v1::ServerConfig& c) {
  const auto& l = c.limits();
  const auto& b = c.request_bounds();
  for (const absl::Status& s : {
           CheckPositive("request_bounds.max_total_timeout",
                         b.max_total_timeout()),
           CheckPositive("request_bounds.max_connect_timeout",
                         b.max_connect_timeout()),
           CheckPositive("request_bounds.max_read_idle_timeout",
                         b.max_read_idle_timeout()),
           CheckPositive("request_bounds.max_queue_timeout",
                         b.max_queue_timeout()),
           CheckPositive("request_bounds.max_backoff", b.max_backoff()),
           CheckPositive("request_bounds.max_retry_after", b.max_retry_after()),
           CheckRange("request_bounds.max_attempts", b.max_attempts(), 1, 100),
           CheckRange("request_bounds.max_redirects", b.max_redirects(), 0,
                      100),
           CheckRange("request_bounds.max_body_bytes", b.max_body_bytes(), 1,
                      uint64_t{1} << 40),
           CheckRange("request_bounds.max_url_bytes", b.max_url_bytes(), 16,
                      1 << 20),
           CheckRange("request_bounds.max_headers", b.max_headers(), 0, 10000),
           CheckRange("request_bounds.max_header_bytes", b.max_header_bytes(),
                      0, 16 << 20),
           CheckRange("request_bounds.max_response_header_bytes",
                      b.max_response_header_bytes(), 1024, 64 << 20),
           // An event with one chunk must fit gRPC's 4 MiB default.
           CheckRange("request_bounds.max_chunk_bytes", b.max_chunk_bytes(),
                      1024, 3 << 20),
           CheckRange("request_bounds.max_stream_body_bytes",
                      b.max_stream_body_bytes(), 1, uint64_t{1} << 50),
           CheckRange("limits.max_stream_buffer_bytes",
                      l.max_stream_buffer_bytes(), b.max_chunk_bytes(),
                      uint64_t{1} << 32),
       }) {
    FETCHD_RETURN_IF_ERROR(s);
  }
  return absl::OkStatus();
}

absl::Status CheckGrpc(const fetch::v1::Grpc& g) {
  for (const absl::Status& s : {
           CheckGrpcMillis("grpc.keepalive_time", g.keepalive_time(),
                           /*zero_allowed=*/false),
           CheckGrpcMillis("grpc.keepalive_timeout", g.keepalive_timeout(),
                           /*zero_allowed=*/false),
           CheckGrpcMillis("grpc.max_connection_age", g.max_connection_age(),
                           /*zero_allowed=*/true),
           CheckRange("grpc.max_message_bytes", g.max_message_bytes(), 4096,
                      INT32_MAX),
       }) {
    FETCHD_RETURN_IF_ERROR(s);
  }
  return absl::OkStatus();
}

absl::Status CheckWebSocket(const fetch::v1::WebSocketLimits& ws) {
  for (const absl::Status& s : {
           CheckRange("websocket.max_open", ws.max_open(), 1, 1000000),
           CheckPositive("websocket.default_handshake_timeout",
                         ws.default_handshake_timeout()),
           CheckPositive("websocket.max_handshake_timeout",
                         ws.max_handshake_timeout()),
           CheckPositive("websocket.default_idle_timeout",
                         ws.default_idle_timeout()),
           CheckPositive("websocket.max_idle_timeout", ws.max_idle_timeout()),
           // Capped at run time by grpc.max_message_bytes (less framing).
           CheckRange("websocket.max_message_bytes", ws.max_message_bytes(), 1,
                      INT32_MAX),
       }) {
    FETCHD_RETURN_IF_ERROR(s);
  }
  if (FromProto(ws.default_handshake_timeout()) >
      FromProto(ws.max_handshake_timeout())) {
    return Invalid("websocket.default_handshake_timeout",
                   "must not exceed websocket.max_handshake_timeout");
  }
  if (FromProto(ws.default_idle_timeout()) > FromProto(ws.max_idle_timeout())) {
    return Invalid("websocket.default_idle_timeout",
                   "must not exceed websocket.max_idle_timeout");
  }
  return absl::OkStatus();
}

// The request defaults and bounds of DefaultServerConfig().
void SetDefaultRequest(fetch::v1::FetchRequest* d) {
  d->set_method("GET");
  *d->mutable_timeouts()->mutable_total() = TimeUtil::SecondsToDuration(30);
  *d->mutable_timeouts()->mutable_connect() = TimeUtil::SecondsToDuration(10);
  *d->mutable_timeouts()->mutable_read_idle() = TimeUtil::SecondsToDuration(30);
  *d->mutable_timeouts()->mutable_queue() = TimeUtil::SecondsToDuration(60);
  d->mutable_retry()->set_max_attempts(3);
  *d->mutable_retry()->mutable_base_backoff() =
      TimeUtil::MillisecondsToDuration(100);
  *d->mutable_retry()->mutable_max_backoff() = TimeUtil::SecondsToDuration(10);
  d->mutable_retry()->set_honor_retry_after(true);
  d->mutable_retry()->set_retry_non_idempotent(false);
  d->set_follow_redirects(true);
  d->set_max_redirects(10);
  d->set_max_body_bytes(2 << 20);
  d->set_fail_on_http_error(false);
  d->set_decompress(true);
  d->set_chunk_bytes(256 << 10);
}

void SetDefaultBounds(fetch::v1::RequestBounds* b) {
  *b->mutable_max_total_timeout() = TimeUtil::SecondsToDuration(300);
  *b->mutable_max_connect_timeout() = TimeUtil::SecondsToDuration(60);
  *b->mutable_max_read_idle_timeout() = TimeUtil::SecondsToDuration(300);
  *b->mutable_max_queue_timeout() = TimeUtil::SecondsToDuration(600);
  b->set_max_attempts(10);
  *b->mutable_max_backoff() = TimeUtil::SecondsToDuration(60);
  *b->mutable_max_retry_after() = TimeUtil::SecondsToDuration(60);
  b->set_max_redirects(20);
  b->set_max_body_bytes(64 << 20);
  b->set_max_url_bytes(8192);
  b->set_max_headers(100);
  b->set_max_request_body_bytes(16 << 20);
  b->set_max_header_bytes(64 << 10);
  b->set_max_response_header_bytes(256 << 10);
  b->set_max_chunk_bytes(1 << 20);
  b->set_max_stream_body_bytes(uint64_t{16} << 30);

  b->set_allow_insecure_tls(false);
  b->set_max_pem_bytes(64 << 10);
}

}  // namespace

fetch::v1::ServerConfig DefaultServerConfig() {
  fetch::v1::ServerConfig c;
  c.set_listen("127.0.0.1:50051");
  c.set_workers(0);  // one per hardware thread, see ResolveAutoValues
  c.set_log_level("info");

  auto* grpc = c.mutable_grpc();
  *grpc->mutable_keepalive_time() = TimeUtil::SecondsToDuration(30);
  *grpc->mutable_keepalive_timeout() = TimeUtil::SecondsToDuration(10);
  grpc->clear_max_connection_age();  // never
  grpc->set_max_message_bytes(64 << 20);

  auto* limits = c.mutable_limits();
  limits->set_max_in_flight(1024);
  limits->set_max_per_host(16);
  limits->set_max_batch_size(10000);
  limits->set_max_pending(100000);
  limits->set_stream_window(256);
  limits->set_max_active_calls(1000);
  limits->set_max_stream_buffer_bytes(8 << 20);
  limits->mutable_deadline_margin()->set_nanos(250'000'000);

  // No host labels (every host is "other"), no access log.
  c.mutable_metrics()->set_listen("127.0.0.1:9464");

  SetDefaultRequest(c.mutable_request_defaults());
  SetDefaultBounds(c.mutable_request_bounds());

  auto* t = c.mutable_transport();
  *t->mutable_dns_cache_ttl() = TimeUtil::SecondsToDuration(60);
  *t->mutable_happy_eyeballs_delay() = TimeUtil::MillisecondsToDuration(200);
  t->set_ip_version("any");
  *t->mutable_idle_connection_timeout() = TimeUtil::SecondsToDuration(118);
  t->clear_max_connection_lifetime();  // no limit
  t->set_max_cached_connections(0);    // one per in-flight transfer
  t->set_use_env_proxy(false);

  c.mutable_policy()->set_deny_special_ranges(true);

  auto* ws = c.mutable_websocket();
  ws->set_max_open(1000);
  *ws->mutable_default_handshake_timeout() = TimeUtil::SecondsToDuration(10);
  *ws->mutable_max_handshake_timeout() = TimeUtil::SecondsToDuration(60);
  *ws->mutable_default_idle_timeout() = TimeUtil::SecondsToDuration(300);
  *ws->mutable_max_idle_timeout() = TimeUtil::SecondsToDuration(3600);
  ws->set_max_message_bytes(16 << 20);
  return c;
}

absl::StatusOr<fetch::v1::ServerConfig> MergeJsonConfig(
    const fetch::v1::ServerConfig& base, const std::string& json) {
  fetch::v1::ServerConfig parsed;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status =
      google::protobuf::util::JsonStringToMessage(json, &parsed, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(std::string(status.message()));
  }
  fetch::v1::ServerConfig merged = base;
  MergeOver(parsed, &merged);
  return merged;
}

absl::StatusOr<fetch::v1::ServerConfig> LoadConfigFile(
    const fetch::v1::ServerConfig& base, const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<fetch::v1::ServerConfig> merged =
      MergeJsonConfig(base, text.str());
  if (!merged.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", merged.status().message()));
  }
  return merged;
}

void ResolveAutoValues(fetch::v1::ServerConfig* config) {
  if (config->workers() == 0) {
    config->set_workers(
        std::clamp(std::thread::hardware_concurrency(), 1u, 256u));
  }
}

absl::Status ValidateServerConfig(const fetch::v1::ServerConfig& c) {
  const std::string& listen = c.listen();
  const size_t colon = listen.rfind(':');
  if (listen.empty() || colon == std::string::npos || colon == 0 ||
      colon + 1 == listen.size()) {
    return Invalid("listen",
                   absl::StrCat("must be host:port, got \"", listen, "\""));
  }
  FETCHD_RETURN_IF_ERROR(CheckMetrics(c.metrics()));
  FETCHD_RETURN_IF_ERROR(CheckLimits(c));
  FETCHD_RETURN_IF_ERROR(CheckRequestBounds(c));
  if (absl::StatusOr<spdlog::level::level_enum> level =
          logging::ParseLogLevel(c.log_level());
      !level.ok()) {
    return Invalid("log_level", level.status().message());
  }
  FETCHD_RETURN_IF_ERROR(CheckGrpc(c.grpc()));
  FETCHD_RETURN_IF_ERROR(CheckTransport(c.transport()));
  FETCHD_RETURN_IF_ERROR(CheckRange("request_bounds.max_pem_bytes",
                                    c.request_bounds().max_pem_bytes(), 0,
                                    16 << 20));
  FETCHD_RETURN_IF_ERROR(CheckWebSocket(c.websocket()));
  FETCHD_RETURN_IF_ERROR(policy::AddressPolicyFromConfig(c.policy()));
  FETCHD_RETURN_IF_ERROR(PolitenessRules(c).status());
  FETCHD_RETURN_IF_ERROR(PolitenessPause(c).status());
  FETCHD_RETURN_IF_ERROR(LimiterFromConfig(c).status());
  if (!c.request_defaults().id().empty() ||
      !c.request_defaults().url().empty()) {
    return Invalid("request_defaults", "id and url must be empty");
  }
  if (c.request_defaults().has_stream_body()) {
    return Invalid("request_defaults.stream_body",
                   "must not be set: callers ask for a streamed body per "
                   "request or batch (the unary Fetch can't stream)");
  }
  // The files it names are read once, by the server that uses them.
  return auth::CallerAuth::CheckConfig(c.auth());
}

std::string ConfigToJson(const fetch::v1::ServerConfig& config) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(config, &out, options);
  return out;
}

}  // namespace fetchd::config

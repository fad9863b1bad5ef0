#include "service/config/limiter_config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/common/proto_duration.h"
#include "service/common/status_macros.h"

namespace fetchd::config {
namespace {

using fetch::v1::Limiter;

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("limiter.", field, ": ", rule));
}

// Sets `to` from `d` when the config sets it, within [min, max].
absl::Status ReadDuration(bool has, const google::protobuf::Duration& d,
                          absl::string_view field, absl::Duration min,
                          absl::Duration max, absl::Duration& to) {
  if (!has) return absl::OkStatus();
  if (!IsValidProtoDuration(d)) return Invalid(field, "not a valid duration");
  const absl::Duration value = FromProto(d);
  if (value < min || value > max) {
    return Invalid(field,
                   absl::StrCat("must be between ", absl::FormatDuration(min),
                                " and ", absl::FormatDuration(max), ", got ",
                                absl::FormatDuration(value)));
  }
  to = value;
  return absl::OkStatus();
}

std::string DefaultReplicaId() {
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && *pod) {
    return pod;
  }
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') {
    return host;
  }
  return "fetchd";
}

}  // namespace

absl::StatusOr<cluster::RedisAddress> ParseRedisAddress(
    absl::string_view address) {
  const auto bad = [&] {
    return Invalid(
        "redis.address",
        absl::StrCat("must be host:port or unix:PATH, got \"", address, "\""));
  };
  cluster::RedisAddress out;
  if (absl::ConsumePrefix(&address, "unix:")) {
    if (address.empty()) return bad();
    out.unix_path = std::string(address);
    return out;
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return bad();
  absl::string_view host = address.substr(0, colon);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 1 || port > 65535) {
    return bad();
  }
  out.host = std::string(host);
  out.port = port;
  return out;
}

absl::StatusOr<std::optional<cluster::LimiterOptions>> LimiterFromConfig(
    const fetch::v1::ServerConfig& config) {
  const Limiter& l = config.limiter();
  if (l.mode() != Limiter::REDIS) {
    if (l.mode() != Limiter::MODE_UNSPECIFIED && l.mode() != Limiter::LOCAL) {
      return Invalid("mode", "must be LOCAL or REDIS");
    }
    return std::nullopt;
  }
  cluster::LimiterOptions o;
  if (l.redis().address().empty()) {
    return Invalid("redis.address", "is required with mode REDIS");
  }
  FETCHD_ASSIGN_OR_RETURN(o.redis, ParseRedisAddress(l.redis().address()));
  FETCHD_RETURN_IF_ERROR(
      ReadDuration(l.redis().has_connect_timeout(), l.redis().connect_timeout(),
                   "redis.connect_timeout", absl::Milliseconds(1),
                   absl::Seconds(30), o.connect_timeout));
  FETCHD_RETURN_IF_ERROR(
      ReadDuration(l.redis().has_command_timeout(), l.redis().command_timeout(),
                   "redis.command_timeout", absl::Milliseconds(1),
                   absl::Seconds(5), o.command_timeout));
  if (!l.redis().key_prefix().empty()) o.key_prefix = l.redis().key_prefix();
  if (absl::StrContains(o.key_prefix, "{") ||
      absl::StrContains(o.key_prefix, "}")) {
    return Invalid("redis.key_prefix",
                   "must not contain { or } (fetchd adds the hash tags)");
  }
  o.replica_id = l.replica_id().empty() ? DefaultReplicaId() : l.replica_id();
  if (absl::StrContains(o.replica_id, ":")) {
    return Invalid("replica_id", absl::StrCat("must not contain ':', got \"",
                                              o.replica_id, "\""));
  }
  if (l.expected_replicas() > 10000) {
    return Invalid(
        "expected_replicas",
        absl::StrCat("must be at most 10000, got ", l.expected_replicas()));
  }
  o.expected_replicas = std::max<int>(1, l.expected_replicas());
  FETCHD_RETURN_IF_ERROR(ReadDuration(l.has_lease_ttl(), l.lease_ttl(),
                                      "lease_ttl", absl::Seconds(1),
                                      absl::Minutes(10), o.lease_ttl));
  FETCHD_RETURN_IF_ERROR(ReadDuration(l.has_sync_interval(), l.sync_interval(),
                                      "sync_interval", absl::Milliseconds(10),
                                      o.lease_ttl / 3, o.sync_interval));
  if (o.sync_interval > o.lease_ttl / 3) {
    return Invalid("sync_interval", "must be at most lease_ttl / 3");
  }
  FETCHD_RETURN_IF_ERROR(ReadDuration(l.has_rate_horizon(), l.rate_horizon(),
                                      "rate_horizon", o.sync_interval,
                                      o.lease_ttl, o.rate_horizon));
  if (o.rate_horizon < o.sync_interval) o.rate_horizon = o.sync_interval;
  FETCHD_RETURN_IF_ERROR(ReadDuration(l.has_idle_release(), l.idle_release(),
                                      "idle_release", absl::ZeroDuration(),
                                      o.lease_ttl / 2, o.idle_release));
  switch (l.on_redis_failure()) {
    case Limiter::FAILURE_POLICY_UNSPECIFIED:
    case Limiter::DEGRADED:
      o.on_failure = cluster::FailurePolicy::kDegraded;
      break;
    case Limiter::FAIL_OPEN:
      o.on_failure = cluster::FailurePolicy::kFailOpen;
      break;
    case Limiter::FAIL_CLOSED:
      o.on_failure = cluster::FailurePolicy::kFailClosed;
      break;
    default:
      return Invalid("on_redis_failure",
                     "must be DEGRADED, FAIL_OPEN or FAIL_CLOSED");
  }
  return o;
}

absl::StatusOr<std::string> ReadRedisPassword(
    const fetch::v1::ServerConfig& config) {
  const std::string& path = config.limiter().redis().password_file();
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        "limiter.redis.password_file: cannot read \"", path, "\""));
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string password = text.str();
  while (!password.empty() &&
         (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  return password;
}

}  // namespace fetchd::config

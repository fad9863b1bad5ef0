// The limiter section of the server configuration (ServerConfig.limiter):
// whether per-host limits are this replica's or the cluster's, and how the
// cluster's are kept in Redis.
#ifndef FETCHD_SERVICE_CONFIG_LIMITER_CONFIG_H_
#define FETCHD_SERVICE_CONFIG_LIMITER_CONFIG_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "service/cluster/limiter_options.h"

namespace fetchd::config {

// nullopt with mode LOCAL (or unset); the validated options with REDIS.
// InvalidArgument names the field and the rule, e.g.
//   limiter.redis.address: must be host:port or unix:PATH, got "x"
// Unset fields take LimiterOptions' defaults; replica_id defaults to the
// POD_NAME environment variable, else the host name. The password file is
// not read here (see ReadRedisPassword).
[[nodiscard]] absl::StatusOr<std::optional<cluster::LimiterOptions>>
LimiterFromConfig(const fetch::v1::ServerConfig& config);

// The contents of limiter.redis.password_file without a trailing newline;
// "" when the config names none. NotFound names the field and the path.
[[nodiscard]] absl::StatusOr<std::string> ReadRedisPassword(
    const fetch::v1::ServerConfig& config);

// "host:port" (IPv6 as [addr]:port) or "unix:PATH".
[[nodiscard]] absl::StatusOr<cluster::RedisAddress> ParseRedisAddress(
    absl::string_view address);

}  // namespace fetchd::config

#endif  // FETCHD_SERVICE_CONFIG_LIMITER_CONFIG_H_

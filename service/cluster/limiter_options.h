// LimiterOptions: how a replica shares its per-host limits with the others
// (ServerConfig.limiter), as plain values. The config layer validates the
// proto and fills this; LeaseBroker and RedisLeaseStore read it.
//
// Thread-safety: plain values.
#ifndef FETCHD_SERVICE_CLUSTER_LIMITER_OPTIONS_H_
#define FETCHD_SERVICE_CLUSTER_LIMITER_OPTIONS_H_

#include <string>

#include "absl/time/time.h"

namespace fetchd::cluster {

// Where Redis listens: a TCP host and port, or a unix socket.
struct RedisAddress {
  std::string host;
  int port = 0;
  // Set for unix:PATH; host and port are then unused.
  std::string unix_path;
};

// What a replica does while the cluster's state can't be trusted (Redis
// unreachable, or the learning period after a Redis restart).
enum class FailurePolicy {
  // floor(max_concurrency / N) and rate / N per replica.
  kDegraded,
  // The full limits per replica.
  kFailOpen,
  // Nothing starts until Redis is back.
  kFailClosed,
};

struct LimiterOptions {
  RedisAddress redis;
  // Read from ServerConfig.limiter.redis.password_file at start.
  std::string password;
  absl::Duration connect_timeout = absl::Milliseconds(500);
  absl::Duration command_timeout = absl::Milliseconds(50);
  std::string key_prefix = "fetchd:";
  std::string replica_id;
  int expected_replicas = 1;
  absl::Duration lease_ttl = absl::Seconds(10);
  absl::Duration sync_interval = absl::Milliseconds(250);
  absl::Duration rate_horizon = absl::Milliseconds(500);
  absl::Duration idle_release = absl::Milliseconds(200);
  FailurePolicy on_failure = FailurePolicy::kDegraded;
};

}  // namespace fetchd::cluster

#endif  // FETCHD_SERVICE_CLUSTER_LIMITER_OPTIONS_H_
